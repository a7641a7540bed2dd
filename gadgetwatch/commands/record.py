"""`gadgetwatch record`: record IG events from any target into a capture file.

    gadgetwatch record --target T --gadget trace_exec,trace_open [--param K=V]... \
        [--duration D] [--pods PODS.json] -o FILE

Runs the gadgets through `gadgetclient.GadgetSource` (same sessions, decoder and reconnects as
the agent) and writes every decoded payload as one capture line with its `seq`, and every IG
log event ("lost N samples") as a log line where it arrived (`docs/capture-format.md`).
Stops after `--duration`, on Ctrl-C or SIGTERM (gracefully: advise_seccomp's final flush is
recorded), or when the target ends every stream (a replay). On a terminal a progress line shows
the count per gadget. Expected failures print one line on stderr and exit 1.

``--pods`` takes ``kubectl get pods -o json`` output (one Pod or a List) and writes one pod
record per pod after the header (labels, annotations, owner, volume mounts), so replaying the
capture can exercise the rules that need pod metadata (R0002 ``ignoreMounts``, R1004).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import signal
import sys
from pathlib import Path
from typing import IO, Any

from gadgetclient.capture import CaptureWriter, PodRecord
from gadgetclient.config import GadgetClientSettings, TlsSettings
from gadgetclient.errors import GadgetClientError
from gadgetclient.source import GadgetSource, RawLog, RawRecord
from gadgetclient.targets import parse_target
from gadgetwatch.clikit import Progress, add_command, add_quiet_flag, duration_arg
from gadgetwatch.k8s import pod_info

#: Seconds between progress-line refreshes on a terminal.
PROGRESS_INTERVAL = 0.5
#: IG's own default socket for `ig daemon`.
DEFAULT_TARGET = "unix:///var/run/ig/ig.socket"


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "record",
        help="record IG events from a target into a capture file",
        examples=[
            "gadgetwatch record --target unix:///var/run/ig/ig.socket "
            "--gadget trace_exec,trace_open --duration 5m -o shop.capture.jsonl",
            "gadgetwatch record --target k8s://gadget --gadget trace_dns "
            "--param operator.KubeManager.namespace=shop -o dns.capture.jsonl",
            "gadgetwatch record --target tcp://127.0.0.1:8888 --gadget trace_exec -o -",
        ],
    )
    p.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"IG endpoint: unix:///PATH, tcp://HOST:PORT or k8s://[NS] (default {DEFAULT_TARGET})",
    )
    p.add_argument(
        "--gadget", required=True, help="comma-separated gadgets, e.g. trace_exec,trace_open"
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="fully qualified gadget param"
    )
    p.add_argument(
        "--duration",
        type=duration_arg,
        metavar="DURATION",
        help="stop after this long (e.g. 30s, 5m)",
    )
    p.add_argument(
        "--pods",
        type=Path,
        metavar="FILE",
        help="`kubectl get pods -o json` output to record as pod-metadata records",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="capture file to write ('-' = stdout)"
    )
    p.add_argument(
        "--tls-key", default="", metavar="FILE", help="client private key (PEM) for mTLS"
    )
    p.add_argument(
        "--tls-cert", default="", metavar="FILE", help="client certificate (PEM) for mTLS"
    )
    p.add_argument("--tls-ca", default="", metavar="FILE", help="server CA bundle (PEM) for mTLS")
    p.add_argument("--tls-server-name", default="", help="name to verify in the server cert")
    add_quiet_flag(p)
    p.set_defaults(handler=_run)


def _params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _run(args: argparse.Namespace) -> int:
    try:
        params = _params(args.param)
        duration: float | None = args.duration
        parse_target(args.target)  # before the output file is created
        gadgets = tuple(g.strip() for g in args.gadget.split(",") if g.strip())
        if not gadgets:
            raise ValueError("--gadget: name at least one gadget")
        settings = GadgetClientSettings(
            target=args.target,
            gadgets=gadgets,
            params=params,
            tls=TlsSettings(
                client_key=args.tls_key,
                client_cert=args.tls_cert,
                server_ca=args.tls_ca,
                server_name=args.tls_server_name,
            ),
        )
        pods = pod_records(args.pods) if args.pods is not None else []
    except (ValueError, GadgetClientError) as exc:
        print(f"gadgetwatch record: {exc}", file=sys.stderr)
        return 2
    try:
        if args.output == "-":
            return asyncio.run(_record(settings, sys.stdout.buffer, duration, pods, args.quiet))
        with Path(args.output).open("wb") as out:
            return asyncio.run(_record(settings, out, duration, pods, args.quiet))
    except GadgetClientError as exc:
        print(f"gadgetwatch record: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gadgetwatch record: {args.output}: {exc.strerror}", file=sys.stderr)
        return 1


def pod_records(path: Path) -> list[PodRecord]:
    """Pod records from `kubectl get pods -o json` output; ValueError says what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--pods {path}: {exc}") from exc
    items = data.get("items") if isinstance(data, dict) and data.get("kind") == "List" else [data]
    if not isinstance(items, list):
        raise ValueError(f"--pods {path}: `items` must be a list")
    records = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind", "Pod") != "Pod":
            raise ValueError(f"--pods {path}: item {i} is not a Pod")
        try:
            info = pod_info(item)
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"--pods {path}: item {i}: malformed Pod ({exc!r})") from exc
        if not info.name:
            raise ValueError(f"--pods {path}: item {i} has no metadata.name")
        records.append(
            PodRecord(
                namespace=info.namespace,
                name=info.name,
                labels=info.labels,
                annotations=info.annotations,
                owner=info.owner,
                mounts=info.mounts,
                pod_ip=info.ip,
            )
        )
    return records


