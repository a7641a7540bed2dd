"""`gadgetwatch profile`: list, show, export, import, diff and derive hardening artifacts.

Works against the directory store (``--profiles-dir``, the default) or the cluster
(``--kubeconfig PATH`` or ``--in-cluster``). A profile is named ``NAMESPACE/NAME`` (the object
name, as `list` prints it; ``_host/NAME`` or ``-/NAME`` for host profiles) or by the path of an
exported file. Every expected failure is one line on stderr and exit code 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from profiler import advice, diffing, exporting, netpol, seccomp
from profiler.dirstore import HOST_DIR, DirectoryStore
from profiler.documents import dump_json, dump_yaml, to_document
from profiler.errors import NotFoundError, ProfilerError
from profiler.generalizing import generalized_entries
from profiler.profiles import Profile
from profiler.store import ProfileStore

DEFAULT_DIR = "/var/lib/gadgetwatch/profiles"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "profile", help="inspect, move and use application profiles"
    )
    where = parser.add_argument_group("store")
    where.add_argument("--profiles-dir", default=DEFAULT_DIR, help="directory store (default)")
    where.add_argument("--kubeconfig", default="", help="use the cluster via this kubeconfig")
    where.add_argument("--in-cluster", action="store_true", help="use in-cluster credentials")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("list", help="one line per profile")
    p.add_argument("-n", "--namespace", default=None)
    p.set_defaults(handler=lambda a: _run(a, _list))

    p = verbs.add_parser("show", help="one profile")
    p.add_argument("ref", help="NAMESPACE/NAME or a file")
    p.add_argument("-o", "--output", choices=["human", "yaml", "json"], default="human")
    p.set_defaults(handler=lambda a: _run(a, _show))

    p = verbs.add_parser("export", help="write profiles to a file (for import elsewhere)")
    p.add_argument("refs", nargs="*", help="NAMESPACE/NAME ... (default: all, or --namespace)")
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-f", "--file", required=True, help="output file ('-' for stdout)")
    p.set_defaults(handler=lambda a: _run(a, _export))

    p = verbs.add_parser("import", help="import exported profiles as completed, user-owned")
    p.add_argument("file")
    p.add_argument("-n", "--namespace", default=None, help="remap every profile to this one")
    p.set_defaults(handler=lambda a: _run(a, _import))

    p = verbs.add_parser("diff", help="compare two profiles or two exported revisions")
    p.add_argument("before")
    p.add_argument("after")
    p.set_defaults(handler=lambda a: _run(a, _diff))

    p = verbs.add_parser("seccomp", help="OCI seccomp profile from the learned syscalls")
    p.add_argument("ref")
    p.add_argument("--complain", action="store_true", help="SCMP_ACT_LOG instead of ERRNO")
    p.add_argument("--spo", action="store_true", help="a Security Profiles Operator resource")
    p.add_argument("--force", action="store_true", help="even from an unfinished profile")
    p.set_defaults(handler=lambda a: _run(a, _seccomp))

    p = verbs.add_parser("netpol", help="NetworkPolicy from the observed peers and ports")
    p.add_argument("ref")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=lambda a: _run(a, _netpol))

    p = verbs.add_parser("advise", help="securityContext advice with evidence")
    p.add_argument("ref")
    p.add_argument("-o", "--output", choices=["human", "yaml"], default="human")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=lambda a: _run(a, _advise))


class UsageError(Exception):
    """A mistake in the command line the parser could not catch."""


def _store(args: argparse.Namespace) -> ProfileStore:
    if args.kubeconfig or args.in_cluster:
        from profiler.k8s_store import KubernetesStore, api_client_from

        return KubernetesStore(api_client_from(kubeconfig=args.kubeconfig), threads=2)
    return DirectoryStore(args.profiles_dir)


def _run(
    args: argparse.Namespace, verb: Callable[[argparse.Namespace, ProfileStore], Awaitable[int]]
) -> int:
    async def main() -> int:
        store = _store(args)
        try:
            return await verb(args, store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    except ProfilerError as exc:
        print(f"gadgetwatch profile: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"gadgetwatch profile: {exc}", file=sys.stderr)
        return 2


def _read(path: str) -> bytes:
    """A small local file (the CLI may block: nothing else runs on its loop)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ProfilerError(f"cannot read: {exc.strerror}", obj=path) from exc


def _is_file(path: str) -> bool:
    return Path(path).is_file()


async def _resolve(store: ProfileStore, ref: str) -> Profile:
    if _is_file(ref):
        text = _read(ref)
        profiles = exporting.read_documents(text, source=ref)
        if len(profiles) != 1:
            raise UsageError(f"{ref} holds {len(profiles)} profiles; name one NAMESPACE/NAME")
        return profiles[0]
    namespace, sep, name = ref.partition("/")
    if not sep or not name:
        raise UsageError(f"{ref!r}: expected NAMESPACE/NAME or an existing file")
    if namespace in ("-", HOST_DIR):
        namespace = ""
    profiles, errors = await store.list(namespace)
    for profile in profiles:
        if profile.name == name:
            return profile
    for error in errors:
        if name in error.obj:
            raise error
    raise NotFoundError("no such profile", obj=ref)


