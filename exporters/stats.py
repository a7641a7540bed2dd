"""Counters for alert delivery (see `gadgetclient.stats` for the pattern)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DeliveryStats:
    #: alerts delivered, by exporter
    sent: Counter[str] = field(default_factory=Counter)
    #: failed send attempts, by (exporter, reason): transient, permanent, error (an unexpected
    #: exception from the exporter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: alerts given up on, by (exporter, reason): queue_full, permanent_error, shutdown,
    #: rate_limit, retries_exhausted, exporter_error
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: current queue depth, by exporter (a gauge)
    queue_depth: Counter[str] = field(default_factory=Counter)
    #: whether the last attempt of each exporter succeeded (1) or not (0) (a gauge)
    up: Counter[str] = field(default_factory=Counter)
    #: firing alerts re-sent because their behaviour repeated (AlertManager), by exporter
    resent: Counter[str] = field(default_factory=Counter)
