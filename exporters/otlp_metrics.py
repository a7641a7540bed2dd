"""The agent's own metrics over OTLP: the instruments of `/metrics`, pushed to the collector.

    StatsCollector.collect() (the families `/metrics` serves) ─► metrics_request() ─►
    ExportMetricsServiceRequest ─► OtlpExporter.export_metrics (same channel, TLS, headers)

Why the Prometheus families are converted rather than re-declared as OpenTelemetry instruments:
the domain packages count in plain dicts that `metrics.StatsCollector` reads at scrape time;
converting its output keeps one definition of every metric (names, help, labels, buckets) for
both paths, so `/metrics` and OTLP can never disagree. Mapping:

- counter (`..._total`) ─► Sum, monotonic, cumulative (the name without `_total`, as OTel
  names counters);
- gauge ─► Gauge;
- histogram ─► Histogram, cumulative: explicit bounds from the `le` buckets, per-bucket counts
  from the cumulative ones, count and sum.

Every data point has the labels as attributes, `startTimeUnixNano` = the agent's start and
`timeUnixNano` = the push. A failed push is logged, counted as
`gadgetwatch_exporter_send_failures_total{exporter="otlp-metrics", reason}` (with `up`), and
not retried: the next push carries the cumulative values anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

import structlog
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporters.errors import ExporterError
from exporters.otlp import OtlpExporter
from exporters.stats import DeliveryStats

log = structlog.get_logger(__name__)

#: The channel name under which pushes are counted (bounded: one per agent).
CHANNEL = "otlp-metrics"

_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


def _attributes(labels: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in sorted(labels.items())]


def _labels_without(labels: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != name))


def metrics_request(
    families: Iterable[Metric],
    *,
    resource: Mapping[str, str],
    start_ns: int,
    now_ns: int,
    scope: str = "gadgetwatch",
) -> ExportMetricsServiceRequest:
    """One request with every family as an OTLP metric (families of other types are skipped)."""
    metrics: list[metrics_pb2.Metric] = []
    for family in families:
        if family.type == "counter":
            points = [
                metrics_pb2.NumberDataPoint(
                    attributes=_attributes(s.labels),
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now_ns,
                    as_double=float(s.value),
                )
                for s in family.samples
                if s.name.endswith("_total")
            ]
            metrics.append(
                metrics_pb2.Metric(
                    name=family.name,
                    description=family.documentation,
                    unit=family.unit,
                    sum=metrics_pb2.Sum(
                        data_points=points,
                        aggregation_temporality=_CUMULATIVE,
                        is_monotonic=True,
                    ),
                )
            )
        elif family.type == "gauge":
            points = [
                metrics_pb2.NumberDataPoint(
                    attributes=_attributes(s.labels),
                    time_unix_nano=now_ns,
                    as_double=float(s.value),
                )
                for s in family.samples
            ]
            metrics.append(
                metrics_pb2.Metric(
                    name=family.name,
                    description=family.documentation,
                    unit=family.unit,
                    gauge=metrics_pb2.Gauge(data_points=points),
                )
            )
        elif family.type == "histogram":
            metrics.append(_histogram(family, start_ns=start_ns, now_ns=now_ns))
    return ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=Resource(attributes=_attributes(resource)),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=InstrumentationScope(name=scope), metrics=metrics
                    )
                ],
            )
        ]
    )


def _histogram(family: Metric, *, start_ns: int, now_ns: int) -> metrics_pb2.Metric:
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    sums: dict[tuple[tuple[str, str], ...], float] = {}
    for s in family.samples:
        key = _labels_without(s.labels, "le")
        if s.name.endswith("_bucket"):
            buckets.setdefault(key, []).append((float(s.labels["le"]), float(s.value)))
        elif s.name.endswith("_count"):
            counts[key] = float(s.value)
        elif s.name.endswith("_sum"):
            sums[key] = float(s.value)
    points = []
    for key, cumulative in buckets.items():
        cumulative.sort()
        bounds = [le for le, _ in cumulative if le != float("inf")]
        per_bucket: list[int] = []
        previous = 0.0
        for _, value in cumulative:
            per_bucket.append(int(value - previous))
            previous = value
        if len(per_bucket) == len(bounds):  # no +Inf bucket: the rest of the count
            per_bucket.append(int(counts.get(key, previous) - previous))
        points.append(
            metrics_pb2.HistogramDataPoint(
                attributes=_attributes(dict(key)),
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=int(counts.get(key, previous)),
                sum=sums.get(key, 0.0),
                explicit_bounds=bounds,
                bucket_counts=per_bucket,
            )
        )
    return metrics_pb2.Metric(
        name=family.name,
        description=family.documentation,
        unit=family.unit,
        histogram=metrics_pb2.Histogram(data_points=points, aggregation_temporality=_CUMULATIVE),
    )


class OtlpMetricsPusher:
    """`run()` pushes every `metricsInterval` until cancelled; `push()` pushes once."""

    def __init__(
        self,
        exporter: OtlpExporter,
        *,
        collector: Collector,
        stats: DeliveryStats,
        resource: Mapping[str, str],
        start_ns: int | None = None,
    ) -> None:
        self._exporter = exporter
        self._collector = collector
        self._stats = stats
        self._resource = dict(resource)
        self._start_ns = start_ns if start_ns is not None else time.time_ns()
        stats.up[CHANNEL] += 0

    async def push(self) -> bool:
        """One push; True when the collector took it. Never raises for a delivery problem."""
        request = metrics_request(
            self._collector.collect(),
            resource=self._resource,
            start_ns=self._start_ns,
            now_ns=time.time_ns(),
        )
        try:
            await self._exporter.export_metrics(request)
        except ExporterError as exc:
            reason = getattr(exc, "reason", "error")
            self._stats.failed[(CHANNEL, reason)] += 1
            self._stats.up[CHANNEL] = 0
            log.warning("metrics push failed", exporter=CHANNEL, error=str(exc))
            return False
        self._stats.up[CHANNEL] = 1
        return True

    async def run(self) -> None:
        interval = self._exporter.channel.metrics_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)  # a period, not a synchronisation
            await self.push()
