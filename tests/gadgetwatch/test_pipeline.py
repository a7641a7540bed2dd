"""The processing pipeline: batching, ordering, bounded queue with counted drops, draining."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from detector.alerts import Alert, RuleId, RuleInfo, Severity
from gadgetclient.events import Container, ContainerId, Event, ExecEvent, Process
from gadgetwatch.pipeline import Pipeline, PipelineStats


def exec_event(i: int, container: str = "c1") -> ExecEvent:
    return ExecEvent(
        timestamp_ns=i,
        container=Container(container_id=ContainerId(container)),
        process=Process(pid=i),
        path=f"/bin/p{i}",
        args=(f"/bin/p{i}",),
    )


class RecordingProfiler:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def observe_until(self, events: Sequence[Event], start: int) -> int:
        self.seen.extend(e.timestamp_ns for e in events[start:])
        return len(events)


class EchoDetector:
    """Alerts on every event whose timestamp the profiler has already seen (order check)."""

    def __init__(self, profiler: RecordingProfiler) -> None:
        self.profiler = profiler

    def evaluate(self, events: Sequence[Event]) -> list[Alert]:
        out = []
        for e in events:
            assert e.timestamp_ns in self.profiler.seen
            out.append(
                Alert(
                    rule=RuleInfo(id=RuleId("R0001"), name="x", severity=Severity.LOW),
                    message=str(e.timestamp_ns),
                    fix_suggestion="",
                    time_ns=e.timestamp_ns,
                )
            )
        return out


def make(queue_batches: int = 8, batch_size: int = 4) -> tuple[Pipeline, list[Alert]]:
    profiler = RecordingProfiler()
    alerts: list[Alert] = []
    pipe = Pipeline(
        profiler=profiler,
        detector=EchoDetector(profiler),
        sink=alerts.append,
        stats=PipelineStats(),
        queue_batches=queue_batches,
        batch_size=batch_size,
        batch_delay_s=0.005,
    )
    return pipe, alerts


async def test_events_flow_in_order_and_profiler_runs_before_detector() -> None:
    pipe, alerts = make()
    task = asyncio.create_task(pipe.run())
    for i in range(1, 11):
        pipe.feed([exec_event(i)])
    await pipe.close()
    await task
    assert [a.time_ns for a in alerts] == list(range(1, 11))
    assert pipe.stats.processed == 10
    assert pipe.stats.alerts == 10
    assert not pipe.stats.dropped


async def test_partial_batch_is_flushed_by_the_delay_timer() -> None:
    profiler = RecordingProfiler()
    arrived = asyncio.Event()
    alerts: list[Alert] = []

    def sink(alert: Alert) -> None:
        alerts.append(alert)
        arrived.set()

    pipe = Pipeline(
        profiler=profiler,
        detector=EchoDetector(profiler),
        sink=sink,
        stats=PipelineStats(),
        queue_batches=4,
        batch_size=1000,
        batch_delay_s=0.005,
    )
    task = asyncio.create_task(pipe.run())
    pipe.feed([exec_event(1)])
    async with asyncio.timeout(5):
        await arrived.wait()
    assert alerts[0].time_ns == 1
    await pipe.close()
    await task


async def test_full_queue_drops_newest_and_counts_events() -> None:
    pipe, alerts = make(queue_batches=2, batch_size=1)
    # No consumer running: the queue fills after two batches.
    for i in range(1, 6):
        pipe.feed([exec_event(i)])
    assert pipe.stats.dropped[("processing", "queue_full")] == 3
    task = asyncio.create_task(pipe.run())
    await pipe.close()
    await task
    assert [a.time_ns for a in alerts] == [1, 2]


async def test_feed_after_close_is_counted_not_lost_silently() -> None:
    pipe, _ = make()
    task = asyncio.create_task(pipe.run())
    await pipe.close()
    await task
    pipe.feed([exec_event(1), exec_event(2)])
    assert pipe.stats.dropped[("batching", "closed")] == 2


async def test_a_failing_detector_is_counted_and_processing_continues() -> None:
    class Broken:
        def evaluate(self, events: Sequence[Event]) -> list[Alert]:
            raise RuntimeError("bug")

    profiler = RecordingProfiler()
    pipe = Pipeline(
        profiler=profiler,
        detector=Broken(),
        sink=lambda a: None,
        stats=PipelineStats(),
        queue_batches=4,
        batch_size=2,
        batch_delay_s=0.005,
    )
    task = asyncio.create_task(pipe.run())
    pipe.feed([exec_event(1), exec_event(2)])
    pipe.feed([exec_event(3), exec_event(4)])
    await pipe.close()
    await task
    assert pipe.stats.dropped[("detection", "internal_error")] == 4
    assert profiler.seen == [1, 2, 3, 4]


class SlicingProfiler:
    """Stops at fixed positions, as the learner does at lifecycle transitions; records the
    order of calls with the detector to prove each slice is judged before the next is
    learned."""

    def __init__(self, cuts: set[int], log: list[tuple[str, int, int]]) -> None:
        self.cuts = cuts
        self.log = log

    def observe_until(self, events: Sequence[Event], start: int) -> int:
        stop = next((i for i in range(start + 1, len(events)) if i in self.cuts), len(events))
        self.log.append(("learn", start, stop))
        return stop


class SliceDetector:
    def __init__(self, log: list[tuple[str, int, int]]) -> None:
        self.log = log

    def evaluate(self, events: Sequence[Event]) -> list[Alert]:
        ts = [e.timestamp_ns for e in events]
        self.log.append(("judge", ts[0], ts[-1]))
        return []


async def test_each_slice_is_judged_before_the_next_is_learned() -> None:
    log: list[tuple[str, int, int]] = []
    pipe = Pipeline(
        profiler=SlicingProfiler({3, 5}, log),
        detector=SliceDetector(log),
        sink=lambda a: None,
        stats=PipelineStats(),
        queue_batches=4,
        batch_size=8,
        batch_delay_s=0.005,
    )
    task = asyncio.create_task(pipe.run())
    pipe.feed([exec_event(i) for i in range(8)])
    await pipe.close()
    await task
    assert log == [
        ("learn", 0, 3), ("judge", 0, 2),
        ("learn", 3, 5), ("judge", 3, 4),
        ("learn", 5, 8), ("judge", 5, 7),
    ]  # fmt: skip
    assert pipe.stats.processed == 8
    assert not pipe.stats.dropped


class StuckProfiler:
    def observe_until(self, events: Sequence[Event], start: int) -> int:
        return start  # a bug: no progress


async def test_a_profiler_that_makes_no_progress_cannot_stall_the_stage() -> None:
    judged: list[int] = []

    class Judge:
        def evaluate(self, events: Sequence[Event]) -> list[Alert]:
            judged.extend(e.timestamp_ns for e in events)
            return []

    stats = PipelineStats()
    pipe = Pipeline(
        profiler=StuckProfiler(),
        detector=Judge(),
        sink=lambda a: None,
        stats=stats,
        queue_batches=4,
        batch_size=4,
        batch_delay_s=0.005,
    )
    task = asyncio.create_task(pipe.run())
    pipe.feed([exec_event(i) for i in range(4)])
    await pipe.close()
    await task
    assert judged == [0, 1, 2, 3]  # detection still ran on every event
    assert stats.dropped == {("profiling", "internal_error"): 4}
