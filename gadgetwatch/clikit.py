"""What every `gadgetwatch` subcommand shares: parsers, the output flag, errors and progress.

The CLI follows the habits of `kubectl` and `ig`, so one module owns each habit instead of each
command growing its own:

* **Parsers** (`Parser`, `add_command`): every command's `--help` ends with 2-4 real examples
  (kept on the parser as ``examples`` so a test parses each one), and a usage mistake is one
  line on stderr naming the command and where to read more, exit code 2.
* **Output** (`add_output_flag`, `print_data`, `render_table`): ``-o table|json|yaml`` on every
  command that prints data. JSON and YAML carry the same field names as the files and alerts,
  and nothing else is written to stdout in those modes; tables go through one printer.
* **Errors** (`UserError`, `ERROR_TYPES`): expected failures (bad input, unreachable
  endpoints, files that do not exist) become one line on stderr and a non-zero exit in
  `gadgetwatch.cli.main`; a traceback means a bug.
* **Progress** (`Progress`): feedback on long work goes to stderr, only when stderr is a
  terminal and `--quiet` was not given, so pipes and logs stay clean.
* **Value types** (`duration_arg`, `positive_float`): flag values checked at parse time, with
  messages that name the accepted forms.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, NoReturn

import orjson
import yaml

from detector.errors import DetectorError
from exporters.errors import ExporterError
from gadgetclient.durations import parse_duration
from gadgetclient.errors import GadgetClientError
from gadgetclient.textsafety import escape_control
from gadgetwatch.settings_loading import ConfigError
from profiler.errors import ProfilerError

#: The formats of the output flag, the default (for people) first.
OUTPUT_FORMATS: tuple[str, ...] = ("table", "json", "yaml")

#: The duration forms named in every duration error, so a person can copy one.
DURATION_FORMS = "a number with a unit, e.g. 24h, 10m, 90s (also 500ms, 2d, 1h30m, or seconds: 300)"


class UserError(Exception):
    """A mistake the user can fix (a bad value, a missing file); the message is the one line."""


#: Exceptions that end a command with their message as one line (exit code 1), never a
#: traceback: each package's own error base plus the composition root's.
ERROR_TYPES: tuple[type[Exception], ...] = (
    UserError,
    ConfigError,
    GadgetClientError,
    ProfilerError,
    DetectorError,
    ExporterError,
)


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but keeps the examples block exactly as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:\n"):
            return text
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, and which keeps its examples."""

    examples: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def examples_epilog(examples: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def set_examples(parser: argparse.ArgumentParser, examples: Sequence[str]) -> None:
    """Attach 2-4 real examples: shown at the end of `--help`, parsed by the test suite."""
    if not 2 <= len(examples) <= 4:
        raise ValueError(f"{parser.prog}: give 2-4 examples, not {len(examples)}")
    parser.epilog = examples_epilog(examples)
    parser.examples = tuple(examples)  # type: ignore[attr-defined]


def add_command(
    sub: Any, name: str, *, help: str, examples: Sequence[str], description: str | None = None
) -> Parser:
    """A subcommand parser with the shared formatter, error style and examples."""
    parser: Parser = sub.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        formatter_class=HelpFormatter,
    )
    set_examples(parser, examples)
    return parser


def add_output_flag(parser: argparse.ArgumentParser, default: str = "table") -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default=default,
        help=f"output format (default: {default}); json and yaml print only the data on stdout",
    )


def add_quiet_flag(parser: argparse.ArgumentParser, *, root: bool = False) -> None:
    """`--quiet` on the root and on each command that reports progress.

    A subcommand's default would overwrite the root's value (argparse copies the
    subparser's namespace over the parent's), so there it is `SUPPRESS`ed unless given.
    """
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if root else argparse.SUPPRESS,
        help="no progress or feedback on stderr (errors and results still print)",
    )


# -- output ------------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by two spaces, padded to the widest cell; the last one unpadded."""
    if not rows:
        return "  ".join(headers)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in (headers, *rows):
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def dump(data: Any, fmt: str) -> str:
    """`data` (JSON-compatible) as pretty JSON or block YAML, with a final newline."""
    if fmt == "json":
        return (
            orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
        )
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text


def print_data(
    fmt: str,
    data: Any,
    table: Callable[[], str],
    *,
    out: IO[str] | None = None,
) -> None:
    """Print `data` as JSON/YAML, or the human `table()` rendering of it."""
    stream = out if out is not None else sys.stdout
    text = table() if fmt == "table" else dump(data, fmt)
    if text and not text.endswith("\n"):
        text += "\n"
    stream.write(text)
    stream.flush()


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Dotted-key rows of a nested mapping (lists and scalars as compact JSON)."""
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += flatten(value, f"{path}.")
        else:
            shown = value if isinstance(value, str) else orjson.dumps(value).decode()
            rows.append((path, shown))
    return rows


def command_line(argv: Sequence[str]) -> str:
    """Arguments as a person would type them in a shell."""
    return shlex.join(argv)


# -- values ------------------------------------------------------------------------------------


def duration_arg(text: str) -> float:
    """A duration flag value in seconds; the error names the accepted forms."""
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use {DURATION_FORMS}"
        ) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text!r}")
    return value


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """One status line on stderr, rewritten in place; silent unless stderr is a terminal.

    `update` replaces the line, `note` prints a line that stays (above the status line),
    `close` clears the status line. Every call is a no-op when disabled, so callers need no
    checks of their own.
    """

    def __init__(self, *, quiet: bool = False, stream: IO[str] | None = None) -> None:
        stream = stream if stream is not None else sys.stderr
        # Our own cursor control goes through the raw stream (the CLI's stderr escapes control
        # characters); the text in it is escaped here instead, as it may quote server answers.
        self.stream: IO[str] = getattr(stream, "raw", stream)
        self.enabled = not quiet and _isatty(self.stream)
        self.started = time.monotonic()
        self._shown = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        # The cursor goes back to the line's start, so a log line written meanwhile (JSON
        # logs share stderr) overwrites the status instead of being glued to its end.
        self.stream.write(f"\r{escape_control(text)}\x1b[K\r")
        self.stream.flush()
        self._shown = True

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        prefix = "\r\x1b[K" if self._shown else ""
        self.stream.write(f"{prefix}{escape_control(text)}\n")
        self.stream.flush()
        self._shown = False

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
