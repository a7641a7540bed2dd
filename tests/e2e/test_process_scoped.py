"""Process-scoped allow-lists end to end: `gadgetwatch run --replay` over captures in which the
allowed process and an intruder reach the same resource.

Two resources of the web workload (`shop/web`, container `app`), each reached by its rightful
process and by an intruder, on separate pids started by their own execs (IG's trace_exec is
what tells the agent which executable acted on the later opens and connections):

* the service-account token, read by `/bin/cat` (allowed) and by `/bin/sh` (intruder);
* the database, a managed PostgreSQL at a public address, reached by `/usr/bin/pg_dump`
  (allowed) and by `/usr/bin/curl` (intruder).

Each mechanism must raise exactly one alert per resource, for the intruder: a `RuntimeGuard`
(R3000, while the workload is still learning, with no profile to consult), a process-scoped
`RuntimeAlertException` over the anomaly rules (R0006, R0011) after learning, and a
process-aware profile (`--process-aware`: cat read the token and pg_dump reached the database
while learning, so the same anomaly rules alert only for sh and curl), whatever the profile
flush timer is set to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import GADGETWATCH, Proc
from tests.e2e.scenario import APP, MIN, NODE, SEC, T0, ex

TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: A managed database outside the cluster, at a public address (R0011 ignores private ones;
#: the documentation ranges count as private too).
DATABASE = "52.31.20.5"
PG_PORT = 5432
WEB_IP = "10.244.1.11"

GUARDS = f"""\
apiVersion: gadgetwatch.io/v1
kind: RuntimeGuard
metadata: {{name: token}}
spec:
  workloads: [{{kind: Deployment, name: web}}]
  resources:
  - paths: [/run/secrets/kubernetes.io/serviceaccount]
    fromSource: [{{path: /bin/cat}}]
---
apiVersion: gadgetwatch.io/v1
kind: RuntimeGuard
metadata: {{name: database}}
spec:
  workloads: [{{kind: Deployment, name: web}}]
  resources:
  - addresses: [{{address: {DATABASE}, ports: [{PG_PORT}]}}]
    fromSource: [{{path: /usr/bin/pg_dump}}]
"""

EXCEPTIONS = f"""\
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {{name: token-reader}}
spec:
  workloads: [{{kind: Deployment, name: web, containers: [app]}}]
  rules: [R0006]
  allow:
    paths: [{TOKEN}]
    fromSource: [{{path: /bin/cat}}]
---
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {{name: backup}}
spec:
  workloads: [{{kind: Deployment, name: web, containers: [app]}}]
  rules: [R0011]
  allow:
    addresses: [{{address: {DATABASE}, ports: [{PG_PORT}]}}]
    fromSource: [{{path: /usr/bin/pg_dump}}]
