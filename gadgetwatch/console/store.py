"""The console's alert store: one embedded SQLite database (WAL), bounded by age and count.

Agents post alerts (the webhook exporter's body, `docs/alerts.md`); the console keeps them
here and every page is a query. SQLite because one console serves one cluster and its alert
rate is modest (agents rate-limit and deduplicate before sending: 1000/min per agent at
most by default); no server to run, one file to back up. `docs/console.md` says where this
stops being enough.

- One row per alert `id`: delivery is at least once, so a repeated delivery increments
  `deliveries` instead of adding a row. `dedup_count` is the agent's own count of the
  occurrences the alert stands for; pages sum it per incident and per finding (`fingerprint`).
- Indexes on time and on (namespace | workload | rule | severity, time): every filter the
  Alerts page offers is an index range scan, newest first, with a LIMIT.
- Retention: rows older than `max_age` (by received time: a replayed capture's event times are
  old, and an alert should live as long after it arrived whatever its event time) and beyond
  `max_alerts` (oldest first) are deleted by `enforce_retention`, which the server runs
  periodically; deletions are counted.
- Every call runs on one worker thread (the connection is not shared across threads at the
  same time), so the event loop never blocks on disk and the writes are serialised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from detector.alerts import Severity

T = TypeVar("T")

#: Longest accepted alert id: a UUID is 36 characters; a little room for other senders.
MAX_ID = 64
#: Longest stored value of an indexed text column (namespace, workload, rule id ...): real
#: Kubernetes names are at most 253 characters; longer ones are cut, not rejected.
MAX_KEY = 256
#: Longest stored JSON body of one alert. The agent bounds every string (2 KiB) and the args
#: (8 KiB), so its alerts stay far below this; a bigger body comes from another sender and is
#: rejected, not stored.
MAX_BODY = 512 * 1024

#: Alerts the incident grouping looks at (the newest that match): enough for every incident
#: of a busy day, bounded so the Alerts page costs the same with 100,000 alerts stored.
INCIDENT_SCAN = 5000

#: Incident rows shown: a screenful; older ones are a time filter away.
INCIDENTS_SHOWN = 50
#: Bars of the alerts-over-time chart: a day in half hours, readable at 960 px.
CHART_BUCKETS = 48
#: Values offered per filter drop-down (more is not a usable list; the URL takes any value).
MAX_FACETS = 500
#: Nodes listed on the Health page (a large cluster's node count).
MAX_NODES = 1000

#: The tables' layout, in the database (`PRAGMA user_version`): a console refuses a file
#: written by another layout instead of misreading it.
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    time_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    node TEXT NOT NULL,
    namespace TEXT NOT NULL,
    workload_kind TEXT NOT NULL,
    workload_name TEXT NOT NULL,
    container TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    severity INTEGER NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    message TEXT NOT NULL,
    dedup_count INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
);
-- The JSON bodies apart from the indexed columns: a scan for the chart, the incidents or the
-- Health page then reads ~150 bytes a row instead of the ~1.5 KiB a body takes.
CREATE TABLE IF NOT EXISTS alert_bodies (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS alerts_body_gone AFTER DELETE ON alerts BEGIN
    DELETE FROM alert_bodies WHERE seq = old.seq;
END;
-- Covers the chart (time, severity) and the incident grouping (the rest): both read only it.
CREATE INDEX IF NOT EXISTS alerts_time ON alerts
    (time_ns, severity, namespace, workload_kind, workload_name, dedup_count, rule_id);
CREATE INDEX IF NOT EXISTS alerts_namespace ON alerts (namespace, time_ns);
CREATE INDEX IF NOT EXISTS alerts_workload ON alerts (workload_name, time_ns);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule_id, time_ns);
CREATE INDEX IF NOT EXISTS alerts_severity ON alerts (severity, time_ns);
CREATE INDEX IF NOT EXISTS alerts_fingerprint ON alerts (fingerprint);
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_ns);
CREATE INDEX IF NOT EXISTS alerts_node ON alerts (cluster, node, received_ns);
"""


class InvalidAlertError(ValueError):
    """An alert body the console cannot store; the message names the field."""


