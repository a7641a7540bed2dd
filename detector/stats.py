"""Counters for the detector (see `gadgetclient.stats` for the pattern)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gadgetclient.stats import LATENCY_BUCKETS, Histogram


@dataclass
class DetectorStats:
    #: rule evaluations, by rule id
    evaluations: Counter[str] = field(default_factory=Counter)
    #: alerts emitted, by rule id
    alerts: Counter[str] = field(default_factory=Counter)
    #: evaluations or alerts suppressed, by (rule id, reason): profile_learning, no_profile,
    #: profile_partial, profile_too_large, cooldown, exception, rate_limit, rule_unavailable,
    #: policy (the profile's per-rule policy), dns_resolved (R0011 via a recent DNS answer)
    suppressed: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: binding / exception / rule load errors, by source kind
    load_errors: Counter[str] = field(default_factory=Counter)
    #: new rule sets refused because they hold no valid binding (the last good set stays in
    #: force), by source kind
    rulesets_rejected: Counter[str] = field(default_factory=Counter)
    #: per-event evaluation time (seconds) across the bound rules
    eval_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    #: cooldown-table entries removed, by reason: expired (idle past the cooldown, nothing
    #: pending), capacity (LRU bound reached)
    dedup_evictions: Counter[str] = field(default_factory=Counter)
    #: current number of cooldown-table keys (a gauge, updated per batch)
    dedup_keys: int = 0
    #: events answered by the per-container clean-event memo (no rule call), by event kind
    memo_hits: Counter[str] = field(default_factory=Counter)
    #: events seen by the detector, by event kind
    events: Counter[str] = field(default_factory=Counter)
    #: binding / exception load warnings (applied with a caveat), by source kind
    load_warnings: Counter[str] = field(default_factory=Counter)
    #: per-event evaluation errors (a rule raised), by rule id; the event is skipped for it
    errors: Counter[str] = field(default_factory=Counter)
    #: CEL rules disabled after `ruleErrorLimit` evaluation errors, by rule id (times)
    rules_disabled: Counter[str] = field(default_factory=Counter)
    #: R0011 resolved-address entries dropped, by reason (see `detector.resolved`); the same
    #: Counter object as `ResolvedAddresses.evictions`
    resolved_evictions: Counter[str] = field(default_factory=Counter)
    #: execs forgotten by the process table (`detector.processes`), by reason; a later event
    #: of such a pid is matched by `comm` only; the same Counter as `ProcessTable.evictions`
    processes_forgotten: Counter[str] = field(default_factory=Counter)
