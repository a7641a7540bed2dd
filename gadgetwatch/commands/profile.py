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

from gadgetwatch.clikit import add_command, add_output_flag, print_data, render_table
from gadgetwatch.commands.run import DEFAULT_PROFILES_DIR
from profiler import advice, diffing, exporting, netpol, seccomp
from profiler.dirstore import HOST_DIR, DirectoryStore
from profiler.documents import dump_yaml, to_document
from profiler.errors import NotFoundError, ProfilerError
from profiler.generalizing import generalized_entries
from profiler.profiles import Profile
from profiler.store import ProfileStore

#: Shared with `gadgetwatch run`: the profile commands find what the agent wrote by default.
DEFAULT_DIR = DEFAULT_PROFILES_DIR
DEMO_REF = "shop/deployment-webshop-app"


def _store_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The store options, on `profile` and again on each verb (`profile list --profiles-dir X`).

    On the verbs they default to SUPPRESS: argparse copies a subcommand's namespace over its
    parent's, so a verb's default would hide a value given before the verb.
    """
    where = parser.add_argument_group("store")

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    where.add_argument(
        "--profiles-dir",
        metavar="DIR",
        default=default(DEFAULT_DIR),
        help=f"directory store (the default store; default: {DEFAULT_DIR})",
    )
    where.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=default(""),
        help="use the cluster's ApplicationProfile resources via this kubeconfig",
    )
    where.add_argument(
        "--in-cluster",
        action="store_true",
        default=default(False),
        help="use the cluster with in-cluster credentials",
    )


def _verb(verbs: Any, name: str, help: str, examples: list[str]) -> argparse.ArgumentParser:
    p = add_command(verbs, name, help=help, examples=examples)
    _store_flags(p, top=False)
    return p


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "profile",
        help="inspect, move and use application profiles",
        description=(
            "Inspect, move and use application profiles, from the directory store "
            "(--profiles-dir) or the cluster (--kubeconfig, --in-cluster). A profile is named "
            "NAMESPACE/NAME as `profile list` prints it (-/NAME for host profiles), or by the "
            "path of an exported file."
        ),
        examples=[
            "gadgetwatch profile list --profiles-dir demo-profiles",
            f"gadgetwatch profile show {DEMO_REF} --profiles-dir demo-profiles",
            f"gadgetwatch profile seccomp {DEMO_REF} --profiles-dir demo-profiles",
        ],
    )
    _store_flags(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = _verb(
        verbs,
        "list",
        "one line per profile",
        [
            "gadgetwatch profile list --profiles-dir demo-profiles",
            "gadgetwatch profile list -n webshop -o json --profiles-dir demo-profiles",
            "gadgetwatch profile --kubeconfig ~/.kube/config list -n production",
        ],
    )
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    add_output_flag(p)
    p.set_defaults(handler=lambda a: _run(a, _list))

    p = _verb(
        verbs,
        "show",
        "one profile: metadata and every entry",
        [
            f"gadgetwatch profile show {DEMO_REF} --profiles-dir demo-profiles",
            f"gadgetwatch profile show {DEMO_REF} -o yaml --profiles-dir demo-profiles",
            "gadgetwatch profile show exported.yaml",
        ],
    )
    p.add_argument("ref", metavar="PROFILE", help="NAMESPACE/NAME or an exported file")
    add_output_flag(p)
    p.set_defaults(handler=lambda a: _run(a, _show))

    p = _verb(
        verbs,
        "export",
        "write profiles to a file (for import elsewhere)",
        [
            "gadgetwatch profile export -n staging -f staging-profiles.yaml",
            f"gadgetwatch profile export {DEMO_REF} -f - --profiles-dir demo-profiles",
        ],
    )
    p.add_argument(
        "refs", nargs="*", metavar="PROFILE", help="NAMESPACE/NAME ... (default: all, or -n)"
    )
    p.add_argument("-n", "--namespace", default=None, help="export this namespace's profiles")
    p.add_argument("-f", "--file", required=True, help="output file ('-' for stdout)")
    p.set_defaults(handler=lambda a: _run(a, _export))

    p = _verb(
        verbs,
        "import",
        "import exported profiles as completed, user-owned",
        [
            "gadgetwatch profile import staging-profiles.yaml -n production",
            "gadgetwatch profile --kubeconfig ~/.kube/config import staging-profiles.yaml",
        ],
    )
    p.add_argument("file", metavar="FILE", help="a file written by `profile export`")
    p.add_argument("-n", "--namespace", default=None, help="remap every profile to this one")
    p.set_defaults(handler=lambda a: _run(a, _import))

    p = _verb(
        verbs,
        "diff",
        "compare two profiles or two exported revisions (exit code 1 when they differ)",
        [
            "gadgetwatch profile diff staging/deployment-web-nginx production/deployment-web-nginx",
            "gadgetwatch profile diff before.yaml after.yaml -o json",
        ],
    )
    p.add_argument("before", metavar="BEFORE", help="NAMESPACE/NAME or exported file: the old")
    p.add_argument("after", metavar="AFTER", help="NAMESPACE/NAME or exported file: the new")
    add_output_flag(p)
    p.set_defaults(handler=lambda a: _run(a, _diff))

    p = _verb(
        verbs,
        "seccomp",
        "OCI seccomp profile from the learned syscalls",
        [
            f"gadgetwatch profile seccomp {DEMO_REF} --profiles-dir demo-profiles",
            f"gadgetwatch profile seccomp {DEMO_REF} --spo --complain",
        ],
    )
    p.add_argument("ref", metavar="PROFILE", help="NAMESPACE/NAME or an exported file")
    p.add_argument("--complain", action="store_true", help="SCMP_ACT_LOG instead of ERRNO")
    p.add_argument("--spo", action="store_true", help="a Security Profiles Operator resource")
    p.add_argument("--force", action="store_true", help="even from an unfinished profile")
    p.set_defaults(handler=lambda a: _run(a, _seccomp))

    p = _verb(
        verbs,
        "netpol",
        "NetworkPolicy from the observed peers and ports",
        [
            f"gadgetwatch profile netpol {DEMO_REF} --profiles-dir demo-profiles",
            f"gadgetwatch profile netpol {DEMO_REF} --force > netpol.yaml",
        ],
    )
    p.add_argument("ref", metavar="PROFILE", help="NAMESPACE/NAME or an exported file")
    p.add_argument("--force", action="store_true", help="even from an unfinished profile")
    p.set_defaults(handler=lambda a: _run(a, _netpol))

    p = _verb(
        verbs,
        "advise",
        "securityContext advice with evidence",
        [
            f"gadgetwatch profile advise {DEMO_REF} --profiles-dir demo-profiles",
            f"gadgetwatch profile advise {DEMO_REF} -o yaml --profiles-dir demo-profiles",
        ],
    )
    p.add_argument("ref", metavar="PROFILE", help="NAMESPACE/NAME or an exported file")
    add_output_flag(p)
    p.add_argument("--force", action="store_true", help="even from an unfinished profile")
    p.set_defaults(handler=lambda a: _run(a, _advise))


class UsageError(Exception):
    """A mistake in the command line the parser could not catch."""


def _store(args: argparse.Namespace) -> ProfileStore:
    if args.kubeconfig or args.in_cluster:
        from profiler.k8s_store import KubernetesStore, api_client_from

        return KubernetesStore(api_client_from(kubeconfig=args.kubeconfig), threads=2)
    directory = Path(args.profiles_dir).expanduser()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--profiles-dir {args.profiles_dir}: not a directory")
    return DirectoryStore(directory)


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


def _summary(p: Profile) -> dict[str, Any]:
    """One `profile list` row, keyed like the profile document's fields."""
    return {
        "namespace": p.key.namespace,
        "name": p.name,
        "workload": {
            "kind": p.key.owner_kind,
            "name": p.key.owner_name,
            "container": p.key.container,
        },
        "phase": p.meta.status.value,
        "managedBy": p.meta.managed_by.value,
        "entries": p.entries.total(),
    }


