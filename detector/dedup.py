"""Cooldown with counts, and rate limits that announce themselves.

The predecessors' users drowned in repeats (Falco #1456, the seed's 87 AlertManager alerts
for one `ls`) and were hurt by throttles that dropped real alerts without a word (Falco
#1333, KubeArmor #2789). So:

- **Cooldown per (workload container, rule, dedup key)**, a tuple key: the first occurrence
  alerts; repeats within `cooldown` (event time) are counted, not sent; the next alert for the
  key after the cooldown carries ``count`` (1 + the repeats it stands for), ``firstSeen`` and
  ``lastSeen``. Keying on the workload container (not the pod or container id) means replicas
  and restarts share one cooldown: one finding, one alert.
- **Rate limits**, global and per rule, in fixed windows of event time. An alert over a limit
  is suppressed like a cooldown repeat (counted, and its count carried by the key's next
  alert), and the first suppression of a window produces exactly one "limit reached"
  announcement, which the evaluator turns into a system alert.
- Every suppression is counted in `DetectorStats.suppressed[(rule_id, reason)]`.

Memory is bounded: the table is an LRU of at most `max_keys` keys. Keys idle for longer than
the cooldown with nothing pending are expired (a few per call, amortised); beyond the bound
the least recently seen key is evicted. Both are counted (`dedup_evictions`).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from detector.alerts import DedupInfo
from detector.stats import DetectorStats

DedupKey = tuple[Hashable, ...]

#: Idle entries examined per admission for expiry: amortised O(1), still keeps pace with any
#: admission rate since each call examines more entries than it can create (one).
_EXPIRY_SCAN = 8

#: Announcement scope for the global limit (rule-specific ones carry the rule id).
GLOBAL = "global"


@dataclass(slots=True)
class _Entry:
    #: Event time of the last alert sent for the key; -1 if none was sent yet.
    last_alert_ns: int
    #: Occurrences suppressed since the last alert.
    pending: int
    #: Event time of the first pending occurrence.
    first_ns: int
    #: Event time of the last occurrence seen.
    last_ns: int


@dataclass(frozen=True, slots=True)
class LimitReached:
    #: `GLOBAL` or a rule id.
    scope: str
    limit: int
    window_start_ns: int
    time_ns: int


class Deduplicator:
    def __init__(
        self,
        *,
        cooldown_ns: int,
        max_keys: int,
        window_ns: int,
        global_limit: int,
        per_rule_limit: int,
        stats: DetectorStats,
    ) -> None:
        self.cooldown_ns = cooldown_ns
        self.max_keys = max_keys
        self.window_ns = max(window_ns, 1)
        self.global_limit = global_limit
        self.per_rule_limit = per_rule_limit
        self.stats = stats
        self._table: OrderedDict[DedupKey, _Entry] = OrderedDict()
        self._window = -1
        self._global_count = 0
        self._rule_counts: Counter[str] = Counter()
        self._announced: set[str] = set()
        self._announcements: list[LimitReached] = []

    def __len__(self) -> int:
        return len(self._table)

    def admit(self, key: DedupKey, rule_id: str, time_ns: int) -> DedupInfo | None:
        """DedupInfo if an alert should be sent now, None if suppressed (and counted)."""
        table = self._table
        entry = table.get(key)
        if entry is None:
            entry = table[key] = _Entry(-1, 0, time_ns, time_ns)
            if len(table) > self.max_keys:
                table.popitem(last=False)
                self.stats.dedup_evictions["capacity"] += 1
        else:
            table.move_to_end(key)
        self._expire(time_ns)
        if entry.last_alert_ns >= 0 and time_ns - entry.last_alert_ns < self.cooldown_ns:
            self._hold(entry, time_ns)
            self.stats.suppressed[(rule_id, "cooldown")] += 1
            return None
        if self._limited(rule_id, time_ns):
            self._hold(entry, time_ns)
            self.stats.suppressed[(rule_id, "rate_limit")] += 1
            return None
        first = entry.first_ns if entry.pending else time_ns
        info = DedupInfo(count=entry.pending + 1, first_seen_ns=first, last_seen_ns=time_ns)
        entry.last_alert_ns = time_ns
        entry.pending = 0
        entry.last_ns = time_ns
        return info

    def take_announcements(self) -> list[LimitReached]:
        out, self._announcements = self._announcements, []
        return out

    @staticmethod
    def _hold(entry: _Entry, time_ns: int) -> None:
        if entry.pending == 0:
            entry.first_ns = time_ns
        entry.pending += 1
        entry.last_ns = max(entry.last_ns, time_ns)

    def _expire(self, time_ns: int) -> None:
        table = self._table
        for _ in range(_EXPIRY_SCAN):
            if not table:
                return
            key, entry = next(iter(table.items()))
            if time_ns - entry.last_ns < self.cooldown_ns:
                return
            if entry.pending:
                # Idle but holding a count: keep it (its next alert must carry the count);
                # capacity eviction still bounds memory.
                table.move_to_end(key)
                continue
            del table[key]
            self.stats.dedup_evictions["expired"] += 1

    def _limited(self, rule_id: str, time_ns: int) -> bool:
        window = time_ns // self.window_ns
        if window > self._window:
            # Fixed windows that only move forward: events from several streams arrive
            # slightly out of order, and a late event must not reopen a past window.
            self._window = window
            self._global_count = 0
            self._rule_counts.clear()
            self._announced.clear()
        if self.global_limit and self._global_count >= self.global_limit:
            self._announce(GLOBAL, self.global_limit, time_ns)
            return True
        if self.per_rule_limit and self._rule_counts[rule_id] >= self.per_rule_limit:
            self._announce(rule_id, self.per_rule_limit, time_ns)
            return True
        self._global_count += 1
        self._rule_counts[rule_id] += 1
        return False

    def _announce(self, scope: str, limit: int, time_ns: int) -> None:
        if scope in self._announced:
            return
        self._announced.add(scope)
        self._announcements.append(
            LimitReached(scope, limit, self._window * self.window_ns, time_ns)
        )
