"""Counters for what the gadget streams deliver, lose and drop.

Domain packages count into plain objects (a dict increment costs ~50 ns on the hot path); the
metrics layer (`exporters/metrics.py`) reads them at scrape time and exposes them to Prometheus.
Keys are tuples of *bounded* label values (gadget names, reason enums), never container ids.
"""

from __future__ import annotations

import bisect
import enum
from collections import Counter
from dataclasses import dataclass, field


class LossReason(enum.StrEnum):
    """Events IG itself lost before they reached us."""

    #: A gap in `GadgetEvent.seq`: IG's server-side buffer overflowed.
    SEQ_GAP = "seq_gap"
    #: IG's "lost N samples" log events: the eBPF perf/ring buffer overflowed.
    LOST_SAMPLES = "lost_samples"
    #: Attached to a headless instance after a restart: payloads between the last seq handled
    #: and the first one its ring buffer still held (the buffer wrapped while detached).
    RING_BUFFER = "ring_buffer"


class DropReason(enum.StrEnum):
    """Events that reached us and that we could not use."""

    UNDECODABLE = "undecodable"
    UNKNOWN_DATASOURCE = "unknown_datasource"
    BEFORE_GADGETINFO = "before_gadgetinfo"
    UNMAPPABLE = "unmappable"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    #: A line of `--events -` input that is not usable JSON (`linesource.py`).
    BAD_LINE = "bad_line"


class Histogram:
    """A fixed-bucket histogram with Prometheus semantics (cumulative at export time).

    Cheaper than `prometheus_client.Histogram` on the hot path (no lock, no label lookup).
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile q (an upper estimate)."""
        total = self.count
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")


#: Seconds: 1 µs .. 100 ms. Decoding and rule evaluation sit in the 1-100 µs range.
LATENCY_BUCKETS: tuple[float, ...] = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    1e-2,
    1e-1,
)


@dataclass
class StreamStats:
    """One object per agent, shared by all gadget sessions."""

    #: payload events received, by gadget
    received: Counter[str] = field(default_factory=Counter)
    #: records decoded (an Array payload yields several), by gadget
    decoded: Counter[str] = field(default_factory=Counter)
    #: upstream losses, by (gadget, LossReason)
    lost: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: our drops, by (gadget, DropReason)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: stream (re)connections after a failure, by gadget
    reconnects: Counter[str] = field(default_factory=Counter)
    #: IG log events, by (gadget, severity name)
    log_events: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: payload elements decoded with missing slots or short containers (read as zero values, as
    #: IG's own formatter does), by (gadget, data source name)
    repaired: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: gadgetwatch's default params a server's gadget does not declare (older IG), counted
    #: once per source run, by (gadget, param key); see `gadget_params.py`
    params_unsupported: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: events that arrived without a field gadgetwatch asks IG to fill (an exec without
    #: `exepath`), by (gadget, field)
    unresolved: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: payloads an instance's ring buffer replayed that were handled before a restart (skipped,
    #: so nothing is processed twice), by gadget
    replay_skipped: Counter[str] = field(default_factory=Counter)
    #: headless instances replaced because their params differ from the configuration, by gadget
    instances_replaced: Counter[str] = field(default_factory=Counter)
    #: headless instances created, by gadget
    instances_created: Counter[str] = field(default_factory=Counter)
    #: events of containers another worker process owns (`pipeline.workers` > 1, see
    #: `sharding.py`): skipped here because that worker keeps them, by gadget
    foreign: Counter[str] = field(default_factory=Counter)
    #: failed writes of the instance seq state (the next flush retries; a restart then replays
    #: a little more, which profiles absorb)
    state_write_errors: int = 0
    #: per-event decode time (seconds), all gadgets
    decode_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
