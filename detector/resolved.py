"""Recently resolved addresses per workload: lets R0011 accept an egress to a CDN's new address.

A learned profile records the addresses a domain resolved to *during learning*. CDNs and cloud
APIs rotate addresses constantly, so an exact address comparison alerts on every rotation.
Kubescape's network neighbourhood lets such a connection pass; gadgetwatch does the same, but
only for a bounded time after the answer was seen:

    trace_dns response (name, addresses) of a container ─► `ResolvedAddresses.record`
        per workload: address -> {name: expiry (event time)}
    R0011 finding for address A ─► `allowed_by(workload, A, profile, now)`:
        some name that answered A within its lifetime and that the profile allows

Why this cannot turn one learned domain into a blanket allowance:

- only addresses *answered to this workload* are ever allowed, and only while the answer is
  fresh: each (address, name) pair expires ``ttl`` after the last answer that carried it
  (IG's trace_dns does not deliver the answer records' TTLs, so one bound applies to all;
  the default is longer than typical CDN TTLs of 20-300 s so that a connection made shortly
  after the answer expired is still accepted, and short enough that an address the domain
  stopped using is forgotten within minutes);
- the name must be allowed by the profile at the time of the connection (a name removed
  from the profile stops allowing its addresses at once);
- the table is bounded per workload and in workloads; the oldest answers are evicted first
  and every eviction is counted, so a flood of DNS answers cannot grow memory.

The residual risk is the one Kubescape accepts too: a process that controls the container's
DNS resolution (its own resolver, ``/etc/hosts`` is not seen by trace_dns) can make a profiled
name answer with any address. That is documented in docs/rules.md.

All times are event time (ns), so a replay gives the same answers whatever the wall clock.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from typing import Protocol


class KnowsDomains(Protocol):
    """The one question asked of the profile (a `ProfileView` answers it)."""

    def allows_domain(self, name: str) -> bool: ...


class ResolvedAddresses:
    """Bounded, expiring (address -> names) tables, one per workload, LRU in workloads."""

    __slots__ = ("_max_addresses", "_max_workloads", "_tables", "_ttl_ns", "evictions")

    def __init__(self, *, ttl_ns: int, max_addresses: int, max_workloads: int) -> None:
        self._ttl_ns = ttl_ns
        self._max_addresses = max_addresses
        self._max_workloads = max_workloads
        #: workload -> OrderedDict address -> {name: expiry_ns}, least recently answered first
        self._tables: OrderedDict[Hashable, OrderedDict[str, dict[str, int]]] = OrderedDict()
        #: entries dropped, by reason: capacity (per-workload bound), workloads (LRU in
        #: workloads), expired (found stale when read or refreshed)
        self.evictions: Counter[str] = Counter()

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

    def record(self, workload: Hashable, name: str, addresses: tuple[str, ...], now: int) -> None:
        """A DNS response for `name` answered `addresses` at event time `now`."""
        if not name or not addresses or self._ttl_ns <= 0:
            return
        table = self._tables.get(workload)
        if table is None:
            if len(self._tables) >= self._max_workloads:
                _, dropped = self._tables.popitem(last=False)
                self.evictions["workloads"] += len(dropped)
            table = self._tables[workload] = OrderedDict()
        else:
            self._tables.move_to_end(workload)
        expiry = now + self._ttl_ns
        for addr in addresses:
            names = table.get(addr)
            if names is None:
                if len(table) >= self._max_addresses:
                    table.popitem(last=False)
                    self.evictions["capacity"] += 1
                names = table[addr] = {}
            else:
                table.move_to_end(addr)
                stale = [n for n, e in names.items() if e <= now]
                for n in stale:
                    del names[n]
                self.evictions["expired"] += len(stale)
            names[name] = expiry

    def allowed_by(
        self, workload: Hashable, addr: str, profile: KnowsDomains, now: int
    ) -> str | None:
        """A profiled name that answered `addr` for this workload and is still fresh, or None."""
        table = self._tables.get(workload)
        if table is None:
            return None
        names = table.get(addr)
        if not names:
            return None
        found = None
        stale = []
        for name, expiry in names.items():
            if expiry <= now:
                stale.append(name)
            elif found is None and profile.allows_domain(name):
                found = name
        for name in stale:
            del names[name]
        self.evictions["expired"] += len(stale)
        if not names:
            del table[addr]
        return found
