"""Event time, end to end: what the learner decides reaches the detector for the next event.

The agent (`gadgetwatch run --replay`, its own process, real gRPC to the in-process replay
server) replays the capture of `eventtime.lifecycle()` twice: with `updatePeriod` 100 ms, so
the store round-trip happens many times during the replay, and with 24 h, so it never happens
before the end. Both runs must give exactly `LIFECYCLE_EXPECTED`: the lifecycle decisions
(completion with collapse, a rollout reopening learning, a rollout during learning) are visible
to the detector on event time, not when a flush or the store brings them back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.rules import default_catalogue
from detector.ruleset import default_binding_document
from tests.e2e.eventtime import (
    JOBS,
    LATERAL_EXPECTED,
    LEARNING_PERIOD,
    LIFECYCLE_EXPECTED,
    NAMESPACE,
    NODE_IP,
    ROLLOUT_LEARNING_PERIOD,
    SESSION_DIR,
    SHOP,
    SYSTEM,
    lateral,
    lifecycle,
    write_capture,
)
from tests.e2e.harness import GADGETWATCH, Proc
from tests.e2e.scenario import MIN, T0, Expected, expected_of

#: Replay pace: the capture's ~190 payloads take about two seconds, so a 100 ms update period
#: flushes (and the directory store's watch reloads) many times while it plays.
RATE = 100
WILDCARD = "⋯"


async def replay(
    capture: Path, profiles: Path, env: dict[str, str], *, update_period: str
) -> tuple[list[Expected], list[dict[str, Any]]]:
    """Run the agent over the capture to its end; its alerts and its log lines."""
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH, "run", "--no-metrics",
            "--replay", str(capture), "--replay-rate", str(RATE),
            "--learning-period", LEARNING_PERIOD,
            "--profiles-dir", str(profiles),
        ],
        env={
            **env,
            "GADGETWATCH_PROFILER__UPDATE_PERIOD": update_period,
            "GADGETWATCH_PROFILER__ROLLOUT_LEARNING_PERIOD": ROLLOUT_LEARNING_PERIOD,
        },
    )  # fmt: skip
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    alerts = [expected_of(a) for a in (_json(line) for line in proc.stdout) if a is not None]
    return sorted(alerts), proc.logs()


def _json(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "rule" in obj else None


def _profile(profiles: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((profiles / NAMESPACE / f"{name}.yaml").read_text())
    return doc


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "lifecycle.capture.jsonl"
    return write_capture(path, lifecycle(), "event-time lifecycle transitions (issue 9)")


@pytest.mark.parametrize("update_period", ["100ms", "24h"])
async def test_lifecycle_transitions_are_judged_on_event_time(
    capture: Path, tmp_path: Path, env: dict[str, str], update_period: str
) -> None:
    profiles = tmp_path / "profiles"
    alerts, logs = await replay(capture, profiles, env, update_period=update_period)
    # Exactly these, whatever the update period: no R0002 per new session file after the
    # collapse, no R0001 for the new revision's tools in its relearn window, R1000/R1001 in
    # the window, R0001 after it, and R0001 once the single learning period of `api` ended.
    assert alerts == sorted(LIFECYCLE_EXPECTED)

    reopened = [e for e in logs if e.get("event") == "profile learning reopened"]
    assert [e["profile"] for e in reopened] == [f"{NAMESPACE}/Deployment/web/app"]

    # The rollout during learning kept one profile and one learning period.
    names = sorted(p.stem for p in (profiles / NAMESPACE).glob("*.yaml"))
    assert names == ["deployment-api-app", "deployment-sessions-app", "deployment-web-app"]
    api = _profile(profiles, "deployment-api-app")["status"]
    assert (api["phase"], api["series"]) == ("completed", 1)
    assert (api["learningStartNs"], api["learningPeriodNs"]) == (T0, MIN)
    container = _profile(profiles, "deployment-api-app")["spec"]["containers"][0]
    execs = {e["path"] for e in container["execs"]}
    assert "/usr/bin/migrate" in execs
    assert "/usr/bin/curl" not in execs

    web = _profile(profiles, "deployment-web-app")["status"]
    assert (web["phase"], web["series"]) == ("completed", 2)

    opens = {
        o["path"]
        for o in _profile(profiles, "deployment-sessions-app")["spec"]["containers"][0]["opens"]
    }
    assert f"{SESSION_DIR}/{WILDCARD}" in opens
    assert not any(p.startswith(f"{SESSION_DIR}/sess_") for p in opens)


def bindings_allowing_metrics_server(path: Path) -> Path:
    """The default binding, with R2102 allowing metrics-server (by workload) to scrape
    kubelets: the parameter a real cluster needs."""
    doc = default_binding_document(default_catalogue())
    for rule in doc["spec"]["rules"]:
        if rule["ruleName"] == "Kubelet API contacted":
            rule["parameters"] = {"allowedWorkloads": ["kube-system/Deployment/metrics-server"]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def test_lateral_movement_metadata_kubelet_and_cronjob_runs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    capture = write_capture(
        tmp_path / "lateral.capture.jsonl", lateral(), "lateral movement, CronJob runs (issue 9)"
    )
    bindings = bindings_allowing_metrics_server(tmp_path / "bindings.yaml")
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH, "run", "--no-metrics",
            "--replay", str(capture),
            "--learning-period", LEARNING_PERIOD,
            "--profiles-dir", str(tmp_path / "profiles"),
            "--bindings", str(bindings),
        ],
        env=env,
    )  # fmt: skip
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    alerts = [a for a in (_json(line) for line in proc.stdout) if a is not None]
    # Exactly: the other namespace's database and the node (R2100, by identity: the
    # rescheduled database pod is the same workload), the kubelet (R2102, not for
    # metrics-server), the metadata endpoint (R2101), and the second CronJob run's upload
    # (R0001: both runs are one workload, CronJob/report-gen, without a pod cache).
    assert sorted(expected_of(a) for a in alerts) == sorted(LATERAL_EXPECTED)
    identities = sorted(
        tuple(a["event"]["peerIdentity"].values()) for a in alerts if a["rule"]["id"] == "R2100"
    )
    assert identities == [("Address", "", NODE_IP), ("Deployment", "payments", "payments")]
    lateral_msgs = sorted(a["message"] for a in alerts if a["rule"]["id"] == "R2100")
    assert lateral_msgs == [
        "Unexpected in-cluster connection to Deployment payments/payments (10.244.3.9) port "
        "5432 by psql (pid 700)",
        f"Unexpected in-cluster connection to address {NODE_IP} port 10250 by curl (pid 701)",
    ]
    profiles = sorted(p.relative_to(tmp_path / "profiles").as_posix()
                      for p in (tmp_path / "profiles").rglob("*.yaml"))  # fmt: skip
    assert profiles == [
        f"{JOBS}/cronjob-report-gen-report.yaml",
        f"{SYSTEM}/deployment-metrics-server-metrics-server.yaml",
        f"{SHOP}/deployment-front-app.yaml",
    ]
