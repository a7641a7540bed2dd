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
    #: cooldown, exception, rate_limit, rule_unavailable
    suppressed: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: binding / exception / rule load errors, by source kind
    load_errors: Counter[str] = field(default_factory=Counter)
    #: per-event evaluation time (seconds) across the bound rules
    eval_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
