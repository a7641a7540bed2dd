"""Helpers for the CLI tests: the command tree, example parsing, processes on a terminal."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pty
import select
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gadgetwatch.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
GADGETWATCH = str(Path(sys.executable).with_name("gadgetwatch"))
CAPTURE = ROOT / "examples" / "webshop-intrusion.capture.jsonl"
#: Bound on every process a CLI test starts; a hang fails the test instead of blocking CI.
PROCESS_TIMEOUT_S = 90.0
#: Words after which the rest of an example line is shell, not gadgetwatch's arguments.
SHELL_OPERATORS = frozenset({">", ">>", "|", "&&", "||", ";", "2>", "2>&1", "<"})


def parsers(
    parser: argparse.ArgumentParser | None = None, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command tree with its command path ("", "run", "profile list")."""
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}".strip())


def example_argv(line: str) -> list[str]:
    """The gadgetwatch arguments of an example or README line (shell syntax removed)."""
    if line.startswith("source <(") and line.endswith(")"):
        line = line[len("source <(") : -1]
    words = shlex.split(line.replace("\\\n", " "))
    if words[0] == "kubectl" and "--" in words:  # `kubectl exec ... -- gadgetwatch probe`
        words = words[words.index("--") + 1 :]
    while words and words[0] != "gadgetwatch" and not words[0].endswith("bin/gadgetwatch"):
        words.pop(0)
    assert words, f"no gadgetwatch command in {line!r}"
    argv = []
    for word in words[1:]:
        if word in SHELL_OPERATORS or word.startswith(">"):
            break
        argv.append(word)
    return argv


def command_path(argv: list[str]) -> str:
    """The subcommand path an argument list selects (other words skipped)."""
    paths = {p for p, _ in parsers()}
    path = ""
    for word in argv:
        candidate = f"{path} {word}".strip()
        if candidate in paths:
            path = candidate
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse like `gadgetwatch` does; a usage error becomes an AssertionError with the text."""
    parser = build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return parser.parse_args(argv)
        except SystemExit as exc:
            message = err.getvalue().strip()
            raise AssertionError(f"{shlex.join(argv)}: {message} ({exc.code})") from None


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_process(
    argv: list[str],
    *,
    tty: bool,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run gadgetwatch with stderr on a pseudo-terminal (`tty`) or a pipe; stdout is a pipe."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if not tty:
        done = subprocess.run(
            [GADGETWATCH, *argv],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)
    master, slave = pty.openpty()
    with subprocess.Popen(
        [GADGETWATCH, *argv],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    ) as proc:
        os.close(slave)
        assert proc.stdout is not None
        chunks: list[bytes] = []
        out: list[bytes] = []
        streams = {master: chunks, proc.stdout.fileno(): out}
        while streams:
            ready, _, _ = select.select(list(streams), [], [], PROCESS_TIMEOUT_S)
            assert ready, f"{shlex.join(argv)}: no output for {PROCESS_TIMEOUT_S}s"
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's last writer closed it
                    data = b""
                if data:
                    streams[fd].append(data)
                else:
                    del streams[fd]
        code = proc.wait(timeout=PROCESS_TIMEOUT_S)
    os.close(master)
    return Result(code, b"".join(out).decode(), b"".join(chunks).decode(errors="replace"))


@contextlib.contextmanager
def replay_server(tmp_path: Path, *extra: str) -> Iterator[str]:
    """A `gadgetwatch replay-server` process (unordered) serving the demo capture."""
    sock = f"unix://{tmp_path}/ig.sock"
    with subprocess.Popen(
        [GADGETWATCH, "replay-server", str(CAPTURE), "--listen", sock, "--no-ordered", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening "), line
        try:
            yield line.split()[1]
        finally:
            proc.terminate()
            proc.wait(timeout=PROCESS_TIMEOUT_S)
