"""The metrics endpoint: every documented metric is served with bounded labels, values come from
the domain stats at scrape time, and /healthz and /readyz report with details."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detector.stats import DetectorStats
from exporters.config import MetricsSettings
from exporters.errors import ExporterError
from exporters.metrics import (
    METRICS,
    PREFIX,
    MetricsServer,
    StatsCollector,
    build_registry,
)
from exporters.stats import DeliveryStats
from gadgetclient.stats import LATENCY_BUCKETS, Histogram, StreamStats
from profiler.stats import ProfilerStats

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
NAME = re.compile(r"gadgetwatch_[a-z]+_[a-z0-9_]+")
UNBOUNDED_LABELS = {"container_id", "pod", "pod_name", "message", "container", "pid", "comm"}


@dataclass
class FakePipelineStats:
    """Shaped like the composition root's `PipelineStats`."""

    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    processed: int = 0
    queue_depth: int = 0
    alert_latency_seconds: Histogram = field(default_factory=lambda: Histogram((0.001, 0.01)))


@pytest.fixture
def stats() -> tuple[StreamStats, ProfilerStats, DetectorStats, DeliveryStats, FakePipelineStats]:
    s = StreamStats()
    s.received["trace_exec"] = 10
    s.decoded["trace_exec"] = 9
    s.lost[("trace_exec", "seq_gap")] = 2
    s.dropped[("trace_open", "undecodable")] = 1
    for v in (2e-6, 2e-6, 3e-5, 5.0):
        s.decode_seconds.observe(v)
    p = ProfilerStats()
    p.by_status["learning"] = 3
    p.by_status["completed"] = 5
    p.pending_deltas = 4
    d = DetectorStats()
    d.evaluations["R0001"] = 100
    d.alerts["R0001"] = 2
    d.suppressed[("R0001", "cooldown")] = 7
    d.eval_seconds.observe(1e-5)
    x = DeliveryStats()
    x.sent["syslog"] = 2
    x.failed[("alertmanager", "transient")] = 3
    x.dropped[("alertmanager", "queue_full")] = 1
    x.queue_depth["alertmanager"] = 5
    x.up["alertmanager"] = 0
    q = FakePipelineStats()
    q.dropped[("processing", "queue_full")] = 6
    q.processed = 42
    return s, p, d, x, q


async def test_metrics_served_from_stats_at_scrape_time(stats) -> None:
    s, p, d, x, q = stats
    collector = StatsCollector(stream=s, profiler=p, detector=d, delivery=x, pipeline=q)
    server = MetricsServer(
        MetricsSettings(address="127.0.0.1:0"), registry=build_registry(collector)
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            async with http.get(url + "/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
            x.sent["syslog"] += 5  # read at scrape time: the next scrape sees it
            async with http.get(url + "/metrics") as resp:
                later = await resp.text()
    finally:
        await server.aclose()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The worker families come from a supervisor (`pipeline.workers` > 1), not from an agent.
    expected = {f"{PREFIX}_{m.name}" for m in METRICS if not m.name.startswith("worker_")}
    assert {name for name in families if name.startswith(PREFIX)} == expected
    # prometheus-client's process and platform collectors: the agent's own CPU and memory.
    assert families["process_cpu_seconds"].samples[0].value > 0
    assert families["process_resident_memory_bytes"].samples[0].value > 1_000_000
    assert families["python_info"].samples[0].labels["implementation"] == "CPython"

    def value(family: str, **labels: str) -> float:
        for sample in families[family].samples:
            if sample.labels == labels and not sample.name.endswith(("_bucket", "_created")):
                return float(sample.value)
        raise AssertionError(f"no sample {family} {labels}")

    assert value("gadgetwatch_gadget_events_received", gadget="trace_exec") == 10
    assert value("gadgetwatch_gadget_events_lost", gadget="trace_exec", reason="seq_gap") == 2
    assert value("gadgetwatch_profiler_profiles", status="completed") == 5
    assert value("gadgetwatch_detector_alerts_suppressed", rule_id="R0001", reason="cooldown") == 7
    assert (
        value("gadgetwatch_exporter_send_failures", exporter="alertmanager", reason="transient")
        == 3
    )
    assert value("gadgetwatch_exporter_queue_alerts", exporter="alertmanager") == 5
    assert (
        value("gadgetwatch_pipeline_events_dropped", stage="processing", reason="queue_full") == 6
    )
    assert 'gadgetwatch_exporter_alerts_sent_total{exporter="syslog"} 7.0' in later

    hist = families["gadgetwatch_gadget_decode_duration_seconds"]
    buckets = [smp for smp in hist.samples if smp.name.endswith("_bucket")]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    counts = [smp.value for smp in buckets]
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 4
    assert next(smp.value for smp in buckets if smp.labels["le"] == "2.5e-06") == 2

    for family in families.values():
        if not family.name.startswith(PREFIX):
            continue
        for sample in family.samples:
            assert not UNBOUNDED_LABELS & set(sample.labels), sample
        assert NAME.fullmatch(family.name)


async def test_healthz_and_readyz_with_details() -> None:
    server = MetricsServer(
        MetricsSettings(address="127.0.0.1:0"), registry=build_registry(StatsCollector())
    )
    state = {"ok": True}
    server.add_readiness_check(
        "exporters", lambda: (state["ok"], {"syslog": {"healthy": state["ok"]}})
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            async with http.get(url + "/healthz") as resp:
                assert resp.status == 200
            async with http.get(url + "/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["ready"] is True
            state["ok"] = False
            async with http.get(url + "/readyz") as resp:
                assert resp.status == 503
                body = await resp.json()
            assert body["checks"]["exporters"] == {
                "ready": False,
                "details": {"syslog": {"healthy": False}},
            }
    finally:
        await server.aclose()


async def test_address_in_use_is_a_clear_error() -> None:
    first = MetricsServer(
        MetricsSettings(address="127.0.0.1:0"), registry=build_registry(StatsCollector())
    )
    await first.start()
    try:
        second = MetricsServer(
            MetricsSettings(address=f"127.0.0.1:{first.port}"),
            registry=build_registry(StatsCollector()),
        )
        with pytest.raises(ExporterError) as info:
            await second.start()
        assert info.value.field == "metrics.address"
    finally:
        await first.aclose()


def test_every_metric_is_documented() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"`(gadgetwatch_[a-z0-9_]+)`", text))
    for m in METRICS:
        full = f"{PREFIX}_{m.name}" + ("_total" if m.kind == "counter" else "")
        assert full in documented, full
        for label in m.labels:
            assert f"`{label}`" in text, (full, label)
