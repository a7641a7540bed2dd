"""The `gadgetwatch` command line: one parser, one module per subcommand.

Each module in `gadgetwatch.commands` exposes ``register(subparsers)``, which adds its parser
(through `clikit.add_command`, so its `--help` ends with real examples) and sets ``handler`` (a
function taking the parsed namespace and returning an exit code). Expected failures, raised as
one of `clikit.ERROR_TYPES` or an `OSError`, end here as one line on stderr and a non-zero exit:
no traceback reaches the user for bad input, unreachable endpoints or broken files.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from gadgetclient.textsafety import escape_control
from gadgetwatch import __version__

if TYPE_CHECKING:
    from gadgetwatch.clikit import Parser

#: Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "record",
    "replay_server",
    "profile",
    "rules",
    "probe",
    "instances",
    "console",
    "config",
    "completion",
)

#: The hidden first argument with which completion scripts ask for dynamic words.
COMPLETE_COMMAND = "__complete"

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


def build_parser() -> Parser:
    from gadgetwatch.clikit import HelpFormatter, Parser, add_quiet_flag, set_examples

    parser = Parser(
        prog="gadgetwatch",
        description="Runtime security for Kubernetes by learned behaviour, on Inspektor Gadget.",
        formatter_class=HelpFormatter,
    )
    set_examples(
        parser,
        [
            "gadgetwatch run --replay examples/webshop-intrusion.capture.jsonl "
            "--profiles-dir demo-profiles --learning-period 10m --summary",
            "gadgetwatch run --target unix:///var/run/ig/ig.socket "
            "--profiles-dir /var/lib/gadgetwatch/profiles",
            "gadgetwatch profile list --profiles-dir demo-profiles",
            "gadgetwatch rules list -o json",
        ],
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"gadgetwatch {__version__}",
        help="print the version and exit",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (logs are JSON lines on stderr)",
    )
    add_quiet_flag(parser, root=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"gadgetwatch.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == [COMPLETE_COMMAND]:
        # Before the parser and logging are imported: a TAB should not wait for them.
        from gadgetwatch.commands.completion import complete_words

        return complete_words(args_list[1:])
    from gadgetwatch.clikit import ERROR_TYPES, UserError
    from gadgetwatch.logs import configure_logging, flush_held_back
    from gadgetwatch.settings_loading import ConfigError

    parser = build_parser()
    args = parser.parse_args(args_list)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    out, err = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, TerminalSafeStream(out))
    sys.stderr = cast(TextIO, TerminalSafeStream(err))
    configure_logging(args.log_level)
    prog = f"gadgetwatch {args.command}"
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `gadgetwatch rules list | head`: the reader left; not an error worth a line.
        _silence_stdout()
        return 141
    except ERROR_TYPES as exc:
        print(f"{prog}: {_one_line(str(exc))}", file=sys.stderr)
        # 2 for a mistake in what was asked (as argparse does), 1 for a failure doing it.
        return 2 if isinstance(exc, UserError | ConfigError) else 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        flush_held_back()
        sys.stdout, sys.stderr = out, err


def _one_line(text: str) -> str:
    """Multi-problem messages (a configuration with two mistakes) stay one problem a line."""
    return text.strip().replace("\n", "\n  ")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
