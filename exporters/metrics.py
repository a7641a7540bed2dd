"""Prometheus metrics, liveness and readiness: `/metrics`, `/healthz`, `/readyz`.

    StreamStats ─┐
    ProfilerStats├─► StatsCollector.collect() (at scrape time) ─► CollectorRegistry ─► /metrics
    DetectorStats│
    DeliveryStats│
    pipeline ────┘                    readiness checks (name -> fn) ─────────────────► /readyz

Why custom collectors instead of `prometheus_client.Counter` objects in the domain code: the hot
path increments plain `Counter` dicts (~50 ns, no lock, no label lookup), and this module turns
them into metric families only when Prometheus asks, every 15-60 s. The domain packages stay free
of any metrics library, and tests read the same counters directly.

Names follow `gadgetwatch_<component>_<name>_<unit>[_total]`. Label values are bounded by
construction: gadget names, reasons (closed enums), rule ids (the rule catalogue), exporter names
(the configuration), profile statuses. Never a container id, pod name or message: those would
make the series count grow with the workload. `docs/metrics.md` lists every metric;
`METRICS` below is the same list in code, and a test checks that the two agree.

The server is aiohttp on the configured address; `/healthz` answers 200 while the event loop
runs (liveness: a wedged loop fails it by not answering); `/readyz` runs the registered checks
and answers 200 when all pass, 503 otherwise, with every check's details as JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from detector.stats import DetectorStats
from exporters.config import MetricsSettings
from exporters.errors import ExporterError
from exporters.stats import DeliveryStats
from gadgetclient.stats import Histogram, StreamStats
from gadgetclient.textsafety import redact_urls
from profiler.stats import ProfilerStats

log = structlog.get_logger(__name__)

PREFIX = "gadgetwatch"


class PipelineView(Protocol):
    """What the metrics need from the composition root's pipeline counters (`PipelineStats`)."""

    @property
    def dropped(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def processed(self) -> int: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def alert_latency_seconds(self) -> Histogram: ...


class WorkersView(Protocol):
    """The supervisor's view of its worker processes (`pipeline.workers` > 1)."""

    @property
    def restarts(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def up(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    help: str


#: Every metric this agent exports (names without the `_total` suffix prometheus-client adds).
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("gadget_events_received", "counter", ("gadget",), "Payload events from IG."),
    MetricSpec("gadget_events_decoded", "counter", ("gadget",), "Records decoded into events."),
    MetricSpec("gadget_events_lost", "counter", ("gadget", "reason"), "Events IG lost upstream."),
    MetricSpec("gadget_events_dropped", "counter", ("gadget", "reason"), "Events unusable."),
    MetricSpec("gadget_stream_reconnects", "counter", ("gadget",), "Stream reconnections."),
    MetricSpec(
        "gadget_events_foreign", "counter", ("gadget",), "Events another worker owns (skipped)."
    ),
    MetricSpec("gadget_log_events", "counter", ("gadget", "severity"), "IG log events."),
    MetricSpec(
        "gadget_instance_replay_skipped", "counter", ("gadget",), "Replayed payloads seen before."
    ),
    MetricSpec(
        "gadget_instance_state_write_errors", "counter", (), "Failed writes of the seq state."
    ),
    MetricSpec("gadget_instances_created", "counter", ("gadget",), "Headless instances created."),
    MetricSpec(
        "gadget_instances_replaced", "counter", ("gadget",), "Instances replaced (params changed)."
    ),
    MetricSpec(
        "gadget_params_unsupported", "counter", ("gadget", "param"), "Default params refused."
    ),
    MetricSpec(
        "gadget_fields_unresolved", "counter", ("gadget", "field"), "Events missing a field."
    ),
    MetricSpec(
        "gadget_decode_duration_seconds",
        "histogram",
        (),
        "Per-event decode time (1 payload in 64).",
    ),
    MetricSpec("profiler_events_merged", "counter", ("kind",), "Events merged into profiles."),
    MetricSpec("profiler_events_skipped", "counter", ("kind", "reason"), "Events not merged."),
    MetricSpec("profiler_writes", "counter", ("store", "result"), "Profile writes by result."),
    MetricSpec("profiler_errors", "counter", ("store", "reason"), "Profile read/write errors."),
    MetricSpec("profiler_profiles", "gauge", ("status",), "Profiles by status."),
    MetricSpec("profiler_pending_deltas", "gauge", (), "Profile deltas waiting to be written."),
    MetricSpec(
        "profiler_generalized",
        "counter",
        ("kind",),
        "Learned literals replaced by a generalised profile entry.",
    ),
    MetricSpec(
        "profiler_generalizations_refused",
        "counter",
        ("kind", "reason"),
        "Generalisations that met their threshold but were refused.",
    ),
    MetricSpec(
        "profiler_process_scope_dropped",
        "counter",
        ("reason",),
        "Process-aware profile entries that became any-process.",
    ),
    MetricSpec(
        "profiler_processes_forgotten",
        "counter",
        ("reason",),
        "Execs dropped from the learner's process table.",
    ),
    MetricSpec("detector_rule_evaluations", "counter", ("rule_id",), "Rule evaluations."),
    MetricSpec("detector_alerts", "counter", ("rule_id",), "Alerts emitted by the detector."),
    MetricSpec(
        "detector_alerts_suppressed", "counter", ("rule_id", "reason"), "Alerts suppressed."
    ),
    MetricSpec("detector_load_errors", "counter", ("source",), "Rule/binding load errors."),
    MetricSpec(
        "detector_rule_errors",
        "counter",
        ("rule_id",),
        "Rule evaluations that raised (the event is skipped for that rule).",
    ),
    MetricSpec(
        "detector_rules_disabled",
        "counter",
        ("rule_id",),
        "CEL rules disabled after detector.ruleErrorLimit evaluation errors.",
    ),
    MetricSpec(
        "detector_rulesets_rejected",
        "counter",
        ("source",),
        "Rule sets with no valid binding, refused (the last good set stays).",
    ),
    MetricSpec(
        "detector_resolved_addresses_evicted",
        "counter",
        ("reason",),
        "DNS answers dropped from the R0011 resolved-address table.",
    ),
    MetricSpec(
        "detector_processes_forgotten",
        "counter",
        ("reason",),
        "Execs dropped from the process table (fromSource falls back to comm).",
    ),
    MetricSpec("detector_evaluation_duration_seconds", "histogram", (), "Per-event eval time."),
    MetricSpec("exporter_alerts_sent", "counter", ("exporter",), "Alerts delivered."),
    MetricSpec("exporter_send_failures", "counter", ("exporter", "reason"), "Failed attempts."),
    MetricSpec("exporter_alerts_dropped", "counter", ("exporter", "reason"), "Alerts given up."),
    MetricSpec(
        "exporter_queue_alerts", "gauge", ("exporter",), "Alerts queued or in flight per exporter."
    ),
    MetricSpec("exporter_up", "gauge", ("exporter",), "1 if the last attempt succeeded."),
    MetricSpec(
        "exporter_alerts_resent", "counter", ("exporter",), "Firing alerts re-sent on repeats."
    ),
    MetricSpec("pipeline_events_dropped", "counter", ("stage", "reason"), "Events dropped."),
    MetricSpec("pipeline_events_processed", "counter", (), "Events processed."),
    MetricSpec("pipeline_queue_batches", "gauge", (), "Batches in the processing queue."),
    MetricSpec("pipeline_alert_latency_seconds", "histogram", (), "Event to alert hand-off."),
    MetricSpec("worker_restarts", "counter", ("worker", "reason"), "Worker processes restarted."),
    MetricSpec("worker_up", "gauge", ("worker",), "1 while the worker process runs."),
)  # fmt: skip

_SPECS = {m.name: m for m in METRICS}


def _family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    spec = _SPECS[name]
    full = f"{PREFIX}_{name}"
    if spec.kind == "counter":
        return CounterMetricFamily(full, spec.help, labels=list(spec.labels))
    return GaugeMetricFamily(full, spec.help, labels=list(spec.labels))


def _labelled(name: str, values: Mapping[Any, int | float]) -> Metric:
    """A family from a Counter keyed by a label value or a tuple of label values."""
    family = _family(name)
    for key, value in list(values.items()):
        label_values = [str(k) for k in key] if isinstance(key, tuple) else [str(key)]
        family.add_metric(label_values, float(value))
    return family


def _single(name: str, value: float) -> Metric:
    family = _family(name)
    family.add_metric([], float(value))
    return family


def _histogram(name: str, hist: Histogram) -> Metric:
    spec = _SPECS[name]
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(hist.bounds, hist.counts, strict=False):
        cumulative += count
        buckets.append((repr(float(bound)), float(cumulative)))
    cumulative += hist.counts[-1]
    buckets.append(("+Inf", float(cumulative)))
    return HistogramMetricFamily(f"{PREFIX}_{name}", spec.help, buckets=buckets, sum_value=hist.sum)


class StatsCollector(Collector):
    """Reads the domain counters at scrape time. Any source may be absent (None)."""

    def __init__(
        self,
        *,
        stream: StreamStats | None = None,
        profiler: ProfilerStats | None = None,
        detector: DetectorStats | None = None,
        delivery: DeliveryStats | None = None,
        pipeline: PipelineView | None = None,
        workers: WorkersView | None = None,
    ) -> None:
        self.workers = workers
        self.stream = stream
        self.profiler = profiler
        self.detector = detector
        self.delivery = delivery
        self.pipeline = pipeline

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        if (s := self.stream) is not None:
            yield _labelled("gadget_events_received", s.received)
            yield _labelled("gadget_events_decoded", s.decoded)
            yield _labelled("gadget_events_lost", s.lost)
            yield _labelled("gadget_events_dropped", s.dropped)
            yield _labelled("gadget_stream_reconnects", s.reconnects)
            yield _labelled("gadget_events_foreign", s.foreign)
            yield _labelled("gadget_log_events", s.log_events)
            yield _labelled("gadget_instance_replay_skipped", s.replay_skipped)
            yield _labelled("gadget_instances_created", s.instances_created)
            yield _single("gadget_instance_state_write_errors", s.state_write_errors)
            yield _labelled("gadget_instances_replaced", s.instances_replaced)
            yield _labelled("gadget_params_unsupported", s.params_unsupported)
            yield _labelled("gadget_fields_unresolved", s.unresolved)
            yield _histogram("gadget_decode_duration_seconds", s.decode_seconds)
        if (p := self.profiler) is not None:
            yield _labelled("profiler_events_merged", p.merged)
            yield _labelled("profiler_events_skipped", p.skipped)
            yield _labelled("profiler_writes", p.writes)
            yield _labelled("profiler_errors", p.errors)
            yield _labelled("profiler_profiles", p.by_status)
            yield _single("profiler_pending_deltas", p.pending_deltas)
            yield _labelled("profiler_generalized", p.generalized)
            yield _labelled("profiler_generalizations_refused", p.generalization_refused)
            yield _labelled("profiler_process_scope_dropped", p.process_scope_dropped)
            yield _labelled("profiler_processes_forgotten", p.processes_forgotten)
        if (d := self.detector) is not None:
            yield _labelled("detector_rule_evaluations", d.evaluations)
            yield _labelled("detector_alerts", d.alerts)
            yield _labelled("detector_alerts_suppressed", d.suppressed)
            yield _labelled("detector_load_errors", d.load_errors)
            yield _labelled("detector_rule_errors", d.errors)
            yield _labelled("detector_rules_disabled", d.rules_disabled)
            yield _labelled("detector_rulesets_rejected", d.rulesets_rejected)
            yield _labelled("detector_resolved_addresses_evicted", d.resolved_evictions)
            yield _labelled("detector_processes_forgotten", d.processes_forgotten)
            yield _histogram("detector_evaluation_duration_seconds", d.eval_seconds)
        if (x := self.delivery) is not None:
            yield _labelled("exporter_alerts_sent", x.sent)
            yield _labelled("exporter_send_failures", x.failed)
            yield _labelled("exporter_alerts_dropped", x.dropped)
            yield _labelled("exporter_queue_alerts", x.queue_depth)
            yield _labelled("exporter_up", x.up)
            yield _labelled("exporter_alerts_resent", x.resent)
        if (q := self.pipeline) is not None:
            yield _labelled("pipeline_events_dropped", q.dropped)
            yield _single("pipeline_events_processed", q.processed)
            yield _single("pipeline_queue_batches", q.queue_depth)
            yield _histogram("pipeline_alert_latency_seconds", q.alert_latency_seconds)
        if (w := self.workers) is not None:
            yield _labelled("worker_restarts", w.restarts)
            yield _labelled("worker_up", w.up)


def build_registry(collector: StatsCollector) -> CollectorRegistry:
    """A private registry (not the global default, so tests and embedders never collide).

    With prometheus-client's process collector (`process_cpu_seconds_total`,
    `process_resident_memory_bytes`, open file descriptors, ...: the agent's own cost, which the
    chart's dashboard and sizing guidance use) and platform collector (`python_info`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


#: A readiness check returns (ready, details); details are JSON-serialisable.
ReadinessCheck = Callable[[], tuple[bool, Mapping[str, Any]]]


class MetricsServer:
    """aiohttp server for `/metrics`, `/healthz` and `/readyz`. `start()`, then `aclose()`."""

    def __init__(
        self,
        settings: MetricsSettings,
        *,
        registry: CollectorRegistry,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        #: Awaited before `/metrics` and `/readyz` answer: gathers what the collectors and
        #: checks read when it lives elsewhere (a supervisor's worker processes).
        self._refresh = refresh
        self._checks: dict[str, ReadinessCheck] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._port is None:
            raise ExporterError("metrics server is not started", field="metrics.address")
        return self._port

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = True
        details: dict[str, Any] = {}
        for name, check in self._checks.items():
            try:
                ok, detail = check()
            except Exception as exc:
                ok, detail = False, {"error": f"check failed: {exc!r}"}
            details[name] = {"ready": ok, "details": dict(detail)}
            ready = ready and ok
        return ready, details

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._refresh is not None:
            await self._refresh()
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._refresh is not None:
            await self._refresh()
        ready, details = self.readiness()
        text = orjson.dumps({"ready": ready, "checks": details}, default=str).decode()
        # The endpoint listens on every interface: whatever a check reports (an error quoting
        # a URL), credentials in URLs never leave through it.
        body = redact_urls(text).encode()
        return web.Response(
            body=body, status=200 if ready else 503, content_type="application/json"
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ExporterError(
                f"cannot listen on {self._settings.address}: {exc.strerror or exc}",
                field="metrics.address",
            ) from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self._settings.port
        log.info("metrics server listening", address=self._settings.address, port=self._port)

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
