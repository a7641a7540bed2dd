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
from typing import Any, TextIO, cast

from gadgetclient.textsafety import escape_control
from gadgetwatch import __version__
from gadgetwatch.logs import configure_logging, flush_held_back

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


class TerminalSafeStream:
    """A text stream that escapes control and bidi characters (newline and tab pass).

    Every human-readable line the CLI prints can quote file content or event fields (a rule
    name from a bindings file, a path from a profile); one `\\x1b]…` or U+202E in them must not
    rewrite the operator's terminal. Wrapping `sys.stdout` and `sys.stderr` once here covers
    every command; binary output (`.buffer`: profiles, captures) is data and passes unchanged,
    and a command that draws its own progress line writes through `.raw`.
    """

    def __init__(self, inner: TextIO) -> None:
        self.raw = inner

    def write(self, text: str) -> int:
        self.raw.write(escape_control(text, keep="\n\t"))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


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
    out, err = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, TerminalSafeStream(out))
    sys.stderr = cast(TextIO, TerminalSafeStream(err))
    configure_logging(args.log_level)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    finally:
        flush_held_back()
        sys.stdout, sys.stderr = out, err


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
