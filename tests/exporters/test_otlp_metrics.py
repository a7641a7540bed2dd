"""The agent's metrics over OTLP: the families of `/metrics` converted faithfully (counters as
monotonic cumulative sums, gauges, histograms with per-bucket counts), pushed to a real
OTLP/gRPC receiver, and a failed push counted without raising."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporters.config import OtlpSettings
from exporters.metrics import StatsCollector, build_registry
from exporters.otlp import OtlpExporter
from exporters.otlp_metrics import CHANNEL, OtlpMetricsPusher, metrics_request
from exporters.stats import DeliveryStats
from gadgetwatch.pipeline import PipelineStats
from tests.exporters.helpers import free_port
from tests.exporters.otlp_receiver import OtlpReceiver


def _stats() -> tuple[StatsCollector, DeliveryStats, PipelineStats]:
    delivery = DeliveryStats()
    delivery.sent["otlp"] = 7
    delivery.dropped[("otlp", "queue_full")] = 2
    delivery.queue_depth["otlp"] = 3
    pipeline = PipelineStats()
    pipeline.processed = 1234
    for value in (0.0005, 0.002, 0.002, 0.03, 60.0):
        pipeline.alert_latency_seconds.observe(value)
    return StatsCollector(delivery=delivery, pipeline=pipeline), delivery, pipeline


class _Frozen:
    """One collection replayed, so the OTLP and text sides see the same process_* values."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def test_conversion_matches_the_prometheus_exposition() -> None:
    collector, _, _ = _stats()
    # What /metrics serves, process metrics included, collected once: CPU seconds and RSS move
    # between two collections.
    families = list(build_registry(collector).collect())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Frozen(families))
    request = metrics_request(
        families, resource={"service.name": "gadgetwatch"}, start_ns=1, now_ns=2
    )
    [rm] = request.resource_metrics
    assert {kv.key: kv.value.string_value for kv in rm.resource.attributes} == {
        "service.name": "gadgetwatch"
    }
    metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
    text = generate_latest(registry).decode()
    scraped = {f.name: f for f in text_string_to_metric_families(text)}
    for name, family in scraped.items():
        if family.type not in ("counter", "gauge", "histogram"):
            continue
        metric = metrics[name]
        if family.type == "counter":
            assert metric.sum.is_monotonic
            got = {
                tuple(sorted((kv.key, kv.value.string_value) for kv in p.attributes)): p.as_double
                for p in metric.sum.data_points
            }
            want = {
                tuple(sorted(s.labels.items())): s.value
                for s in family.samples
                if s.name.endswith("_total")
            }
            assert got == want, name
            assert all(p.start_time_unix_nano == 1 for p in metric.sum.data_points)
        elif family.type == "gauge":
            assert sorted(p.as_double for p in metric.gauge.data_points) == sorted(
                s.value for s in family.samples
            )
    latency = metrics["gadgetwatch_pipeline_alert_latency_seconds"].histogram
    [point] = latency.data_points
    assert point.count == 5
    assert sum(point.bucket_counts) == 5
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1
    assert point.bucket_counts[-1] == 1  # 60 s is above every bound (10 s)
    assert point.sum == pytest.approx(60.0345)
    processed = metrics["gadgetwatch_pipeline_events_processed"].sum.data_points
    assert [p.as_double for p in processed] == [1234.0]


async def test_push_reaches_a_real_receiver_and_failures_are_counted() -> None:
    collector, delivery, _ = _stats()
    receiver = await OtlpReceiver().start()
    settings = OtlpSettings(
        enabled=True, host="127.0.0.1", port=receiver.port, insecure=True, export_metrics=True
    )
    exporter = OtlpExporter(settings)
    pusher = OtlpMetricsPusher(
        exporter, collector=collector, stats=delivery, resource={"service.name": "gw"}
    )
    try:
        assert await pusher.push()
        sent = receiver.metric("gadgetwatch_exporter_alerts_sent")
        assert sent is not None
        [point] = sent.sum.data_points
        assert point.as_double == 7
        assert delivery.up[CHANNEL] == 1
    finally:
        await exporter.aclose()
        await receiver.stop()
    dead = OtlpExporter(
        settings.model_copy(update={"port": free_port(), "timeout": timedelta(seconds=1)})
    )
    pusher = OtlpMetricsPusher(dead, collector=collector, stats=delivery, resource={})
    try:
        assert not await pusher.push()
    finally:
        await dead.aclose()
    assert delivery.failed[(CHANNEL, "transient")] == 1
    assert delivery.up[CHANNEL] == 0
    # The alerts' own channel is untouched.
    assert delivery.sent["otlp"] == 7
