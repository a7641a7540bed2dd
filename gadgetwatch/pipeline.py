"""The event pipeline between the gadget sessions and the alert fan-out.

    gadget sessions ──on_batch──► Batcher ──► [bounded queue] ──► processing task
                                                                   per slice of the batch:
                                                                     profiler.observe_until
                                                                     detector.evaluate(slice)
                                                                   sink(alert) per alert
                                                                   repeat_sink(repeats)

Why one processing stage and not a profiler task beside a detector task: both are pure CPU on
the same core, so two tasks add no parallelism, and running them in sequence on the same batch
gives a guarantee the detector needs: when it evaluates an event, the profile already reflects
every earlier event of that container (in particular, the learning period has been closed by
event time). Two queues could let the detector overtake the profiler and judge an intrusion
against a profile that is still learning.

Why slices: the profiler learns a batch up to the next lifecycle transition (a learning period
closing, a rollout reopening learning, a cap reached) and stops there, the detector judges that
slice, then the profiler goes on. So every event is judged against the profile state of its
own moment in event time: not the state before a transition an earlier event of the batch
caused, nor one that a later event of the batch will cause. Transitions are rare, so nearly
every batch is one slice.

Scaling past one core (design notes in the README): gadget streams are independent and every
decision is per container, so the stage shards by `Container.key` across worker processes, each
with its own profiler and detector; profiles merge by set union in the store, so shards never
coordinate.

Drops: the queue is bounded; when it is full the newest batch is dropped and counted as
`(stage="processing", reason="queue_full")`. Blocking instead would only move the loss into IG
or the kernel, where nobody could count it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from detector.alerts import Alert
from gadgetclient.events import Event
from gadgetclient.stats import Histogram

log = structlog.get_logger(__name__)


class _EndOfStream(enum.Enum):
    EOS = enum.auto()


EOS = _EndOfStream.EOS

#: Seconds from receiving an event to handing its alert to the exporters: 10 µs .. 10 s.
ALERT_LATENCY_BUCKETS: tuple[float, ...] = (
    1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 10.0,
)  # fmt: skip


@dataclass
class PipelineStats:
    #: events dropped inside the agent, by (stage, reason)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: events processed by the processing stage
    processed: int = 0
    #: alerts handed to the exporters
    alerts: int = 0
    #: batches waiting in the processing queue (a gauge)
    queue_depth: int = 0
    #: time from batch arrival to the alert being handed on, seconds
    alert_latency_seconds: Histogram = field(
        default_factory=lambda: Histogram(ALERT_LATENCY_BUCKETS)
    )


class Observer(Protocol):
    def observe_until(self, events: Sequence[Event], start: int) -> int:
        """Learn ``events[start:]`` up to the next lifecycle transition; return where it stopped
        (see `profiler.learning.Learner.observe_until`)."""
        ...


class Evaluator(Protocol):
    def evaluate(self, events: Sequence[Event]) -> list[Alert]: ...


@dataclass(slots=True)
class _Batch:
    events: list[Event]
    received_at: float


class Pipeline:
    """Batcher + bounded queue + processing task. Create, `start()`, feed, `drain()`."""

    def __init__(
        self,
        *,
        profiler: Observer,
        detector: Evaluator,
        sink: Callable[[Alert], None],
        stats: PipelineStats,
        queue_batches: int,
        batch_size: int,
        batch_delay_s: float,
        clock: Callable[[], float] = time.perf_counter,
        repeats: Callable[[], Mapping[str, int]] | None = None,
        repeat_sink: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self._profiler = profiler
        self._detector = detector
        self._sink = sink
        #: Occurrences the detector suppressed (by fingerprint), handed on after each batch so
        #: that AlertManager alerts stay firing while their behaviour repeats.
        self._repeats = repeats
        self._repeat_sink = repeat_sink
        self.stats = stats
        self._queue: asyncio.Queue[_Batch | _EndOfStream] = asyncio.Queue(maxsize=queue_batches)
        self._batch_size = batch_size
        self._batch_delay_s = batch_delay_s
        self._clock = clock
        self._pending: list[Event] = []
        self._pending_since = 0.0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed = False

    # -- producer side (called from the gadget sessions, on the event loop) --------------------

    def feed(self, events: Sequence[Event]) -> None:
        """Accept a batch from a source. Never blocks, never raises.

        A list of at least `batch_size` events arriving while nothing is pending becomes a
        batch as it is: the caller hands it over (`GadgetSource` never touches a batch again).
        """
        if self._closed:
            self.stats.dropped[("batching", "closed")] += len(events)
            return
        if not self._pending and len(events) >= self._batch_size and isinstance(events, list):
            # The source already batched: a full batch is queued as it is (no copy, no timer).
            self._enqueue(_Batch(events, self._clock()))
            return
        if not self._pending:
            self._pending_since = self._clock()
            if self._flush_handle is None:
                loop = asyncio.get_running_loop()
                self._flush_handle = loop.call_later(self._batch_delay_s, self._flush_timer)
        self._pending.extend(events)
        if len(self._pending) >= self._batch_size:
            self._flush()

    def _flush_timer(self) -> None:
        self._flush_handle = None
        self._flush()

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        batch = _Batch(self._pending, self._pending_since)
        self._pending = []
        self._enqueue(batch)

    def _enqueue(self, batch: _Batch) -> None:
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.stats.dropped[("processing", "queue_full")] += len(batch.events)
            log.error("processing queue full, batch dropped", events=len(batch.events))
        self.stats.queue_depth = self._queue.qsize()

    # -- consumer side -------------------------------------------------------------------------

    async def run(self) -> None:
        """The processing task. Returns after `close()` once the queue is drained."""
        while True:
            item = await self._queue.get()
            self.stats.queue_depth = self._queue.qsize()
            if item is EOS:
                return
            self._process(item)

    def _process(self, batch: _Batch) -> None:
        events = batch.events
        alerts: list[Alert] = []
        start, end = 0, len(events)
        while start < end:
            try:
                stop = self._profiler.observe_until(events, start)
            except Exception:  # a bug must not take detection down with it
                self.stats.dropped[("profiling", "internal_error")] += end - start
                log.exception("profiler failed on a batch")
                stop = end
            if not start < stop <= end:  # a broken profiler must not stall the stage
                self.stats.dropped[("profiling", "internal_error")] += end - start
                log.error("profiler returned an invalid position", start=start, stop=stop)
                stop = end
            chunk = events if start == 0 and stop == end else events[start:stop]
            try:
                alerts.extend(self._detector.evaluate(chunk))
            except Exception:
                self.stats.dropped[("detection", "internal_error")] += len(chunk)
                log.exception("detector failed on a batch")
            start = stop
        self.stats.processed += len(events)
        if alerts:
            latency = self._clock() - batch.received_at
            for alert in alerts:
                self._sink(alert)
                self.stats.alert_latency_seconds.observe(latency)
            self.stats.alerts += len(alerts)
        if self._repeats is not None and self._repeat_sink is not None:
            repeats = self._repeats()
            if repeats:
                self._repeat_sink(repeats)

    async def close(self) -> None:
        """Stop accepting, hand on the partial batch, and let `run` finish after the backlog.

        Waits for queue space for the end marker; callers bound the wait with their deadline.
        """
        if self._closed:
            return
        self._flush()
        self._closed = True
        await self._queue.put(EOS)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()