async def _record(
    settings: GadgetClientSettings,
    out: IO[bytes],
    duration: float | None,
    pods: list[PodRecord] | None = None,
    quiet: bool = False,
) -> int:
    started = datetime.datetime.now(datetime.UTC).isoformat()
    source = GadgetSource(settings)
    counts: dict[str, int] = {}
    writers: list[CaptureWriter] = []

    def writer() -> CaptureWriter:
        # The header carries the params every gadget really ran with (gadgetwatch's defaults
        # and the user's), known once the source has settled with the server: before the
        # first record, or at the end when none came.
        if not writers:
            header = {
                "target": settings.target,
                "gadgets": list(settings.gadgets),
                "params": {g: dict(p.sent) for g, p in sorted(source.param_plans.items())},
                "startedAt": started,
            }
            writers.append(CaptureWriter(out, header=header))
            for pod in pods or ():
                writers[0].write_pod(pod)
        return writers[0]

    def on_raw(rec: RawRecord) -> None:
        writer().write(rec.gadget, rec.datasource, rec.node, rec.data, rec.seq)
        counts[rec.gadget] = counts.get(rec.gadget, 0) + 1

    def on_log(entry: RawLog) -> None:
        writer().write_log(entry.gadget, entry.node, entry.severity, entry.message)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(source.stop()))
    task = asyncio.create_task(source.run(on_raw=on_raw, on_log=on_log))
    progress = Progress(quiet=quiet)
    tty = progress.enabled
    deadline = loop.time() + duration if duration is not None else None
    try:
        while not task.done():
            timeout = PROGRESS_INTERVAL if tty else None
            if deadline is not None:
                left = max(0.0, deadline - loop.time())
                timeout = left if timeout is None else min(timeout, left)
            await asyncio.wait({task}, timeout=timeout)
            progress.update(_line(counts, progress.elapsed()))
            if deadline is not None and loop.time() >= deadline and not task.done():
                await source.stop()
                deadline = None
        await task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        progress.close()
        writer()
        out.flush()
    if not quiet:
        print(f"{_line(counts, progress.elapsed())}", file=sys.stderr)
    return 0


def _line(counts: dict[str, int], elapsed: float) -> str:
    """`recorded 120 payloads in 3.0s: trace_exec=20 trace_open=100`."""
    parts = " ".join(f"{g}={n}" for g, n in sorted(counts.items()))
    return f"recorded {sum(counts.values())} payloads in {elapsed:.1f}s" + (
        f": {parts}" if parts else ""
    )