"""

SHELL = {"pcomm": "gunicorn", "ppid": 1, "cwd": "/app", "parent_exe": "/usr/local/bin/gunicorn"}


def _both_reach_both(g: Any, t: int, pid: int) -> None:
    """cat and sh read the token, pg_dump and curl connect to the database."""
    g.exec_(APP, t, exe="/bin/cat", args=["cat", TOKEN], pid=pid, **SHELL)
    g.open_(APP, t + SEC, comm="cat", pid=pid, path=TOKEN, pcomm="gunicorn")
    g.exec_(APP, t + 2 * SEC, exe="/bin/sh", args=["sh", "-c", "read t < token"], pid=pid + 1,
            **SHELL)  # fmt: skip
    g.open_(APP, t + 3 * SEC, comm="sh", pid=pid + 1, path=TOKEN, pcomm="gunicorn")
    g.exec_(APP, t + 4 * SEC, exe="/usr/bin/pg_dump", args=["pg_dump", "-h", DATABASE],
            pid=pid + 2, **SHELL)  # fmt: skip
    g.tcp(APP, t + 5 * SEC, comm="pg_dump", pid=pid + 2, kind="connect",
          src=g.endpoint(WEB_IP, 40000 + pid), dst=g.endpoint(DATABASE, PG_PORT),
          pcomm="gunicorn")  # fmt: skip
    g.exec_(APP, t + 6 * SEC, exe="/usr/bin/curl", args=["curl", f"telnet://{DATABASE}:5432"],
            pid=pid + 3, **SHELL)  # fmt: skip
    g.tcp(APP, t + 7 * SEC, comm="curl", pid=pid + 3, kind="connect",
          src=g.endpoint(WEB_IP, 40001 + pid), dst=g.endpoint(DATABASE, PG_PORT),
          pcomm="gunicorn")  # fmt: skip


def _startup(g: Any, t: int) -> None:
    g.exec_(APP, t, exe="/usr/local/bin/gunicorn", args=["gunicorn", "web:app"], pid=1,
            pcomm="containerd-shim", ppid=0, cwd="/app",
            parent_exe="/usr/bin/containerd-shim-runc-v2")  # fmt: skip


def _rightful_only(g: Any, t: int) -> None:
    """While learning: cat reads the token, pg_dump reaches the database; sh and curl run
    but touch neither."""
    g.exec_(APP, t, exe="/bin/cat", args=["cat", TOKEN], pid=500, **SHELL)
    g.open_(APP, t + SEC, comm="cat", pid=500, path=TOKEN, pcomm="gunicorn")
    g.exec_(APP, t + 2 * SEC, exe="/bin/sh", args=["sh", "--version"], pid=501, **SHELL)
    g.exec_(APP, t + 3 * SEC, exe="/usr/bin/pg_dump", args=["pg_dump", "-h", DATABASE],
            pid=502, **SHELL)  # fmt: skip
    g.tcp(APP, t + 4 * SEC, comm="pg_dump", pid=502, kind="connect",
          src=g.endpoint(WEB_IP, 39000), dst=g.endpoint(DATABASE, PG_PORT),
          pcomm="gunicorn")  # fmt: skip
    g.exec_(APP, t + 5 * SEC, exe="/usr/bin/curl", args=["curl", "--version"], pid=503, **SHELL)


def write_capture(path: Path, *, during_learning: bool, rightful_learned: bool = False) -> Path:
    """A capture of the web container. `during_learning`: the four processes act in the
    learning minute (guards); else the same executables run while learning, without touching
    either resource (or, with `rightful_learned`, with cat and pg_dump reaching them), and all
    four reach the resources at 2 min (anomaly rules + exceptions or process-aware profiles)."""
    g = ex.Gen()
    _startup(g, T0 + SEC)
    if during_learning:
        _both_reach_both(g, T0 + 10 * SEC, 600)
    elif rightful_learned:
        _rightful_only(g, T0 + 10 * SEC)
        _both_reach_both(g, T0 + 2 * MIN, 600)
    else:
        for k, exe in enumerate(("/bin/cat", "/bin/sh", "/usr/bin/pg_dump", "/usr/bin/curl")):
            name = exe.rsplit("/", 1)[-1]
            g.exec_(APP, T0 + (10 + k) * SEC, exe=exe, args=[name, "--version"], pid=500 + k,
                    **SHELL)  # fmt: skip
        _both_reach_both(g, T0 + 2 * MIN, 600)
    # An event past the learning minute finishes the profile in both captures.
    g.exec_(APP, T0 + 3 * MIN, exe="/bin/cat", args=["cat", "--version"], pid=700, **SHELL)
    header = {
        "gadgetwatchCapture": 1,
        "generator": "tests/e2e/test_process_scoped.py",
        "serverVersion": "0.55.1",
        "startedAt": ex._fmt(T0),
        "description": "token and database reached by an allowed process and an intruder",
    }
    lines = [line for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1]))]
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for line in lines:
            out.write(json.dumps(line) + "\n")
    assert NODE
    return path


async def _replay(tmp_path: Path, env: dict[str, str], capture: Path, *flags: str) -> list[Any]:
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH,
            "run",
            "--no-metrics",
            "--replay",
            str(capture),
            "--learning-period",
            "1m",
            "--profiles-dir",
            str(tmp_path / "profiles"),
            *flags,
        ],
        env=env,
    )
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    return [json.loads(line) for line in proc.stdout]


def _who(alert: dict[str, Any]) -> tuple[str, str]:
    return alert["rule"]["id"], alert["process"]["comm"]


async def test_guards_alert_once_for_each_intruder_while_learning(
    tmp_path: Path, env: dict[str, str]
) -> None:
    guards = tmp_path / "guards.yaml"
    guards.write_text(GUARDS)
    capture = write_capture(tmp_path / "guarded.capture.jsonl", during_learning=True)
    alerts = await _replay(tmp_path, env, capture, "--guards", str(guards))
    assert sorted(_who(a) for a in alerts) == [("R3000", "curl"), ("R3000", "sh")]
    by_guard = {a["event"]["guard"]: a for a in alerts}
    assert by_guard["token"]["event"]["actor"] == "/bin/sh"
    assert by_guard["database"]["event"]["actor"] == "/usr/bin/curl"
    assert by_guard["token"]["event"]["path"] == TOKEN
    assert by_guard["database"]["event"]["dstAddr"] == DATABASE
    # Both intrusions happen inside the learning minute: the guards need no profile.
    end_of_learning = ex._fmt(T0 + MIN)[:19]
    assert all(a["time"][:19] < end_of_learning for a in alerts)


async def test_process_scoped_exceptions_leave_one_alert_per_intruder(
    tmp_path: Path, env: dict[str, str]
) -> None:
    capture = write_capture(tmp_path / "anomaly.capture.jsonl", during_learning=False)
    # Without exceptions both processes are anomalies (the R0011 key is the destination, so
    # pg_dump's alert comes first and curl's repeat is deduplicated).
    baseline = await _replay(tmp_path / "a", env, capture)
    assert sorted(_who(a) for a in baseline) == [
        ("R0006", "cat"),
        ("R0006", "sh"),
        ("R0011", "pg_dump"),
    ]
    exceptions = tmp_path / "exceptions.yaml"
    exceptions.write_text(EXCEPTIONS)
    alerts = await _replay(tmp_path / "b", env, capture, "--exceptions", str(exceptions))
    assert sorted(_who(a) for a in alerts) == [("R0006", "sh"), ("R0011", "curl")]
    # The suggestion of each remaining alert is scoped to the intruder's executable first.
    for alert in alerts:
        assert "fromSource:\n    - path: /bin/sh" in alert["fixSuggestion"] or (
            "fromSource:\n    - path: /usr/bin/curl" in alert["fixSuggestion"]
        ), alert["fixSuggestion"]


@pytest.mark.parametrize("update_period", ["100ms", "24h"])
async def test_process_aware_profiles_alert_once_for_each_intruder(
    tmp_path: Path, env: dict[str, str], update_period: str
) -> None:
    capture = write_capture(
        tmp_path / "aware.capture.jsonl", during_learning=False, rightful_learned=True
    )
    timed = {**env, "GADGETWATCH_PROFILER__UPDATE_PERIOD": update_period}
    # Without the option the resources are known to the workload: nobody is an anomaly.
    assert await _replay(tmp_path / "a", timed, capture) == []
    alerts = await _replay(tmp_path / "b", timed, capture, "--process-aware")
    assert sorted(_who(a) for a in alerts) == [("R0006", "sh"), ("R0011", "curl")]
    by_rule = {a["rule"]["id"]: a for a in alerts}
    assert "/bin/sh" in by_rule["R0006"]["message"]
    assert "learned: /bin/cat" in by_rule["R0006"]["message"]
    assert by_rule["R0011"]["event"]["knownProcesses"] == ["/usr/bin/pg_dump"]
    # The narrowest fix offered first allows exactly the intruder, as in part 2.
    assert "fromSource:\n    - path: /bin/sh" in by_rule["R0006"]["fixSuggestion"]
    assert "fromSource:\n    - path: /usr/bin/curl" in by_rule["R0011"]["fixSuggestion"]
    # The stored profile says who reached what (what `profile show` lists).
    show = await Proc.start(
        "show",
        [GADGETWATCH, "profile", "--profiles-dir", str(tmp_path / "b" / "profiles"), "show",
         "shop/deployment-web-app"],
        env=env,
    )  # fmt: skip
    assert await show.wait_exit() == 0, show.tail()
    text = "\n".join(show.stdout)
    assert f"open {TOKEN} O_CLOEXEC,O_RDONLY by /bin/cat" in text, text
    assert f"egress {DATABASE} {PG_PORT}/TCP by /usr/bin/pg_dump" in text, text
