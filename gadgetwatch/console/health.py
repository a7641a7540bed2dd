"""The Health page's figures: the agents' own metrics, and what the console itself received.

An agent's /metrics (``--agent-metrics URL``, repeatable; or ``--agent-metrics-dns URL``, whose
host name is resolved and every address scraped: a headless Service gives every agent pod; the
chart sets one up) is fetched when the page is shown, with a short timeout, and reduced to
the figures that say whether detection works: events in, lost in the kernel, dropped in the
pipeline, alerts raised, and each exporter's state (up, sent, dropped). An agent that does not
answer is shown as such; the page never waits longer than the timeout for it.

Without agent URLs the page still shows, per node and cluster, how many alerts the console
received and when the last arrived (a node that went quiet stands out), and the console's
own counters (accepted, duplicate deliveries, rejected by reason, expired by retention, live
subscribers, messages skipped for slow live viewers, CSP reports).
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gadgetclient.textsafety import redact_url

#: Per-agent fetch bound: the page is shown after this even if an agent hangs.
SCRAPE_TIMEOUT_S = 2.0
#: Largest /metrics body read from an agent (a real one is tens of KiB).
MAX_METRICS_BYTES = 4 * 1024 * 1024

#: (label shown, metric family, label that splits it or "") — the figures that matter.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("events received", "gadgetwatch_gadget_events_received", "gadget"),
    ("events lost (kernel)", "gadgetwatch_gadget_events_lost", "gadget"),
    ("events dropped (gadget)", "gadgetwatch_gadget_events_dropped", "reason"),
    ("events dropped (pipeline)", "gadgetwatch_pipeline_events_dropped", "reason"),
    ("alerts raised", "gadgetwatch_detector_alerts", "rule_id"),
    ("exporter up", "gadgetwatch_exporter_up", "exporter"),
    ("alerts sent", "gadgetwatch_exporter_alerts_sent", "exporter"),
    ("alerts dropped (exporter)", "gadgetwatch_exporter_alerts_dropped", "reason"),
)


@dataclass(slots=True)
class AgentHealth:
    url: str
    error: str = ""
    #: label shown -> {split value -> sum}
    figures: dict[str, dict[str, float]] = field(default_factory=dict)


def reduce_metrics(text: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {label: {} for label, _, _ in FIGURES}
    wanted = {family: (label, split) for label, family, split in FIGURES}
    for family in text_string_to_metric_families(text):
        hit = wanted.get(family.name)
        if hit is None:
            continue
        label, split = hit
        sums: dict[str, float] = defaultdict(float)
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket", "_count", "_sum")):
                continue
            sums[sample.labels.get(split, "") if split else ""] += sample.value
        out[label] = dict(sums)
    return out


async def scrape(session: aiohttp.ClientSession, url: str) -> AgentHealth:
    shown = redact_url(url)
    try:
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
        async with session.get(url, timeout=timeout) as response:
            if response.status != 200:
                return AgentHealth(shown, error=f"HTTP {response.status}")
            body = await response.content.read(MAX_METRICS_BYTES)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return AgentHealth(shown, error=f"unreachable: {type(exc).__name__} {exc}")
    try:
        return AgentHealth(shown, figures=reduce_metrics(body.decode("utf-8", "replace")))
    except ValueError as exc:
        return AgentHealth(shown, error=f"not Prometheus text: {exc}")


#: Most agents one discovery name expands to (one per node; a bound on the page's fan-out).
MAX_DISCOVERED = 500


async def expand(url: str) -> list[str]:
    """Every address `url`'s host resolves to, as a URL each (a headless Service's name gives
    one address per agent pod). A name that does not resolve stays as it is (its scrape then
    says why)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return [url]
    addresses = sorted({str(info[4][0]) for info in infos})[:MAX_DISCOVERED]
    return [
        urlunsplit(parts._replace(netloc=f"[{a}]:{port}" if ":" in a else f"{a}:{port}"))
        for a in addresses
    ]


async def scrape_all(urls: tuple[str, ...], discover: tuple[str, ...] = ()) -> list[AgentHealth]:
    """Scrape each URL, and each address of each `discover` URL, concurrently."""
    expanded = [u for group in await asyncio.gather(*(expand(d) for d in discover)) for u in group]
    targets = [*urls, *expanded]
    if not targets:
        return []
    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(scrape(session, u) for u in targets)))
