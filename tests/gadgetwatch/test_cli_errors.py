"""A sweep of the CLI with wrong values: each ends in one clear line and a non-zero exit.

Every option of every command gets a wrong value (or a file that is missing, binary, or
malformed); the command must print exactly one line on stderr, nothing on stdout, and exit
non-zero, never a traceback. The start-up cases of issue 10 (a bad capture for
`run --replay`, a missing `--bindings`/`--exceptions` file, a busy `--metrics-address`, a
binary configuration file, `config show` with a secret) also run as real processes, where a
traceback or a late grpc warning would show on the real stderr.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gadgetwatch.cli import main
from tests.gadgetwatch.clihelp import CAPTURE, run_process

#: Placeholders filled per test: {tmp} a temporary directory with the files below.
SWEEP: dict[str, tuple[list[str], str]] = {
    # -- global -----------------------------------------------------------------------------
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    "bad log level": (["--log-level", "loud", "rules", "list"], "argument --log-level"),
    "unknown flag": (["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    # -- run --------------------------------------------------------------------------------
    "run: missing config": (["run", "--config", "{tmp}/nope.yaml"], "cannot read"),
    "run: binary config": (["run", "--config", "{tmp}/binary.yaml"], "not UTF-8 text"),
    "run: bad YAML config": (["run", "--config", "{tmp}/bad.yaml"], "invalid YAML at line"),
    "run: unknown config key": (["run", "--config", "{tmp}/typo.yaml"], "did you mean"),
    "run: bad duration in config": (
        ["run", "--config", "{tmp}/duration.yaml"],
        "invalid duration 'one day' (use e.g. 500ms, 30s, 5m",
    ),
    "run: bad target": (["run", "--target", "http://x", "--check-config"], "(--target)"),
    "run: missing replay": (["run", "--replay", "{tmp}/nope.jsonl"], "--replay: no such file"),
    "run: bad capture": (["run", "--replay", "{tmp}/bad.jsonl"], "bad.jsonl:1: not JSON"),
    "run: binary capture": (["run", "--replay", "{tmp}/binary.yaml"], "cannot read capture"),
    "run: bad replay rate": (["run", "--replay-rate", "fast"], "expected a number"),
    "run: negative replay rate": (["run", "--replay-rate", "-5"], "above 0"),
    "run: bad learning period": (["run", "--learning-period", "1 day"], "24h, 10m, 90s"),
    "run: missing bindings": (["run", "--bindings", "{tmp}/nope.yaml"], "no such file"),
    "run: missing exceptions": (["run", "--exceptions", "{tmp}/nope.yaml"], "no such file"),
    "run: bad syslog URL": (["run", "--syslog", "http://x"], "--syslog: expected"),
    "run: bad syslog port": (["run", "--syslog", "udp://h:99999"], "--syslog: bad port"),
    "run: bad webhook": (["run", "--webhook", "not a url", "--check-config"], "exporters.http"),
    "run: bad alertmanager": (
        ["run", "--alertmanager", "nope", "--check-config"],
        "exporters.alertmanager",
    ),
    "run: bad metrics address": (
        ["run", "--metrics-address", "nowhere", "--check-config"],
        "metrics.address",
    ),
    "run: profiles dir is a file": (
        ["run", "--replay", str(CAPTURE), "--profiles-dir", "{tmp}/bad.yaml"],
        "--profiles-dir): not a directory",
    ),
    # -- record -----------------------------------------------------------------------------
    "record: bad duration": (
        ["record", "--gadget", "trace_exec", "-o", "-", "--duration", "soon"],
        "use a number with a unit, e.g. 24h, 10m, 90s",
    ),
    "record: bad param": (["record", "--gadget", "trace_exec", "-o", "-", "--param", "x"], "K"),
    "record: no gadget": (["record", "--gadget", ",", "-o", "-"], "at least one gadget"),
    "record: unwritable output": (
        ["record", "--gadget", "trace_exec", "-o", "{tmp}/no/dir/x.jsonl"],
        "No such file or directory",
    ),
    "record: bad target": (
        ["record", "--gadget", "trace_exec", "-o", "-", "--target", "ftp://x"],
        "target",
    ),
    # -- replay-server ----------------------------------------------------------------------
    "replay-server: bad rate": (
        ["replay-server", str(CAPTURE), "--listen", "unix://{tmp}/s", "--rate", "x"],
        "expected a number",
    ),
    "replay-server: negative wait": (
        ["replay-server", str(CAPTURE), "--listen", "unix://{tmp}/s", "--start-wait", "-1"],
        "0 or more",
    ),
    "replay-server: missing capture": (
        ["replay-server", "{tmp}/nope.jsonl", "--listen", "unix://{tmp}/s"],
        "cannot read capture",
    ),
    "replay-server: bad listen": (
        ["replay-server", str(CAPTURE), "--listen", "http://x"],
        "listen",
    ),
    # -- profile ----------------------------------------------------------------------------
    "profile: bad output": (["profile", "list", "-o", "xml"], "invalid choice: 'xml'"),
    "profile: bad ref": (["profile", "show", "justaname"], "expected NAMESPACE/NAME"),
    "profile: no such profile": (["profile", "show", "a/b"], "no such profile"),
    "profile: profiles dir is a file": (
        ["profile", "show", "a/b", "--profiles-dir", "{tmp}/bad.yaml"],
        "bad.yaml",
    ),
    "profile: import missing": (["profile", "import", "{tmp}/nope.yaml"], "cannot read"),
    "profile: import binary": (["profile", "import", "{tmp}/binary.yaml"], "binary.yaml"),
    "profile: diff missing file": (
        ["profile", "diff", "{tmp}/nope.yaml", "a/b"],
        "nope.yaml: no such profile",
    ),
    "profile: missing kubeconfig": (
        ["profile", "list", "--kubeconfig", "{tmp}/nope.yaml"],
        "nope.yaml",
    ),
    # -- rules, probe, config, completion ---------------------------------------------------
    "rules: unknown rule": (["rules", "list", "R42"], "no such rule: R42"),
    "rules: check missing": (["rules", "check", "{tmp}/nope.yaml"], "nope.yaml"),
    "rules: bad output": (["rules", "list", "-o", "text"], "invalid choice: 'text'"),
    "probe: missing config": (["probe", "--config", "{tmp}/nope.yaml"], "cannot read"),
    "probe: bad output": (["probe", "-o", "wide"], "invalid choice: 'wide'"),
    "config: binary": (["config", "show", "--config", "{tmp}/binary.yaml"], "not UTF-8"),
    "config: docs unwritable": (["config", "docs", "-f", "{tmp}/no/dir/c.md"], "No such file"),
    "completion: bad shell": (["completion", "tcsh"], "invalid choice: 'tcsh'"),
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("GADGETWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GADGETWATCH_KUBERNETES__MODE", "off")
    (tmp_path / "binary.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe" * 20)
    (tmp_path / "bad.yaml").write_text("key: [unclosed\n")
    (tmp_path / "typo.yaml").write_text("profiler:\n  learningPerod: 1h\n")
    (tmp_path / "duration.yaml").write_text("profiler:\n  learningPeriod: one day\n")
    (tmp_path / "bad.jsonl").write_text("this is not a capture\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fill(argv: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in argv]


@pytest.mark.parametrize("case", list(SWEEP))
def test_wrong_values_end_in_one_line(
    case: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = SWEEP[case]
    try:
        code = main(["--log-level", "error", *_fill(argv, files)])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code != 0, f"{case}: exit 0"
    assert out == "", f"{case}: stdout {out!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{case}: {err!r}"
    assert expected in lines[0], f"{case}: {lines[0]!r}"
    assert "Traceback" not in err


# -- the start-up failures of issue 10, as real processes --------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def _one_line(argv: list[str], cwd: Path) -> str:
    result = run_process(["--log-level", "warning", *argv], tty=False, cwd=cwd)
    assert result.code != 0, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_startup_failures_as_processes(files: Path, busy_port: int) -> None:
    line = _one_line(["run", "--replay", "bad.jsonl"], files)
    assert line == "gadgetwatch run: bad.jsonl:1: not JSON: Expecting value"
    line = _one_line(["run", "--replay", str(CAPTURE), "--bindings", "nope.yaml"], files)
    assert line == "detector.bindingsFile (--bindings): no such file: nope.yaml"
    line = _one_line(["run", "--replay", str(CAPTURE), "--exceptions", "nope.yaml"], files)
    assert line == "detector.exceptionsFile (--exceptions): no such file: nope.yaml"
    line = _one_line(["run", "--config", "binary.yaml"], files)
    assert line.startswith("binary.yaml: not UTF-8 text")
    line = _one_line(
        ["run", "--replay", str(CAPTURE), "--metrics-address", f"127.0.0.1:{busy_port}"], files
    )
    assert line.startswith(f"gadgetwatch run: cannot serve metrics on 127.0.0.1:{busy_port}: ")
    assert "address already in use" in line
    assert line.endswith(
        "choose another address with --metrics-address HOST:PORT (metrics.address) "
        "or turn metrics off with --no-metrics"
    )


def test_config_show_with_a_secret_as_a_process(files: Path) -> None:
    (files / "secret.yaml").write_text(
        "exporters:\n  alertmanager:\n    enabled: true\n    urls: [http://127.0.0.1:1]\n"
        "    password: SECRET-MARKER\n    username: u\n"
    )
    result = run_process(["config", "show", "--config", "secret.yaml"], tty=False, cwd=files)
    assert result.code == 0, result.stderr
    assert "SECRET-MARKER" not in result.stdout + result.stderr
    assert "exporters.alertmanager.password" in result.stdout
