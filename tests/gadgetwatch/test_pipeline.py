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
