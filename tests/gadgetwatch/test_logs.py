"""Logging: JSON lines, rate-limited per message, with the held-back count reported."""

from __future__ import annotations

import io
import json

import structlog

from gadgetwatch.logs import RateLimiter, configure_logging


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_one_message_is_cut_to_the_burst_and_reported_later() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=3, window_s=60.0, clock=clock)
    passed = 0
    for _ in range(10):
        try:
            limiter(None, "error", {"event": "payload undecodable", "logger": "x"})
            passed += 1
        except structlog.DropEvent:
            pass
    assert passed == 3
    assert limiter.suppressed_total == 7
    # Another message is not affected by the first one's budget.
    assert limiter(None, "error", {"event": "other", "logger": "x"})["event"] == "other"
    clock.now = 61.0
    first_after = limiter(None, "error", {"event": "payload undecodable", "logger": "x"})
    assert first_after["suppressed_before"] == 7


def test_records_are_json_lines_with_level_and_fields() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    try:
        structlog.get_logger("t").info("profile flushed", entries=3, path="/a\nb")
        structlog.get_logger("t").debug("hidden at info")
    finally:
        configure_logging("info")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "profile flushed"
    assert record["level"] == "info"
    assert record["entries"] == 3
    assert record["path"] == "/a\nb"  # escaped inside JSON: one record stays one line