def _write(text: str | bytes, target: str = "-") -> None:
    data = text.encode() if isinstance(text, str) else text
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(target).write_bytes(data)
    except OSError as exc:
        raise ProfilerError(f"cannot write: {exc.strerror}", obj=target) from exc


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)


async def _list(args: argparse.Namespace, store: ProfileStore) -> int:
    profiles, errors = await store.list(args.namespace)
    rows = [("NAMESPACE", "NAME", "KIND", "WORKLOAD", "CONTAINER", "STATUS", "ENTRIES")]
    for p in sorted(profiles, key=lambda p: (p.key.namespace, p.name)):
        rows.append(
            (
                p.key.namespace or "-",
                p.name,
                p.key.owner_kind,
                p.key.owner_name,
                p.key.container,
                p.meta.status.value + (" (user)" if p.meta.managed_by.value == "user" else ""),
                str(p.entries.total()),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def _human(profile: Profile) -> str:
    meta = profile.meta
    lines = [
        f"Profile:    {profile.key.namespace or '-'}/{profile.name}",
        f"Workload:   {profile.key.display()}",
        f"Status:     {meta.status.value} ({meta.reason or 'no reason recorded'})",
        f"Owner:      {meta.managed_by.value}",
        f"Learning:   series {meta.series}, period {meta.learning_period_ns / 1e9:g}s",
        f"Images:     {', '.join(sorted(meta.images)) or '-'}",
        f"Digests:    {', '.join(sorted(meta.image_digests)) or '-'}",
        f"Revisions:  {', '.join(sorted(meta.revisions)) or '-'}",
        "Entries:    "
        + ", ".join(f"{k} {v}" for k, v in profile.entries.counts().items())
        + f" (total {profile.entries.total()})",
        "",
    ]
    entries = profile.entries
    general = list(generalized_entries(entries.execs, entries.opens, entries.dns))
    if general:
        lines += ['Generalised (docs/profiles.md "Generalisation"):']
        lines += [f"  {kind.value:6} {text}" for kind, text in general]
        lines += [""]
    lines += [f"  {line}" for line in diffing.entry_lines(profile.entries)]
    return "\n".join(lines) + "\n"


async def _show(args: argparse.Namespace, store: ProfileStore) -> int:
    profile = await _resolve(store, args.ref)
    if args.output == "yaml":
        _write(dump_yaml(to_document(profile)))
    elif args.output == "json":
        _write(dump_json(to_document(profile)) + b"\n")
    else:
        _write(_human(profile))
    return 0


async def _export(args: argparse.Namespace, store: ProfileStore) -> int:
    if args.refs:
        profiles = [await _resolve(store, ref) for ref in args.refs]
    else:
        profiles, errors = await store.list(args.namespace)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        profiles.sort(key=lambda p: (p.key.namespace, p.name))
    if not profiles:
        raise NotFoundError("nothing to export", obj=args.namespace or str(store.name))
    _write(dump_yaml(exporting.export_documents(profiles)), args.file)
    print(f"exported {len(profiles)} profile(s)", file=sys.stderr)
    return 0


async def _import(args: argparse.Namespace, store: ProfileStore) -> int:
    text = _read(args.file)
    profiles = exporting.read_documents(text, source=args.file)
    for profile in profiles:
        stored = await exporting.import_into(
            store, exporting.imported(profile, namespace=args.namespace)
        )
        print(f"imported {stored.key.namespace or '-'}/{stored.name} (completed, user-owned)")
    return 0


async def _diff(args: argparse.Namespace, store: ProfileStore) -> int:
    before = await _resolve(store, args.before)
    after = await _resolve(store, args.after)
    lines = diffing.format_diff(diffing.diff(before, after))
    _write("".join(f"{line}\n" for line in lines))
    return 1 if lines else 0


async def _seccomp(args: argparse.Namespace, store: ProfileStore) -> int:
    profile = await _resolve(store, args.ref)
    if args.spo:
        body, warnings = seccomp.spo_seccomp_profile(
            profile, complain=args.complain, force=args.force
        )
        _warn(warnings)
        _write(dump_yaml(body))
    else:
        body, warnings = seccomp.seccomp_profile(profile, complain=args.complain, force=args.force)
        _warn(warnings)
        _write(json.dumps(body, indent=2) + "\n")
    return 0


async def _netpol(args: argparse.Namespace, store: ProfileStore) -> int:
    profile = await _resolve(store, args.ref)
    policy, warnings = netpol.network_policy(profile, force=args.force)
    _warn(warnings)
    _write(dump_yaml(policy))
    return 0


async def _advise(args: argparse.Namespace, store: ProfileStore) -> int:
    profile = await _resolve(store, args.ref)
    lines, warnings = advice.advise(profile, force=args.force)
    _warn(warnings)
    if args.output == "yaml":
        _write(dump_yaml({"securityContext": advice.security_context(lines)}))
    else:
        for line in lines:
            print(f"{line.setting}: {json.dumps(line.value)}\n    # {line.evidence}")
    return 0
