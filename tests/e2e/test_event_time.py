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

from tests.e2e.eventtime import (
    LEARNING_PERIOD,
    LIFECYCLE_EXPECTED,
    NAMESPACE,
    ROLLOUT_LEARNING_PERIOD,
    SESSION_DIR,
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
