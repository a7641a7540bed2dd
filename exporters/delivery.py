"""Delivery: one bounded queue and one task per exporter, between detection and destinations.

    detector ──submit(alert)──► Delivery ──► [queue: stdout] ──► task ──► StdoutExporter.send
                                          ├─► [queue: syslog] ──► task ──► SyslogExporter.send
                                          └─► [queue: alertmanager@am-0] ──► task ──► ...

Why this shape: the predecessors sent inline and retried for 30 s inside the detection path, so
one dead AlertManager stalled detection for everyone. Here `submit` is synchronous, never
blocks and never raises; each exporter drains its own queue in its own task, so a slow or dead
destination fills only its own queue and, once full, loses only its own newest alerts,
counted as `dropped{exporter, reason="queue_full"}`.

Per channel, the task takes the oldest alert, gathers what else is waiting (up to
`batchMaxAlerts`, waiting at most `batchMaxDelay`), and sends the batch:
- success: `sent{exporter}` += alerts, the exporter is healthy;
- transient failure (`SendError(permanent=False)`, a timeout): `failed{exporter,"transient"}`
  += 1, and the same batch is retried after an exponential backoff with jitter, bounded by
  `retryMaxBackoff`; with `retryMaxAttempts` > 0 the batch is eventually dropped
  (`reason="retries_exhausted"`). While a batch is retried, newer alerts wait in the queue, so
  a destination that comes back receives everything within the queue bound, in order;
- permanent failure (4xx other than 408/429): `failed{exporter,"permanent"}` += 1 and the batch
  is dropped (`reason="permanent_error"`), never retried;
- an unexpected exception from the exporter (a bug) is treated like a permanent failure
  (`failed{...,"error"}`, `reason="exporter_error"`) so that it cannot wedge the queue.

Health: each exporter's destination is probed (`healthcheck`) at start and, while it is failing,
every `healthcheckInterval`; every send updates it too. `health()` gives the per-exporter details
for `/readyz`; an unreachable destination at start is reported there and in the logs, and the
agent keeps running and retrying.

Shutdown (`aclose(deadline_s)`): new alerts are refused (`reason="shutdown"`), the tasks drain
their queues until the deadline, what is still queued or in flight is counted as dropped
(`reason="shutdown"`), then every exporter is closed. Idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from detector.alerts import Alert
from exporters.config import ExportersSettings
from exporters.errors import ExporterError, SendError
from exporters.exporter import Exporter, Refreshing
from exporters.limiting import Admission, RateLimiter, limit_reached_alert
from exporters.stats import DeliveryStats
from gadgetclient.textsafety import redact_urls

log = structlog.get_logger(__name__)


class _Stop(enum.Enum):
    STOP = enum.auto()


_STOP = _Stop.STOP


class HealthState(enum.StrEnum):
    UNKNOWN = "unknown"
    OK = "ok"
    FAILING = "failing"


@dataclass
class ExporterHealth:
    state: HealthState = HealthState.UNKNOWN
    #: The last failure, one line, without secrets.
    last_error: str = ""
    consecutive_failures: int = 0
    #: Wall time (ns) of the last successful send or probe, 0 if none yet.
    last_success_ns: int = 0

    def as_dict(self, *, queue_depth: int, queue_size: int) -> dict[str, Any]:
        return {
            "healthy": self.state is HealthState.OK,
            "state": self.state.value,
            "lastError": self.last_error,
            "consecutiveFailures": self.consecutive_failures,
            "lastSuccessNs": self.last_success_ns,
            "queueDepth": queue_depth,
            "queueSize": queue_size,
        }


def backoff_delay(
    attempt: int, *, initial_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds before retry number `attempt` (1-based): "equal jitter" exponential backoff.

    The cap doubles from `initial_s` up to `max_s`; the delay is drawn from [cap/2, cap], so
    agents that lost the same destination at the same moment do not retry in lock-step, while
    each still waits at least half the cap (no hammering).
    """
    cap = min(max_s, initial_s * float(2 ** min(attempt - 1, 32)))
    return cap / 2 + rng() * cap / 2


