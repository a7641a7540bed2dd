"""`gadgetwatch replay-server`: serve a capture over Inspektor Gadget's gRPC API.

    gadgetwatch replay-server CAPTURE --listen unix:///PATH|tcp://127.0.0.1:PORT [--rate N]
        [--ordered | --no-ordered] [--start-wait S] [--hold-flush]

Any IG client (gadgetwatch, `gadgetctl`, `gadgetwatch record`) can then run the captured gadgets
against it. Prints `listening <address>` once serving, and serves until Ctrl-C or SIGTERM.

`--ordered` (the default) releases the payloads of all running gadget streams in capture order,
after waiting (at most `--start-wait` seconds) for a run of every gadget of the capture; then
`--rate` is the total across streams. `--no-ordered` replays every stream on its own, as fast as
it can (or at `--rate` per stream). See `gadgetclient/timeline.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from gadgetclient.capture import read_capture
from gadgetclient.errors import GadgetClientError
from gadgetclient.replay import DEFAULT_SERVER_VERSION, ReplayServer
from gadgetclient.timeline import DEFAULT_START_WAIT
from gadgetwatch.clikit import add_command, non_negative_float


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "replay-server",
        help="serve a capture over IG's gRPC API",
        examples=[
            "gadgetwatch replay-server examples/webshop-intrusion.capture.jsonl "
            "--listen unix:///tmp/ig.sock",
            "gadgetwatch replay-server shop.capture.jsonl --listen tcp://127.0.0.1:8888 --rate 500",
            "gadgetwatch replay-server exec.json --gadget trace_exec --listen unix:///tmp/ig.sock",
        ],
    )
    p.add_argument(
        "capture",
        metavar="CAPTURE",
        help="capture file (or plain `ig run -o json` output with --gadget)",
    )
    p.add_argument("--listen", required=True, help="unix:///PATH or tcp://127.0.0.1:PORT")
    p.add_argument(
        "--rate",
        type=non_negative_float,
        default=0.0,
        metavar="N",
        help="payload events per second, in total across streams when ordered (0 = max)",
    )
    p.add_argument(
        "--ordered",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="release the payloads of all running gadgets in capture order (default: on)",
    )
    p.add_argument(
        "--start-wait",
        type=non_negative_float,
        default=DEFAULT_START_WAIT,
        metavar="SECONDS",
        help="ordered: seconds to wait for a run of every gadget of the capture "
        f"(default {DEFAULT_START_WAIT:g})",
    )
    p.add_argument("--gadget", help="gadget of a plain `ig run <gadget> -o json` file")
    p.add_argument("--server-version", default=DEFAULT_SERVER_VERSION, help="reported IG version")
    p.add_argument(
        "--hold-flush",
        action="store_true",
        help="keep runs of gadgets with flush data open until stopped, like live IG "
        "(unordered: advise_seccomp flushes at the stop)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        capture = read_capture(args.capture, gadget=args.gadget)
        return asyncio.run(_serve(args, capture))
    except GadgetClientError as exc:
        print(f"gadgetwatch replay-server: {exc}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace, capture: Any) -> int:
    server = ReplayServer(
        capture,
        listen=args.listen,
        rate=args.rate or None,
        server_version=args.server_version,
        hold_flush=args.hold_flush,
        ordered=args.ordered,
        start_wait=args.start_wait,
    )
    address = await server.start()
    print(f"listening {address}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await server.stop(grace=1.0)
    return 0