def parse_time(text: str) -> int:
    """RFC 3339 (``2026-01-01T00:00:00.123456789Z``, any fraction length, any offset) to ns."""
    if not isinstance(text, str) or len(text) > 40:
        raise InvalidAlertError("time: expected an RFC 3339 string")
    main, frac, zone = text, "", ""
    if text.endswith(("Z", "z")):
        main, zone = text[:-1], "+00:00"
    elif len(text) > 6 and text[-6] in "+-":
        main, zone = text[:-6], text[-6:]
    if "." in main:
        main, frac = main.split(".", 1)
    if not frac.isdigit() and frac:
        raise InvalidAlertError("time: bad fraction")
    try:
        moment = dt.datetime.fromisoformat(main + (zone or "+00:00"))
    except ValueError as exc:
        raise InvalidAlertError(f"time: {exc}") from None
    return int(moment.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)


def _text(data: Mapping[str, Any], key: str, *, limit: int = MAX_KEY, where: str = "") -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidAlertError(f"{where}{key}: expected a string")
    return value[:limit]


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise InvalidAlertError(f"{key}: expected an object")
    return value


@dataclass(frozen=True, slots=True)
class Row:
    """The indexed columns of one alert, taken from its JSON form."""

    id: str
    time_ns: int
    cluster: str
    node: str
    namespace: str
    workload_kind: str
    workload_name: str
    container: str
    rule_id: str
    rule_name: str
    severity: int
    kind: str
    fingerprint: str
    message: str
    dedup_count: int
    body: bytes


