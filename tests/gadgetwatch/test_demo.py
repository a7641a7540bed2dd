"""The demo teaches, and the defaults agree.

`scripts/demo.sh` runs with port 9090 taken (a replay serves no metrics unless asked), ends
by saying where the profiles are and two commands to try, and those commands work exactly as
printed. `run` and `profile` find the same profiles by default, and `--profiles-dir` works
before and after the profile verb.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gadgetwatch.commands.run import DEFAULT_PROFILES_DIR, flag_overrides, replay_metrics
from gadgetwatch.config import load_settings
from tests.gadgetwatch.clihelp import CAPTURE, PROCESS_TIMEOUT_S, ROOT, parse


@contextlib.contextmanager
def port_9090_taken() -> Iterator[None]:
    """Hold 0.0.0.0:9090; if something else already holds it, it is taken all the same."""
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", 9090))
            s.listen(1)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        yield


def test_demo_needs_no_free_port_and_its_next_steps_work(tmp_path: Path) -> None:
    profiles = tmp_path / "demo profiles"  # a space: the printed commands must quote it
    env = {**os.environ, "DEMO_PROFILES_DIR": str(profiles)}
    with port_9090_taken():
        demo = subprocess.run(
            ["scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert demo.returncode == 0, demo.stderr
    alerts = [json.loads(line) for line in demo.stdout.splitlines()]
    assert {a["rule"]["id"] for a in alerts} >= {"R1000", "R0001"}
    err = demo.stderr.splitlines()
    assert "gadgetwatch summary" in err
    at = err.index(f"Profiles learned into {profiles}. Try next:")
    commands = [line.strip() for line in err[at + 1 :]]
    assert len(commands) == 2, err[at:]
    assert commands[0].startswith(".venv/bin/gadgetwatch profile show ")
    assert commands[1].startswith(".venv/bin/gadgetwatch profile seccomp ")
    results = [
        subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
            check=False,
        )
        for command in commands
    ]
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert results[0].stdout.startswith("Profile:    shop/deployment-webshop-app\n")
    assert "Status:     completed" in results[0].stdout
    seccomp = json.loads(results[1].stdout)
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "execve" in seccomp["syscalls"][0]["names"]


def test_run_and_profile_share_the_profiles_directory_default() -> None:
    assert load_settings().profiler.directory == DEFAULT_PROFILES_DIR
    assert parse(["profile", "list"]).profiles_dir == DEFAULT_PROFILES_DIR
    assert parse(["profile", "--profiles-dir", "a", "list"]).profiles_dir == "a"
    assert parse(["profile", "list", "--profiles-dir", "b"]).profiles_dir == "b"
    assert (
        parse(["profile", "--profiles-dir", "a", "show", "x/y", "--profiles-dir", "b"]).profiles_dir
        == "b"
    )
    args = parse(["run", "--target", "unix:///var/run/ig/ig.socket"])
    settings = load_settings(environ={}, overrides=flag_overrides(args))
    assert settings.profiler.directory == DEFAULT_PROFILES_DIR


@pytest.mark.parametrize(
    ("argv", "config", "served"),
    [
        (["--replay", str(CAPTURE)], "", False),
        (["--replay", str(CAPTURE), "--metrics-address", "127.0.0.1:0"], "", True),
        (["--replay", str(CAPTURE)], "metrics:\n  address: 127.0.0.1:9999\n", True),
        (["--replay", str(CAPTURE)], "metrics:\n  enabled: true\n", True),
        (["--replay", str(CAPTURE), "--no-metrics"], "metrics:\n  enabled: true\n", False),
        (["--target", "unix:///var/run/ig/ig.socket"], "", True),
    ],
)
def test_replay_serves_metrics_only_when_asked(
    argv: list[str], config: str, served: bool, tmp_path: Path
) -> None:
    args = parse(["run", *argv])
    path = None
    if config:
        path = tmp_path / "config.yaml"
        path.write_text(config)
    settings = load_settings(config_file=path, environ={}, overrides=flag_overrides(args))
    assert replay_metrics(settings, args).metrics.enabled is served
