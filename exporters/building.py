"""`build_exporters`: the exporters the configuration asks for, ready for `Delivery`.

The composition root calls it once at start:

    exporters = build_exporters(settings.exporters, stats=delivery_stats, environ=os.environ)
    delivery = Delivery(exporters, settings=settings.exporters, stats=delivery_stats)

Building never touches the network (connections open on first use, so an unreachable
destination at start is a health detail, not a start failure). It raises `ExporterError` with
the configuration key for problems the user must fix (a missing environment variable, an
unreadable CA bundle). With no exporter enabled, alerts go to stdout: an agent that detects but
tells nobody would be worse than one that prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import structlog

from exporters.alertmanager import AlertManagerExporter
from exporters.config import ExportersSettings
from exporters.exporter import Exporter
from exporters.http import HttpExporter
from exporters.otlp import OtlpExporter
from exporters.stats import DeliveryStats
from exporters.stdout import StdoutExporter
from exporters.syslog import SyslogExporter

log = structlog.get_logger(__name__)


def alertmanager_names(urls: list[str]) -> list[str]:
    """`alertmanager` for one URL; `alertmanager@host:port` for each member of an HA set."""
    if len(urls) == 1:
        return ["alertmanager"]
    names: list[str] = []
    for i, url in enumerate(urls):
        # host:port only: the name is a metric label and appears in /readyz, so it must never
        # carry the URL's user information.
        name = f"alertmanager@{urlsplit(url).netloc.rpartition('@')[2] or i}"
        names.append(name if name not in names else f"{name}#{i}")
    return names


def build_exporters(
    settings: ExportersSettings,
    *,
    stats: DeliveryStats,
    environ: Mapping[str, str] | None = None,
    agent_version: str = "",
) -> list[Exporter]:
    """One exporter per enabled destination (one per AlertManager URL).

    `environ` resolves `http.headerEnv`; the composition root passes its environment.
    `agent_version` becomes the OTLP resource's `service.version`.
    `stats` is where `Delivery` will count; exporters are registered in it so that every
    configured exporter shows in the metrics from the start, even before its first alert.
    """
    exporters: list[Exporter] = []
    if settings.stdout.enabled:
        exporters.append(StdoutExporter(settings.stdout))
    if settings.syslog.enabled:
        exporters.append(SyslogExporter(settings.syslog))
    if settings.http.enabled:
        exporters.append(HttpExporter(settings.http, environ=environ))
    am = settings.alertmanager
    if am.enabled:
        if not am.urls:
            log.error("alertmanager exporter enabled without urls, ignored")
        for url, name in zip(am.urls, alertmanager_names(am.urls), strict=True):
            exporters.append(AlertManagerExporter(am, url=url, name=name))
    if settings.otlp.enabled:
        exporters.append(OtlpExporter(settings.otlp, agent_version=agent_version))
    if not exporters:
        log.info("no exporter enabled, alerts go to stdout")
        exporters.append(StdoutExporter(settings.stdout.model_copy(update={"enabled": True})))
    for exporter in exporters:
        stats.sent[exporter.name] += 0
        stats.up[exporter.name] += 0
        stats.queue_depth[exporter.name] += 0
    return exporters
