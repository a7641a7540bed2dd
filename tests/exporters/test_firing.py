"""The firing table behind the AlertManager exporter, driven by a fake clock: slots, expiry,
the overflow bound, re-sends, and a repeat that arrives while a send is in flight."""

from __future__ import annotations

from typing import Any

from detector.alerts import format_time
from exporters.firing import (
    MAX_OVERFLOW_LISTED,
    MAX_OVERFLOW_TRACKED,
    OVERFLOW,
    AlertKey,
    FiringTable,
)

S = 1_000_000_000
MIN = 60 * S
GROUP = (("rule_id", "R0001"), ("workload_name", "web"))


def _table(max_findings: int = 2) -> FiringTable:
    return FiringTable(resolve_after_ns=30 * MIN, resend_interval_ns=MIN, max_findings=max_findings)


def _record(t: FiringTable, fp: str, now: int, *, first: int = 0, count: int = 1) -> AlertKey:
    return t.record(
        fingerprint=fp,
        group=GROUP,
        first_ns=first or now,
        count=count,
        text=f"found {fp}",
        annotations={"summary": "s", "description": f"found {fp}"},
        generator_url="",
        now_ns=now,
    )


def _send(t: FiringTable, keys: list[AlertKey], now: int) -> list[dict[str, Any]]:
    items = [t.item(k, now_ns=now, labels=dict(k[0])) for k in keys]
    t.mark_sent(keys, [i.pop("_version") for i in items], now)
    return items


def test_slots_overflow_and_expiry_free_a_slot() -> None:
    t = _table()
    now = 1000 * S
    assert _record(t, "a", now)[1] == "a"
    assert _record(t, "b", now)[1] == "b"
    assert _record(t, "c", now)[1] == OVERFLOW
    assert t.alerts_of(GROUP) == 3
    assert t.due(now) == []  # a first delivery is not a re-send
    _send(t, [(GROUP, "a"), (GROUP, "b"), (GROUP, OVERFLOW)], now)
    # "a" keeps repeating, "b" and "c" stop: 31 minutes later only "a" fires.
    assert t.repeat("a", 4, now_ns=now + 20 * MIN)
    later = now + 31 * MIN
    assert t.due(later) == [(GROUP, "a")]
    assert t.alerts_of(GROUP) == 1
    assert not t.repeat("b", 1, now_ns=later)  # ended: a repeat does not revive it
    # The freed slot goes to the next new finding; an ended one starts a new firing.
    assert _record(t, "d", later)[1] == "d"
    (item,) = _send(t, [_record(t, "b", later + S, first=later)], later + S)
    assert item["annotations"]["count"] == "1"
    assert item["startsAt"] == format_time(later)  # a new firing: its own first occurrence


def test_repeat_during_a_send_stays_dirty() -> None:
    t = _table()
    now = 1000 * S
    key = _record(t, "a", now)
    item = t.item(key, now_ns=now, labels={})
    t.repeat("a", 1, now_ns=now + 2 * MIN)  # arrives while the request is in flight
    t.mark_sent([key], [item.pop("_version")], now)
    assert t.due(now + 3 * MIN) == [key]
    (again,) = _send(t, [key], now + 3 * MIN)
    assert again["annotations"]["count"] == "2"
    assert t.due(now + 10 * MIN) == []


def test_counts_are_not_doubled_by_the_next_alert() -> None:
    """Repeats noted as they happen are part of the next alert's count: counted once."""
    t = _table()
    now = 1000 * S
    _send(t, [_record(t, "a", now)], now)
    t.repeat("a", 5, now_ns=now + MIN)
    (item,) = _send(t, [_record(t, "a", now + 2 * MIN, count=6)], now + 2 * MIN)
    assert item["annotations"]["count"] == "7"


def test_overflow_memory_and_listing_are_bounded() -> None:
    t = _table(max_findings=1)
    now = 1000 * S
    _record(t, "own", now)
    for i in range(MAX_OVERFLOW_TRACKED + 50):
        key = _record(t, f"x{i}", now)
    assert key == (GROUP, OVERFLOW)
    assert len(t) == 1 + MAX_OVERFLOW_TRACKED
    item = t.item(key, now_ns=now, labels=dict(GROUP))
    lines = item["annotations"]["findings"].split("\n")
    assert len(lines) == MAX_OVERFLOW_LISTED + 1
    assert lines[0] == f"1× found x{MAX_OVERFLOW_TRACKED + 49}"
    assert lines[-1] == f"… and {MAX_OVERFLOW_TRACKED + 50 - MAX_OVERFLOW_LISTED} more"
    assert item["annotations"]["count"] == str(MAX_OVERFLOW_TRACKED + 50)
    assert t.alerts_of(GROUP) == 2
    # Everything ends after resolveAfter: the table is empty again.
    assert t.due(now + 31 * MIN) == []
    assert len(t) == 0
    assert t.alerts_of(GROUP) == 0


def test_resend_interval_is_at_most_half_of_resolve_after() -> None:
    t = FiringTable(resolve_after_ns=40 * S, resend_interval_ns=MIN, max_findings=1)
    assert t.resend_ns == 20 * S
    now = 1000 * S
    _send(t, [_record(t, "a", now)], now)
    t.repeat("a", 1, now_ns=now + 5 * S)
    assert t.due(now + 19 * S) == []
    assert t.due(now + 20 * S) == [(GROUP, "a")]