async def _list(args: argparse.Namespace, store: ProfileStore) -> int:
    profiles, errors = await store.list(args.namespace)
    profiles.sort(key=lambda p: (p.key.namespace, p.name))
    data = [_summary(p) for p in profiles]

    def table() -> str:
        headers = ("NAMESPACE", "NAME", "KIND", "WORKLOAD", "CONTAINER", "STATUS", "ENTRIES")
        rows = [
            (
                p.key.namespace or "-",
                p.name,
                p.key.owner_kind,
                p.key.owner_name,
                p.key.container,
                p.meta.status.value + (" (user)" if p.meta.managed_by.value == "user" else ""),
                str(p.entries.total()),
            )
            for p in profiles
        ]
        return render_table(headers, rows)

    print_data(args.output, data, table)
    if not profiles and not errors and args.output == "table":
        where = f"namespace {args.namespace}" if args.namespace else "this store"
        print(f"no profiles in {where} ({store.name})", file=sys.stderr)
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
    print_data(args.output, to_document(profile), lambda: _human(profile))
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
    conversion = exporting.read_converted(text, source=args.file)
    for note in conversion.notes:
        print(f"warning: {note}", file=sys.stderr)
    for profile in conversion.profiles:
        stored = await exporting.import_into(
            store, exporting.imported(profile, namespace=args.namespace)
        )
        print(f"imported {stored.key.namespace or '-'}/{stored.name} (completed, user-owned)")
    return 0


def _entries_document(profile: Profile, entries: Any) -> dict[str, Any]:
    """Entries in the profile document's container layout (the file's field names)."""
    part = Profile(key=profile.key, meta=profile.meta, entries=entries)
    container: dict[str, Any] = to_document(part)["spec"]["containers"][0]
    container.pop("name", None)
    return container


async def _diff(args: argparse.Namespace, store: ProfileStore) -> int:
    before = await _resolve(store, args.before)
    after = await _resolve(store, args.after)
    d = diffing.diff(before, after)
    data = {
        "before": f"{before.key.namespace or '-'}/{before.name}",
        "after": f"{after.key.namespace or '-'}/{after.name}",
        "changed": [{"field": f, "before": b, "after": a} for f, b, a in d.meta],
        "removed": _entries_document(before, d.removed),
        "added": _entries_document(after, d.added),
    }
    lines = diffing.format_diff(d)
    print_data(args.output, data, lambda: "".join(f"{line}\n" for line in lines))
    return 0 if d.empty else 1


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
    data = {
        "securityContext": advice.security_context(lines),
        "evidence": [
            {"setting": line.setting, "value": line.value, "evidence": line.evidence}
            for line in lines
        ],
    }

    def table() -> str:
        return "".join(
            f"{line.setting}: {json.dumps(line.value)}\n    # {line.evidence}\n" for line in lines
        )

    print_data(args.output, data, table)
    return 0
