"""The alert store: deduplication by id, filters, incidents, the chart's buckets, retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from gadgetwatch.console.store import AlertFilter, AlertStore, InvalidAlertError, parse_time, row_of
from tests.console.helpers import alert

S = 1_000_000_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_parse_time_keeps_nanoseconds_and_offsets() -> None:
    assert parse_time("2026-01-01T00:00:00.000000001Z") == 1767225600 * S + 1
    assert parse_time("2026-01-01T01:00:00.5+01:00") == 1767225600 * S + S // 2
    assert parse_time("2026-01-01T00:00:00Z") == 1767225600 * S
    for bad in ("", "yesterday", "2026-01-01T00:00:00.x1Z", 5):
        with pytest.raises(InvalidAlertError, match="time"):
            parse_time(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"rule": {"id": "R1", "severity": "urgent"}}, "rule.severity"),
        ({"dedup": {"count": 0}}, "dedup.count"),
        ({"kubernetes": "shop"}, "kubernetes"),
        ({"message": "x" * 600_000}, "alert"),
    ],
)
def test_invalid_alerts_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidAlertError, match=field):
        row_of({**alert(), **change})


async def test_a_repeated_delivery_counts_instead_of_adding_a_row(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    await store.open()
    try:
        a = row_of(alert(alert_id="one", count=6))
        first = await store.ingest([a])
        again = await store.ingest([a, row_of(alert(alert_id="two"))])
        assert (first.accepted, first.duplicates) == (1, 0)
        assert (again.accepted, again.duplicates) == (1, 1)
        assert [r.id for r in again.rows] == ["two"]
        got = await store.get("one")
        assert got is not None
        assert got[1] == 2
        assert got[0]["dedup"]["count"] == 6
        assert await store.finding("3f7c0a9d12e4b6a1") == (2, 7, got[0] and parse_time(
            "2026-01-01T00:00:00Z"), parse_time("2026-01-01T00:00:00Z"))  # fmt: skip
        assert (store.stats.accepted, store.stats.duplicates) == (2, 1)
    finally:
        await store.close()


async def test_filters_incidents_and_histogram(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    await store.open()
    try:
        rows = [
            # web: two alerts in the first 15 minutes, one an hour later; api: one high.
            alert(time="2026-01-01T00:01:00Z", rule="R0001", count=3),
            alert(time="2026-01-01T00:05:00Z", rule="R0002", severity="high"),
            alert(time="2026-01-01T01:02:00Z", rule="R0001"),
            alert(
                time="2026-01-01T00:03:00Z",
                workload="api",
                rule="R0005",
                severity="critical",
                namespace="pay",
            ),
        ]
        await store.ingest([row_of(r) for r in rows])
        everything = await store.recent(AlertFilter())
        assert [a.rule_id for a in everything] == ["R0001", "R0002", "R0005", "R0001"]
        assert [a.rule_id for a in await store.recent(AlertFilter(rule="R0001"))] == ["R0001"] * 2
        assert {a.workload_name for a in await store.recent(AlertFilter(min_severity=4))} == {
            "web", "api"
        }  # fmt: skip
        assert await store.count(AlertFilter(namespace="pay")) == 1
        since = AlertFilter(since_ns=parse_time("2026-01-01T00:04:00Z"))
        assert await store.count(since) == 2
        incidents = await store.incidents(AlertFilter(namespace="shop"), window_ns=900 * S)
        assert [(i.workload_name, i.alerts, i.occurrences, i.rules) for i in incidents] == [
            ("web", 1, 1, ("R0001",)),
            ("web", 2, 4, ("R0001", "R0002")),
        ]
        assert incidents[1].max_severity == 4
        start, width, cells = await store.histogram(AlertFilter(), buckets=4)
        assert start == parse_time("2026-01-01T00:01:00Z")
        assert sum(n for _, _, n in cells) == 4
        assert {(b, s) for b, s, _ in cells} >= {(0, 3), (0, 4), (0, 5), (3, 3)}
        assert width * 4 > parse_time("2026-01-01T01:02:00Z") - start
        facets = await store.facets()
        assert facets["namespace"] == ["pay", "shop"]
    finally:
        await store.close()


async def test_retention_by_age_and_by_count_is_counted(tmp_path: Path) -> None:
    clock = Clock(1_000_000 * S)
    store = AlertStore(tmp_path / "a.db", max_age_s=3600, max_alerts=3, clock=clock)
    await store.open()
    try:
        await store.ingest([row_of(alert(alert_id="old"))])
        clock.now += 3601 * S
        await store.ingest([row_of(alert(alert_id=f"new{i}")) for i in range(4)])
        removed = await store.enforce_retention()
        assert removed == {"age": 1, "count": 1}
        left = {a.id for a in await store.recent(AlertFilter())}
        assert left == {"new1", "new2", "new3"}
        assert store.stats.expired == {"age": 1, "count": 1}
        # The bodies went with their rows.
        assert store.db.execute("SELECT count(*) FROM alert_bodies").fetchone()[0] == 3
        # The database is in WAL mode (readers never wait for the writer).
        mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        await store.close()


async def test_pages_cover_every_alert_once_even_within_one_timestamp(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    await store.open()
    try:
        same = "2026-01-01T00:00:00Z"
        await store.ingest([row_of(alert(alert_id=f"s{i}", time=same)) for i in range(5)])
        await store.ingest([row_of(alert(alert_id="late", time="2026-01-01T00:00:01Z"))])
        seen: list[str] = []
        before = None
        while page := await store.recent(AlertFilter(), limit=2, before=before):
            seen += [a.id for a in page]
            before = (page[-1].time_ns, page[-1].seq)
        assert seen == ["late", "s4", "s3", "s2", "s1", "s0"]
    finally:
        await store.close()