class _Channel:
    """One exporter's queue, task, limiter and health."""

    def __init__(
        self,
        exporter: Exporter,
        *,
        stats: DeliveryStats,
        closing: asyncio.Event,
        clock: Callable[[], float],
        wall_clock_ns: Callable[[], int],
        rng: Callable[[], float],
    ) -> None:
        self.exporter = exporter
        self.name = exporter.name
        self.settings = exporter.channel
        self.stats = stats
        self.queue: asyncio.Queue[Alert | _Stop] = asyncio.Queue(maxsize=self.settings.queue_size)
        self.closing = closing
        self.clock = clock
        self.wall_clock_ns = wall_clock_ns
        self.rng = rng
        per_minute = self.settings.max_alerts_per_minute
        self.limiter = RateLimiter(per_minute, clock=clock) if per_minute else None
        self.health = ExporterHealth()
        self.in_flight = 0
        #: True from the first queue-full drop until an alert fits again (log once per episode).
        self.dropping = False
        self.task: asyncio.Task[None] | None = None
        self.probe_task: asyncio.Task[None] | None = None
        #: Exporters whose destination must hear again about firing alerts (AlertManager).
        self.refreshing: Refreshing | None = exporter if isinstance(exporter, Refreshing) else None
        self.next_refresh = 0.0
        stats.queue_depth[self.name] = 0
        stats.up[self.name] = 0

    # -- producer side: synchronous, never blocks -----------------------------------------------

    def offer(self, alert: Alert) -> None:
        if self.limiter is not None:
            admission = self.limiter.admit()
            if admission is not Admission.PASS:
                self.stats.dropped[(self.name, "rate_limit")] += 1
                if admission is Admission.DROP:
                    return
                log.warning(
                    "alert rate limit reached",
                    exporter=self.name,
                    per_minute=self.limiter.per_minute,
                )
                alert = limit_reached_alert(
                    exporter=self.name,
                    per_minute=self.limiter.per_minute,
                    remaining_s=self.limiter.window_remaining_s,
                    trigger=alert,
                    time_ns=self.wall_clock_ns(),
                )
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.stats.dropped[(self.name, "queue_full")] += 1
            if not self.dropping:
                # Once per episode, not per alert: submit() sits on the detection path.
                self.dropping = True
                log.error(
                    "exporter queue full, dropping newest alerts",
                    exporter=self.name,
                    queue_size=self.settings.queue_size,
                )
        else:
            if self.dropping:
                self.dropping = False
                log.warning(
                    "exporter queue accepting alerts again",
                    exporter=self.name,
                    dropped_total=self.stats.dropped[(self.name, "queue_full")],
                )
        self._gauge()

    def _gauge(self) -> None:
        # A batch under retry has left the queue but is not delivered: it counts as waiting,
        # so an outage shows every undelivered alert in the metric.
        self.stats.queue_depth[self.name] = self.queue.qsize() + self.in_flight

    # -- consumer side ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self._run()
        if self.refreshing is not None and self.closing.is_set():
            # The queue is drained: tell the destination about the last repeats, so the
            # alerts end exactly `resolveAfter` after their behaviour stopped.
            await self._refresh(force=True)

    async def _next(self) -> Alert | _Stop | None:
        """The next queued item; None when it is time to refresh (refreshing exporters)."""
        if self.refreshing is None:
            return await self.queue.get()
        if self.clock() >= self.next_refresh:
            await self._refresh()
        if not self.queue.empty():
            return self.queue.get_nowait()
        try:
            async with asyncio.timeout(max(0.0, self.next_refresh - self.clock())):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def _refresh(self, *, force: bool = False) -> None:
        """Re-send what the exporter says is due; a failure waits for the next interval."""
        assert self.refreshing is not None
        self.next_refresh = self.clock() + self.refreshing.refresh_interval_s
        timeout_s = self.settings.send_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout_s):
                resent = await self.refreshing.refresh(force=force)
        except SendError as exc:
            self._failed("permanent" if exc.permanent else "transient", str(exc))
        except TimeoutError:
            self._failed("transient", f"re-send timed out after {timeout_s:g} s")
        except Exception as exc:
            self._failed("error", f"{type(exc).__name__}: {exc}")
            log.error("exporter re-send failed unexpectedly", exporter=self.name, exc_info=True)
        else:
            if resent:
                self.stats.resent[self.name] += resent
                self._succeeded()

    async def _run(self) -> None:
        while True:
            if self.closing.is_set() and self.queue.empty():
                return
            first = await self._next()
            if first is None:
                continue
            if first is _STOP:
                return
            batch = [first]
            self.in_flight = 1
            stop = await self._collect(batch)
            self.in_flight = len(batch)
            self._gauge()
            await self._deliver(batch)
            self.in_flight = 0
            self._gauge()
            if stop:
                return

    async def _collect(self, batch: list[Alert]) -> bool:
        """Add waiting alerts to `batch`; return True when the stop marker was reached."""
        limit = self.settings.batch_max_alerts
        deadline = self.clock() + self.settings.batch_max_delay.total_seconds()
        while len(batch) < limit:
            if self.queue.empty():
                remaining = deadline - self.clock()
                if remaining <= 0 or self.closing.is_set():
                    return False
                try:
                    async with asyncio.timeout(remaining):
                        item = await self.queue.get()
                except TimeoutError:
                    return False
            else:
                item = self.queue.get_nowait()
            if item is _STOP:
                return True
            batch.append(item)
            self.in_flight = len(batch)
        return False

    async def _deliver(self, batch: list[Alert]) -> None:
        attempt = 0
        timeout_s = self.settings.send_timeout.total_seconds()
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(timeout_s):
                    await self.exporter.send(batch)
            except SendError as exc:
                if exc.permanent:
                    self._failed("permanent", str(exc))
                    self.stats.dropped[(self.name, "permanent_error")] += len(batch)
                    log.error(
                        "alerts rejected by destination, dropped",
                        exporter=self.name,
                        alerts=len(batch),
                        status=exc.status,
                        error=str(exc),
                    )
                    return
                self._failed("transient", str(exc))
            except TimeoutError:
                self._failed("transient", f"send timed out after {timeout_s:g} s")
            except Exception as exc:
                self._failed("error", f"{type(exc).__name__}: {exc}")
                self.stats.dropped[(self.name, "exporter_error")] += len(batch)
                log.error(
                    "exporter failed unexpectedly, alerts dropped",
                    exporter=self.name,
                    alerts=len(batch),
                    exc_info=True,
                )
                return
            else:
                self.stats.sent[self.name] += len(batch)
                self._succeeded()
                return
            max_attempts = self.settings.retry_max_attempts
            if max_attempts and attempt >= max_attempts:
                self.stats.dropped[(self.name, "retries_exhausted")] += len(batch)
                log.error(
                    "alerts dropped after retries",
                    exporter=self.name,
                    alerts=len(batch),
                    attempts=attempt,
                    error=self.health.last_error,
                )
                return
            delay = backoff_delay(
                attempt,
                initial_s=self.settings.retry_initial_backoff.total_seconds(),
                max_s=self.settings.retry_max_backoff.total_seconds(),
                rng=self.rng,
            )
            log.warning(
                "alert delivery failed, retrying",
                exporter=self.name,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=self.health.last_error,
            )
            await self._backoff(delay)

    async def _backoff(self, delay: float) -> None:
        """Sleep, but cut the wait short once when shutdown starts, for one last try."""
        if self.closing.is_set():
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.closing.wait()

    def _failed(self, reason: str, error: str) -> None:
        self.stats.failed[(self.name, reason)] += 1
        self.stats.up[self.name] = 0
        h = self.health
        h.state = HealthState.FAILING
        h.last_error = redact_urls(error)
        h.consecutive_failures += 1

    def _succeeded(self) -> None:
        self.stats.up[self.name] = 1
        h = self.health
        if h.state is not HealthState.OK:
            log.info("exporter healthy", exporter=self.name)
        h.state = HealthState.OK
        h.consecutive_failures = 0
        h.last_success_ns = self.wall_clock_ns()

    # -- health probing --------------------------------------------------------------------------

    async def probe(self, *, interval_s: float, timeout_s: float) -> None:
        """Probe at start, then again every `interval_s` while the destination is failing."""
        while True:
            if self.in_flight == 0 and self.health.state is not HealthState.OK:
                await self._probe_once(timeout_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await self.closing.wait()
            if self.closing.is_set():
                return

    async def _probe_once(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self.exporter.healthcheck()
        except (ExporterError, TimeoutError, OSError) as exc:
            error = str(exc) or type(exc).__name__
            if self.in_flight:
                return
            first = self.health.state is HealthState.UNKNOWN
            self.health.state = HealthState.FAILING
            self.health.last_error = redact_urls(error)
            self.stats.up[self.name] = 0
            if first:
                log.error("exporter destination unreachable", exporter=self.name, error=error)
        else:
            if not self.in_flight:
                self._succeeded()

    def leftover(self) -> int:
        waiting = 0
        while not self.queue.empty():
            if self.queue.get_nowait() is not _STOP:
                waiting += 1
        return waiting + self.in_flight


class Delivery:
    """Fan-out of alerts to every exporter, each through its own bounded queue and task.

    Create with the exporters `build_exporters` made, `await start()`, then `submit(alert)`
    from the detection path; `await aclose(deadline_s)` on shutdown (it closes the exporters).
    """

    def __init__(
        self,
        exporters: Sequence[Exporter],
        *,
        stats: DeliveryStats,
        settings: ExportersSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        rng: Callable[[], float] = random.random,
    ) -> None:
        names = [e.name for e in exporters]
        if len(set(names)) != len(names):
            raise ExporterError(f"exporter names must be unique, got {names}")
        self.stats = stats
        self._settings = settings or ExportersSettings()
        self._closing = asyncio.Event()
        self._channels = [
            _Channel(
                e,
                stats=stats,
                closing=self._closing,
                clock=clock,
                wall_clock_ns=wall_clock_ns,
                rng=rng,
            )
            for e in exporters
        ]
        self._started = False
        self._closed = False
        self._closed_event = asyncio.Event()

    @property
    def exporters(self) -> list[Exporter]:
        return [ch.exporter for ch in self._channels]

    async def start(self) -> None:
        """Start one delivery task and one health probe per exporter. Returns at once."""
        if self._started or self._closed:
            return
        self._started = True
        interval_s = self._settings.healthcheck_interval.total_seconds()
        # A probe is a connect (and for AlertManager one GET): 10 s is generous for either, and
        # keeps a black-holed destination from holding a probe open for longer than a scrape.
        probe_timeout_s = min(interval_s, 10.0)
        for ch in self._channels:
            ch.task = asyncio.create_task(ch.run(), name=f"exporter:{ch.name}")
            ch.task.add_done_callback(self._task_done)
            ch.probe_task = asyncio.create_task(
                ch.probe(interval_s=interval_s, timeout_s=probe_timeout_s),
                name=f"exporter-probe:{ch.name}",
            )
        log.info("alert delivery started", exporters=[ch.name for ch in self._channels])

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closing.is_set():
            return
        exc = task.exception()
        for ch in self._channels:
            if ch.task is task:
                ch.health.state = HealthState.FAILING
                ch.health.last_error = redact_urls(f"delivery task ended: {exc!r}")
                self.stats.up[ch.name] = 0
        log.error("exporter task ended unexpectedly", task=task.get_name(), error=repr(exc))

    def submit(self, alert: Alert) -> None:
        """Queue `alert` for every exporter. Never blocks, never raises; every loss is counted."""
        for ch in self._channels:
            if self._closed:
                self.stats.dropped[(ch.name, "shutdown")] += 1
                continue
            try:
                ch.offer(alert)
            except Exception:
                # offer() only touches in-memory structures; this guards the promise that
                # detection never sees an exception from delivery.
                self.stats.dropped[(ch.name, "exporter_error")] += 1
                log.error("alert could not be queued", exporter=ch.name, exc_info=True)

    def note_repeats(self, repeats: Mapping[str, int]) -> None:
        """Occurrences the detector counted without alerting, by fingerprint: exporters whose
        destination forgets alerts (AlertManager) keep those alerts firing. Never blocks, never
        raises, does no I/O."""
        if self._closed or not repeats:
            return
        for ch in self._channels:
            if ch.refreshing is None:
                continue
            try:
                ch.refreshing.note_repeats(repeats)
            except Exception:
                log.error("repeats could not be noted", exporter=ch.name, exc_info=True)

    async def aclose(self, deadline_s: float) -> None:
        """Drain the queues for at most `deadline_s`, count the rest as dropped, close exporters."""
        if self._closed:
            await self._closed_event.wait()
            return
        self._closed = True
        self._closing.set()
        tasks = [ch.task for ch in self._channels if ch.task is not None]
        for ch in self._channels:
            # Wakes a task idle on an empty queue; a task with a full queue is busy and checks
            # `closing` itself once the queue is empty.
            with contextlib.suppress(asyncio.QueueFull):
                ch.queue.put_nowait(_STOP)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline_s))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        probes = [ch.probe_task for ch in self._channels if ch.probe_task is not None]
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        for ch in self._channels:
            left = ch.leftover()
            ch.in_flight = 0
            self.stats.queue_depth[ch.name] = 0
            if left:
                self.stats.dropped[(ch.name, "shutdown")] += left
                log.error("alerts not delivered before shutdown", exporter=ch.name, alerts=left)
        close_s = self._settings.close_timeout.total_seconds()
        for ch in self._channels:
            try:
                async with asyncio.timeout(close_s):
                    await ch.exporter.aclose()
            except Exception as exc:
                log.warning("exporter did not close cleanly", exporter=ch.name, error=repr(exc))
        self._closed_event.set()
        log.info("alert delivery stopped")

    def health(self) -> dict[str, dict[str, Any]]:
        """Per-exporter health for `/readyz` and the logs."""
        return {
            ch.name: ch.health.as_dict(
                queue_depth=ch.queue.qsize(), queue_size=ch.settings.queue_size
            )
            for ch in self._channels
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """A readiness check: ready when every exporter's last send or probe succeeded."""
        details = self.health()
        return all(d["healthy"] for d in details.values()), details
