"""The `gadgetwatch` command line: one parser, one module per subcommand.

Each module in `gadgetwatch.commands` exposes ``register(subparsers)``, which adds its parser and
sets ``handler`` (a function taking the parsed namespace and returning an exit code). Handlers
translate domain errors into one clear line on stderr and an exit code; no traceback reaches the
user for expected failures (bad input, unreachable endpoints, broken config).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from gadgetwatch import __version__
from gadgetwatch.logs import configure_logging

#: Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "record",
    "replay_server",
    "profile",
    "rules",
    "probe",
    "config",
)

Handler = Callable[[argparse.Namespace], int]

# gRPC's C core logs informational lines (e.g. GOAWAY on a closing channel) straight to stderr,
# outside our JSON log; keep it to errors unless the operator asked for more. Must be set
# before grpc is first imported, which happens when a command runs.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gadgetwatch",
        description="Runtime security for Kubernetes by learned behaviour, on Inspektor Gadget.",
    )
    parser.add_argument("--version", action="version", version=f"gadgetwatch {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (logs are JSON lines on stderr)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"gadgetwatch.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.log_level)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