def row_of(alert: Any) -> Row:
    """Validate one alert object (the documented schema, leniently) into its columns."""
    if not isinstance(alert, Mapping):
        raise InvalidAlertError("alert: expected an object")
    alert_id = alert.get("id")
    if not isinstance(alert_id, str) or not alert_id or len(alert_id) > MAX_ID:
        raise InvalidAlertError(f"id: expected a string of 1-{MAX_ID} characters")
    rule = _section(alert, "rule")
    k8s = _section(alert, "kubernetes")
    dedup = _section(alert, "dedup")
    try:
        severity = Severity.parse(rule.get("severity", ""))
    except (ValueError, TypeError):
        raise InvalidAlertError(
            "rule.severity: expected info, low, medium, high or critical"
        ) from None
    count = dedup.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidAlertError("dedup.count: expected an integer >= 1")
    body = orjson.dumps(alert)
    if len(body) > MAX_BODY:
        raise InvalidAlertError(f"alert: {len(body)} bytes, more than {MAX_BODY}")
    return Row(
        id=alert_id,
        time_ns=parse_time(alert.get("time", "")),
        cluster=_text(alert, "cluster"),
        node=_text(k8s, "node", where="kubernetes."),
        namespace=_text(k8s, "namespace", where="kubernetes."),
        workload_kind=_text(k8s, "workloadKind", where="kubernetes."),
        workload_name=_text(k8s, "workloadName", where="kubernetes."),
        container=_text(k8s, "container", where="kubernetes."),
        rule_id=_text(rule, "id", where="rule."),
        rule_name=_text(rule, "name", where="rule."),
        severity=int(severity),
        kind=_text(alert, "kind") or "rule",
        fingerprint=_text(alert, "fingerprint"),
        message=_text(alert, "message", limit=MAX_BODY),
        dedup_count=count,
        body=body,
    )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What the Alerts page asks for; empty fields do not filter."""

    namespace: str = ""
    workload: str = ""
    rule: str = ""
    #: the lowest severity shown (``high`` shows high and critical); 0: all
    min_severity: int = 0
    since_ns: int = 0
    until_ns: int = 0

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("namespace", self.namespace),
            ("workload_name", self.workload),
            ("rule_id", self.rule),
        ):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.min_severity:
            clauses.append("severity >= ?")
            params.append(self.min_severity)
        if self.since_ns:
            clauses.append("time_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns:
            clauses.append("time_ns < ?")
            params.append(self.until_ns)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def matches(self, row: Row) -> bool:
        """The same filter applied to one new alert (the live view's server side)."""
        return (
            (not self.namespace or row.namespace == self.namespace)
            and (not self.workload or row.workload_name == self.workload)
            and (not self.rule or row.rule_id == self.rule)
            and row.severity >= self.min_severity
            and (not self.since_ns or row.time_ns >= self.since_ns)
            and (not self.until_ns or row.time_ns < self.until_ns)
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """One alert as the list shows it."""

    seq: int
    id: str
    time_ns: int
    namespace: str
    workload_kind: str
    workload_name: str
    container: str
    rule_id: str
    rule_name: str
    severity: int
    message: str
    dedup_count: int
    deliveries: int
    node: str


_SUMMARY_COLUMNS = (
    "seq, id, time_ns, namespace, workload_kind, workload_name, container, rule_id, rule_name, "
    "severity, message, dedup_count, deliveries, node"
)


@dataclass(frozen=True, slots=True)
class Incident:
    """Alerts of one workload within one time window."""

    namespace: str
    workload_kind: str
    workload_name: str
    window_start_ns: int
    alerts: int
    occurrences: int
    max_severity: int
    rules: tuple[str, ...]
    first_ns: int
    last_ns: int


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rows: list[Row] = field(default_factory=list)


@dataclass(slots=True)
class StoreStats:
    """Counters of what the store did (the console's /metrics and Health page show them)."""

    accepted: int = 0
    duplicates: int = 0
    #: alerts rejected at ingestion, by reason (the field that was wrong)
    rejected: dict[str, int] = field(default_factory=dict)
    #: rows deleted by retention, by reason: age, count
    expired: dict[str, int] = field(default_factory=dict)


class AlertStore:
    """The SQLite database. Every public coroutine runs its statement on the store's thread."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_age_s: float = 30 * 86400,
        max_alerts: int = 1_000_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = str(path)
        self.max_age_ns = int(max_age_s * 1e9)
        self.max_alerts = max_alerts
        self.stats = StoreStats()
        self._clock = clock
        # One thread: the connection is used by one thread at a time and writes are serialised.
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="console-db")
        self._db: sqlite3.Connection | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed write survives a process crash; a power loss may lose the
        # last transactions (alerts are also in the agents' other destinations).
        db.execute("PRAGMA synchronous=NORMAL")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version not in (0, SCHEMA_VERSION):
            db.close()
            raise sqlite3.DatabaseError(
                f"schema version {version}, this console reads {SCHEMA_VERSION}"
            )
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db = db

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._pool.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the alert store is not open")
        return self._db

    # -- writes ------------------------------------------------------------------------------

    def _ingest(self, rows: Sequence[Row]) -> IngestResult:
        result = IngestResult()
        now = self._clock()
        db = self.db
        db.execute("BEGIN")
        try:
            for row in rows:
                (seq, deliveries) = db.execute(
                    "INSERT INTO alerts (id, time_ns, received_ns, cluster, node, namespace, "
                    "workload_kind, workload_name, container, rule_id, rule_name, severity, kind, "
                    "fingerprint, message, dedup_count) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET deliveries = deliveries + 1 "
                    "RETURNING seq, deliveries",
                    (
                        row.id, row.time_ns, now, row.cluster, row.node, row.namespace,
                        row.workload_kind, row.workload_name, row.container, row.rule_id,
                        row.rule_name, row.severity, row.kind, row.fingerprint, row.message,
                        row.dedup_count,
                    ),
                ).fetchone()  # fmt: skip
                if deliveries == 1:
                    db.execute(
                        "INSERT INTO alert_bodies (seq, body) VALUES (?, ?)", (seq, row.body)
                    )
                    result.accepted += 1
                    result.rows.append(row)
                else:
                    result.duplicates += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.stats.accepted += result.accepted
        self.stats.duplicates += result.duplicates
        return result

    async def ingest(self, rows: Sequence[Row]) -> IngestResult:
        """Store new alerts; a known id counts one more delivery. Returns the new rows."""
        return await self._run(self._ingest, rows)

    def reject(self, reason: str) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

    def _enforce_retention(self) -> dict[str, int]:
        db = self.db
        removed: dict[str, int] = {}
        if self.max_age_ns > 0:
            cut = self._clock() - self.max_age_ns
            removed["age"] = db.execute("DELETE FROM alerts WHERE received_ns < ?", (cut,)).rowcount
        if self.max_alerts > 0:
            (total,) = db.execute("SELECT count(*) FROM alerts").fetchone()
            excess = total - self.max_alerts
            if excess > 0:
                removed["count"] = db.execute(
                    "DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
        for reason, n in removed.items():
            if n:
                self.stats.expired[reason] = self.stats.expired.get(reason, 0) + n
        return removed

    async def enforce_retention(self) -> dict[str, int]:
        """Delete what is too old or too many; returns the deleted rows by reason."""
        return await self._run(self._enforce_retention)

    # -- reads -------------------------------------------------------------------------------

    def _recent(
        self, flt: AlertFilter, limit: int, before: tuple[int, int] | None
    ) -> list[Summary]:
        where, params = flt.where()
        if before is not None:
            # Keyset paging in the list's order (time, then arrival): stable while alerts arrive.
            where += (
                " AND " if where else " WHERE "
            ) + "(time_ns < ? OR (time_ns = ? AND seq < ?))"
            params += [before[0], before[0], before[1]]
        rows = self.db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM alerts{where} ORDER BY time_ns DESC, seq DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [Summary(*r) for r in rows]

    async def recent(
        self, flt: AlertFilter, *, limit: int = 100, before: tuple[int, int] | None = None
    ) -> list[Summary]:
        """The newest alerts (by event time) that match; `before` (time, seq) of the last one
        shown gives the next page."""
        return await self._run(self._recent, flt, limit, before)

    def _count(self, flt: AlertFilter) -> int:
        where, params = flt.where()
        (n,) = self.db.execute(f"SELECT count(*) FROM alerts{where}", params).fetchone()
        return int(n)

    async def count(self, flt: AlertFilter) -> int:
        return await self._run(self._count, flt)

    def _get(self, alert_id: str) -> tuple[dict[str, Any], int, int] | None:
        row = self.db.execute(
            "SELECT b.body, a.deliveries, a.received_ns FROM alerts a "
            "JOIN alert_bodies b ON b.seq = a.seq WHERE a.id = ?",
            (alert_id,),
        ).fetchone()
        if row is None:
            return None
        return orjson.loads(row[0]), int(row[1]), int(row[2])

    async def get(self, alert_id: str) -> tuple[dict[str, Any], int, int] | None:
        """One alert's JSON body, its delivery count and when it first arrived."""
        return await self._run(self._get, alert_id)

    def _finding(self, fingerprint: str) -> tuple[int, int, int, int]:
        row = self.db.execute(
            "SELECT count(*), coalesce(sum(dedup_count), 0), coalesce(min(time_ns), 0), "
            "coalesce(max(time_ns), 0) FROM alerts WHERE fingerprint = ?",
            (fingerprint,),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def finding(self, fingerprint: str) -> tuple[int, int, int, int]:
        """(alerts, occurrences, first, last) of every stored alert of one finding."""
        return await self._run(self._finding, fingerprint)

    def _incidents(self, flt: AlertFilter, window_ns: int, limit: int) -> list[Incident]:
        where, params = flt.where()
        # Over the newest matching alerts only: the cost stays bounded whatever the store
        # holds, and older incidents are one time filter away.
        rows = self.db.execute(
            "SELECT namespace, workload_kind, workload_name, time_ns / ? AS w, count(*), "
            "sum(dedup_count), max(severity), group_concat(DISTINCT rule_id), min(time_ns), "
            "max(time_ns) FROM (SELECT namespace, workload_kind, workload_name, time_ns, "
            f"dedup_count, severity, rule_id FROM alerts{where} ORDER BY time_ns DESC LIMIT ?) "
            "GROUP BY namespace, workload_kind, workload_name, w ORDER BY w DESC, 7 DESC LIMIT ?",
            [window_ns, *params, INCIDENT_SCAN, limit],
        ).fetchall()
        return [
            Incident(
                namespace=r[0],
                workload_kind=r[1],
                workload_name=r[2],
                window_start_ns=int(r[3]) * window_ns,
                alerts=int(r[4]),
                occurrences=int(r[5]),
                max_severity=int(r[6]),
                rules=tuple(sorted((r[7] or "").split(","))),
                first_ns=int(r[8]),
                last_ns=int(r[9]),
            )
            for r in rows
        ]

    async def incidents(
        self, flt: AlertFilter, *, window_ns: int, limit: int = INCIDENTS_SHOWN
    ) -> list[Incident]:
        """Alerts grouped by workload and fixed time window (newest windows first)."""
        return await self._run(self._incidents, flt, window_ns, limit)

    def _histogram(
        self, flt: AlertFilter, buckets: int
    ) -> tuple[int, int, list[tuple[int, int, int]]]:
        where, params = flt.where()
        lo, hi = self.db.execute(
            f"SELECT min(time_ns), max(time_ns) FROM alerts{where}", params
        ).fetchone()
        if lo is None:
            return 0, 0, []
        width = max(1, (int(hi) - int(lo)) // buckets + 1)
        rows = self.db.execute(
            f"SELECT (time_ns - ?) / ? AS b, severity, count(*) FROM alerts{where} "
            "GROUP BY b, severity",
            [int(lo), width, *params],
        ).fetchall()
        return int(lo), width, [(int(b), int(s), int(n)) for b, s, n in rows]

    async def histogram(
        self, flt: AlertFilter, *, buckets: int = CHART_BUCKETS
    ) -> tuple[int, int, list[tuple[int, int, int]]]:
        """(start, bucket width, [(bucket, severity, count)]) over the matching alerts' span."""
        return await self._run(self._histogram, flt, buckets)

    def _facets(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        # A loose index scan: one index seek per distinct value (a plain DISTINCT walks the
        # whole index, every row), bounded for the drop-downs.
        for name, column in (
            ("namespace", "namespace"),
            ("workload", "workload_name"),
            ("rule", "rule_id"),
        ):
            out[name] = [
                r[0]
                for r in self.db.execute(
                    f"WITH RECURSIVE d(v) AS (SELECT min({column}) FROM alerts UNION ALL "
                    f"SELECT (SELECT min({column}) FROM alerts WHERE {column} > d.v) FROM d "
                    f"WHERE d.v IS NOT NULL) SELECT v FROM d WHERE v IS NOT NULL LIMIT {MAX_FACETS}"
                ).fetchall()
            ]
        return out

    async def facets(self) -> dict[str, list[str]]:
        """The values each filter can take (for the filter drop-downs)."""
        return await self._run(self._facets)

    def _by_node(self) -> list[tuple[str, str, int, int]]:
        rows = self.db.execute(
            "SELECT cluster, node, count(*), max(received_ns) FROM alerts "
            f"GROUP BY cluster, node ORDER BY cluster, node LIMIT {MAX_NODES}"
        ).fetchall()
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    async def by_node(self) -> list[tuple[str, str, int, int]]:
        """(cluster, node, alerts, last received) for the Health page."""
        return await self._run(self._by_node)

    def _insert_many(self, rows: Iterable[tuple[Row, int]]) -> None:
        db = self.db
        db.execute("BEGIN")
        for r, received in rows:
            cur = db.execute(
                "INSERT OR IGNORE INTO alerts (id, time_ns, received_ns, cluster, node, "
                "namespace, workload_kind, workload_name, container, rule_id, rule_name, "
                "severity, kind, fingerprint, message, dedup_count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.id, r.time_ns, received, r.cluster, r.node, r.namespace, r.workload_kind,
                    r.workload_name, r.container, r.rule_id, r.rule_name, r.severity, r.kind,
                    r.fingerprint, r.message, r.dedup_count,
                ),
            )  # fmt: skip
            if cur.rowcount:
                db.execute(
                    "INSERT INTO alert_bodies (seq, body) VALUES (?, ?)", (cur.lastrowid, r.body)
                )
        db.execute("COMMIT")

    async def insert_many(self, rows: Iterable[tuple[Row, int]]) -> None:
        """Bulk load (benchmarks, tests): rows with their received time, no counting."""
        await self._run(self._insert_many, rows)
