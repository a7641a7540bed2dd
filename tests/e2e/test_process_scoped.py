"""Process-scoped allow-lists end to end: `gadgetwatch run --replay` over captures in which the
allowed process and an intruder reach the same resource.

Two resources of the web workload (`shop/web`, container `app`), each reached by its rightful
process and by an intruder, on separate pids started by their own execs (IG's trace_exec is
what tells the agent which executable acted on the later opens and connections):

* the service-account token, read by `/bin/cat` (allowed) and by `/bin/sh` (intruder);
* the database, a managed PostgreSQL at a public address, reached by `/usr/bin/pg_dump`
  (allowed) and by `/usr/bin/curl` (intruder).

Each mechanism must raise exactly one alert per resource, for the intruder: a `RuntimeGuard`
(R3000, while the workload is still learning, with no profile to consult), and a
process-scoped `RuntimeAlertException` over the anomaly rules (R0006, R0011) after learning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def write_capture(path: Path, *, during_learning: bool) -> Path:
    """A capture of the web container. `during_learning`: the four processes act in the
    learning minute (guards); else the same executables run while learning, without touching
    either resource, and reach the resources only at 2 min (anomaly rules + exceptions)."""
    g = ex.Gen()
    _startup(g, T0 + SEC)
    if during_learning:
        _both_reach_both(g, T0 + 10 * SEC, 600)
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
