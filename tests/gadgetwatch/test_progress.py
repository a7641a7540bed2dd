"""Progress on long work: on stderr, only when it is a terminal, never with --quiet.

Each command runs as a real process with stderr on a pseudo-terminal (the `pty` module) and
again on a pipe; stdout is always a pipe, and must hold only the command's data.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gadgetclient.capture import read_capture
from tests.gadgetwatch.clihelp import CAPTURE, replay_server, run_process

COUNTS = Counter(line.gadget for line in read_capture(CAPTURE).lines)
ERASE = "\x1b[K"


@pytest.fixture(autouse=True)
def _host_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GADGETWATCH_KUBERNETES__MODE", "off")


def _record(tmp_path: Path, *, tty: bool, quiet: bool = False) -> tuple[str, Path]:
    out = tmp_path / f"rec-{tty}-{quiet}.jsonl"
    with replay_server(tmp_path) as address:
        result = run_process(
            [
                "--log-level",
                "warning",
                "record",
                "--target",
                address,
                "--gadget",
                "trace_exec,trace_dns",
                "-o",
                str(out),
                *(["--quiet"] if quiet else []),
            ],
            tty=tty,
        )
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    return result.stderr, out


def test_record_progress_on_a_terminal(tmp_path: Path) -> None:
    err, out = _record(tmp_path, tty=True)
    n_exec, n_dns = COUNTS["trace_exec"], COUNTS["trace_dns"]
    final = f"recorded {n_exec + n_dns} payloads in "
    # The status line is rewritten in place, with per-gadget counts and the elapsed time...
    assert "\rrecorded " in err
    assert ERASE in err
    # ...and cleared; the final count stays.
    last = err.replace("\r\n", "\n").split("\r")[-1]
    assert last.startswith(ERASE + final) or last.startswith(final), repr(last)
    assert last.rstrip().endswith(f"s: trace_dns={n_dns} trace_exec={n_exec}")
    payloads = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert sum(1 for p in payloads if "data" in p) == n_exec + n_dns  # beside IG's log lines


def test_record_without_a_terminal_prints_only_the_final_count(tmp_path: Path) -> None:
    err, _ = _record(tmp_path, tty=False)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"recorded {COUNTS['trace_exec'] + COUNTS['trace_dns']} payloads in")
    assert "\r" not in err
    assert ERASE not in err


def test_record_quiet_on_a_terminal_prints_nothing(tmp_path: Path) -> None:
    err, out = _record(tmp_path, tty=True, quiet=True)
    assert err == ""
    assert out.stat().st_size > 0


def _probe(tmp_path: Path, *, tty: bool, quiet: bool = False) -> tuple[str, str]:
    with replay_server(tmp_path) as address:
        result = run_process(
            ["--log-level", "warning", "probe", "--target", address, *(["-q"] if quiet else [])],
            tty=tty,
        )
    assert result.code == 0, result.stderr
    return result.stdout, result.stderr


def test_probe_shows_each_check_as_it_completes_on_a_terminal(tmp_path: Path) -> None:
    out, err = _probe(tmp_path, tty=True)
    lines = [line.strip("\r") for line in err.replace("\r\n", "\n").splitlines()]
    checks = [line for line in lines if line.startswith("[")]
    table = out.splitlines()
    assert table[0].split() == ["AREA", "CHECK", "RESULT", "DETAIL"]
    assert len(checks) == len(table) - 1  # one progress line per row of the table
    assert checks[0].startswith("[1] OK   ig unix://")
    assert any(" gadget trace_exec @ " in line for line in checks)
    assert lines[-1].startswith("READY: ")


def test_probe_without_a_terminal_or_quiet_has_only_the_verdict(tmp_path: Path) -> None:
    for tty, quiet in ((False, False), (True, True)):
        out, err = _probe(tmp_path, tty=tty, quiet=quiet)
        assert err.strip().splitlines() == [err.strip()], err
        assert err.startswith("READY: ")
        assert out.startswith("AREA")


def _replay(tmp_path: Path, *, tty: bool, quiet: bool = False) -> tuple[str, str]:
    result = run_process(
        [
            "--log-level",
            "warning",
            "run",
            "--replay",
            str(CAPTURE),
            "--profiles-dir",
            str(tmp_path / "profiles"),
            "--learning-period",
            "10m",
            *(["--quiet"] if quiet else []),
        ],
        tty=tty,
    )
    assert result.code == 0, result.stderr
    for line in result.stdout.splitlines():
        assert json.loads(line)["rule"]["id"]  # stdout is alerts only
    return result.stdout, result.stderr


def test_run_replay_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    out, err = _replay(tmp_path, tty=True)
    assert "\rreplay " in err
    assert f"/{sum(COUNTS.values())} events (" in err
    assert err.rstrip().endswith(ERASE), "the status line is cleared at the end"
    assert out


def test_run_replay_no_progress_without_a_terminal_or_with_quiet(tmp_path: Path) -> None:
    _, err = _replay(tmp_path, tty=False)
    assert "replay " not in err
    _, err = _replay(tmp_path / "q", tty=True, quiet=True)
    assert err == ""
