"""Logging: JSON lines, rate-limited per message, with the held-back count reported."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from gadgetwatch.cli import main
from gadgetwatch.logs import RateLimiter, configure_logging, flush_held_back


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


def test_records_held_back_are_reported_at_shutdown() -> None:
    """At exit no later record of the same message reports the held-back count: the CLI's
    `flush_held_back` does, once per message (issue 10, item 6)."""
    out = io.StringIO()
    configure_logging("info", stream=out)
    try:
        log = structlog.get_logger("t")
        for _ in range(25):
            log.error("profile flush failed", error="No space left on device")
        log.error("other message")
        assert flush_held_back() == 5
        assert flush_held_back() == 0  # reported once
    finally:
        configure_logging("info")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sum(r["event"] == "profile flush failed" for r in records) == 20
    (report,) = [r for r in records if r["event"] == "log records held back by the rate limiter"]
    assert report["held_back"] == 5
    assert report["held_back_event"] == "profile flush failed"


def test_the_cli_reports_held_back_records_when_a_command_ends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def noisy(args: object) -> int:
        for _ in range(30):
            structlog.get_logger("t").warning("same thing again")
        return 0

    monkeypatch.setattr("gadgetwatch.commands.config._default", noisy)
    assert main(["config", "default"]) == 0
    err = capsys.readouterr().err
    (report,) = [json.loads(ln) for ln in err.splitlines() if "held back" in ln]
    assert report["held_back"] == 10


def test_credentials_in_urls_never_reach_the_log() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    try:
        structlog.get_logger("t").error(
            "send failed",
            error="cannot reach https://user:s3cret@hook.example/x?token=s3cret: refused",
            url="https://user:s3cret@hook.example/x",
            exc=ValueError("http://a:s3cret@b/"),
        )
    finally:
        configure_logging("info")
    assert "s3cret" not in out.getvalue()
    assert "REDACTED@hook.example" in out.getvalue()
