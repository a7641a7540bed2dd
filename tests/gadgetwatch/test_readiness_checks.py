"""The agent's exporter readiness (issue 10, item 9): one dead destination among several is
reported without gating; when every destination fails, no alert can leave the node."""

from __future__ import annotations

from typing import Any

from gadgetwatch.agent import exporters_readiness


def health(state: str) -> dict[str, Any]:
    return {"healthy": state == "ok", "state": state, "lastError": "" if state == "ok" else "x"}


def test_one_failing_destination_is_shown_but_not_gating() -> None:
    checks = {"webhook": health("ok"), "alertmanager": health("failing")}
    ready, details = exporters_readiness(checks)
    assert ready
    assert details["alertmanager"]["lastError"] == "x"


def test_every_destination_failing_is_not_ready() -> None:
    assert exporters_readiness({"a": health("failing"), "b": health("failing")})[0] is False
    assert exporters_readiness({"a": health("failing")})[0] is False


def test_unknown_state_at_start_is_ready() -> None:
    assert exporters_readiness({"a": health("unknown")})[0] is True
    assert exporters_readiness({})[0] is True
