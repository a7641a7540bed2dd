"""Delivery mechanics with a scripted in-process exporter: queue bound, backoff bounds, retry
exhaustion, shutdown deadline, health details, and stdout's hostile-text JSON lines."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
import pytest

from detector.alerts import Alert
from exporters.config import ChannelSettings, ExportersSettings, StdoutSettings
from exporters.delivery import Delivery, backoff_delay
from exporters.encoding import alert_json
from exporters.errors import ExporterError, SendError
from exporters.stats import DeliveryStats
from exporters.stdout import StdoutExporter
from tests.exporters.helpers import make_alert, wait_until


class Scripted:
    """An exporter whose outcomes the test scripts: 'ok', 'transient', 'permanent', 'boom', or
    'block' (waits until released)."""

    def __init__(self, name: str = "scripted", **channel: Any) -> None:
        self.name = name
        self.channel = ChannelSettings.model_validate(
            {
                "enabled": True,
                "retry_initial_backoff": timedelta(milliseconds=5),
                "retry_max_backoff": timedelta(milliseconds=20),
                **channel,
            }
        )
        self.outcomes: list[str] = []
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.healthy = True
        self.closed = 0

    async def send(self, batch: Sequence[Alert]) -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "block":
            await self.release.wait()
        if outcome == "transient":
            raise SendError("scripted transient", exporter=self.name)
        if outcome == "permanent":
            raise SendError("scripted permanent", exporter=self.name, permanent=True, status=400)
        if outcome == "boom":
            raise RuntimeError("scripted bug")
        self.batches.append([a.fingerprint for a in batch])

    async def healthcheck(self) -> None:
        if not self.healthy:
            raise ExporterError("scripted down", exporter=self.name)

    async def aclose(self) -> None:
        self.closed += 1


def test_backoff_is_exponential_bounded_and_jittered() -> None:
    lo = [backoff_delay(n, initial_s=0.5, max_s=30, rng=lambda: 0.0) for n in range(1, 10)]
    hi = [backoff_delay(n, initial_s=0.5, max_s=30, rng=lambda: 1.0) for n in range(1, 10)]
    assert hi[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert lo[:3] == [0.25, 0.5, 1.0]
    assert max(hi) == 30.0
    assert backoff_delay(10_000, initial_s=0.5, max_s=30, rng=lambda: 1.0) == 30.0


async def test_queue_full_drops_newest_and_counts() -> None:
    ex = Scripted(queue_size=3, batch_max_alerts=1)
    ex.outcomes = ["block"]
    stats = DeliveryStats()
    delivery = Delivery([ex], stats=stats)
    await delivery.start()
    alerts = [make_alert() for _ in range(10)]
    delivery.submit(alerts[0])
    # The send has started (its scripted outcome is taken) and the alert counts as waiting.
    await wait_until(lambda: not ex.outcomes, what="first in flight")
    assert stats.queue_depth["scripted"] == 1
    for a in alerts[1:]:
        delivery.submit(a)  # never blocks, never raises
    assert stats.dropped[("scripted", "queue_full")] == 6
    assert delivery.health()["scripted"]["queueDepth"] == 3
    assert stats.queue_depth["scripted"] == 4  # 3 queued + the batch being sent
    ex.release.set()
    await wait_until(lambda: stats.sent["scripted"] == 4, what="backlog delivered")
    assert [b[0] for b in ex.batches] == [a.fingerprint for a in alerts[:4]]  # oldest kept
    await delivery.aclose(1)


async def test_retries_until_success_then_in_order() -> None:
    ex = Scripted(batch_max_alerts=10)
    ex.outcomes = ["transient", "transient", "ok"]
    stats = DeliveryStats()
    delivery = Delivery([ex], stats=stats)
    await delivery.start()
    a = make_alert()
    delivery.submit(a)
    await wait_until(lambda: stats.sent["scripted"] == 1, what="delivered after retries")
    assert stats.failed[("scripted", "transient")] == 2
    assert delivery.health()["scripted"]["healthy"] is True
    await delivery.aclose(1)


async def test_retry_attempts_bound_and_unexpected_errors() -> None:
    ex = Scripted(retry_max_attempts=3, batch_max_alerts=1)
    ex.outcomes = ["transient"] * 3 + ["boom", "ok"]
    stats = DeliveryStats()
    delivery = Delivery([ex], stats=stats)
    await delivery.start()
    for _ in range(3):
        delivery.submit(make_alert())
    await wait_until(lambda: stats.sent["scripted"] == 1, what="third alert delivered")
    assert stats.dropped[("scripted", "retries_exhausted")] == 1
    assert stats.dropped[("scripted", "exporter_error")] == 1
    assert stats.failed[("scripted", "error")] == 1
    await delivery.aclose(1)


async def test_shutdown_drains_within_deadline_and_counts_the_rest() -> None:
    fast, stuck = Scripted("fast"), Scripted("stuck", batch_max_alerts=2)
    stuck.outcomes = ["block"]
    stats = DeliveryStats()
    delivery = Delivery([fast, stuck], stats=stats)
    await delivery.start()
    for _ in range(5):
        delivery.submit(make_alert())
    await wait_until(lambda: stats.sent["fast"] == 5, what="fast delivered")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await delivery.aclose(0.2)
    assert loop.time() - started < 2  # the deadline holds against a stuck destination
    assert stats.dropped[("stuck", "shutdown")] == 5  # 2 in flight + 3 queued
    assert fast.closed == 1
    assert stuck.closed == 1
    delivery.submit(make_alert())
    assert stats.dropped[("fast", "shutdown")] == 1


async def test_unhealthy_at_start_is_reported_and_probed_again() -> None:
    ex = Scripted()
    ex.healthy = False
    settings = ExportersSettings(healthcheck_interval=timedelta(milliseconds=20))
    stats = DeliveryStats()
    delivery = Delivery([ex], stats=stats, settings=settings)
    await delivery.start()
    await wait_until(lambda: delivery.health()["scripted"]["state"] == "failing", what="failing")
    ready, details = delivery.readiness()
    assert not ready
    assert details["scripted"]["lastError"] == "scripted: scripted down"
    ex.healthy = True
    await wait_until(lambda: delivery.readiness()[0], what="ready after the probe")
    assert stats.up["scripted"] == 1
    await delivery.aclose(1)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ExporterError):
        Delivery([Scripted("a"), Scripted("a")], stats=DeliveryStats())


async def test_stdout_writes_one_json_line_per_alert_even_for_hostile_text() -> None:
    stream = io.BytesIO()
    hostile = make_alert(
        message='a\nb\r\n{"fake": 1}\n\x00\u2028',
        args=("\ud800 lone surrogate", "x" * 100_000),
        event={"path": "/etc/\n", 3: {1, 2}},  # type: ignore[dict-item]
    )
    normal = make_alert()
    exporter = StdoutExporter(StdoutSettings(), stream=stream)
    await exporter.send([hostile, normal])
    lines = stream.getvalue().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 3
    first = orjson.loads(lines[0])
    assert first["message"] == hostile.message
    assert first["process"]["args"][0] == "\\ud800 lone surrogate"
    assert orjson.loads(lines[1]) == normal.to_dict()
    assert alert_json(normal) == lines[1]
    await exporter.aclose()
    await exporter.aclose()
