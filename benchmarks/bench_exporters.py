"""Alert delivery throughput, and what a dead AlertManager costs the detection pipeline.

Part 1, alerts/s per exporter through `Delivery` (queue, batching, send) to local receivers:
stdout to /dev/null, syslog over UDP to a socket nobody reads and over TCP to a real rsyslogd,
the HTTP webhook to an aiohttp receiver in this process (one alert per request, and batches of
100), and AlertManager to a real Alertmanager. Receivers that run in this process share its one
core, so those figures are a lower bound.

Part 2, detection throughput: a CPU-bound producer stands in for the pipeline (per-event work
of about `--work-us` µs, one alert every `--alert-every` events submitted to `Delivery`, a yield
to the event loop every 256 events as the pipeline's batches do), once with no exporter and once
with an AlertManager URL where nothing listens. The contract says the second must stay within
10% of the first: a dead destination costs a bounded queue, a connection attempt per backoff
period and counted drops, never detection time.

    .venv/bin/python benchmarks/bench_exporters.py [--alerts 20000] [--events 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from exporters.alertmanager import AlertManagerExporter
from exporters.config import AlertManagerSettings, HttpSettings, StdoutSettings, SyslogSettings
from exporters.delivery import Delivery
from exporters.exporter import Exporter
from exporters.http import HttpExporter
from exporters.stats import DeliveryStats
from exporters.stdout import StdoutExporter
from exporters.syslog import SyslogExporter
from tests.exporters.daemons import Alertmanager, Rsyslog
from tests.exporters.helpers import free_port, make_alert
from tests.exporters.receivers import HttpReceiver


def _quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


async def _rate(exporter: Exporter, alerts: int, *, timeout_s: float = 120) -> float:
    """Alerts/s from the first submit to the last alert counted as sent."""
    stats = DeliveryStats()
    delivery = Delivery([exporter], stats=stats)
    await delivery.start()
    batch = [make_alert() for _ in range(alerts)]
    name = exporter.name
    started = time.perf_counter()
    for alert in batch:
        delivery.submit(alert)
    deadline = started + timeout_s
    while stats.sent[name] + sum(n for (e, _), n in stats.dropped.items() if e == name) < alerts:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    dropped = sum(n for (e, _), n in stats.dropped.items() if e == name)
    await delivery.aclose(5)
    if dropped:
        print(f"    ({name}: {dropped} dropped)")
    return stats.sent[name] / elapsed


def _devnull() -> BinaryIO:
    return open("/dev/null", "wb")


def _channel(alerts: int, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "queue_size": alerts, "max_alerts_per_minute": 0, **extra}


async def part1(alerts: int, workdir: Path) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    devnull = _devnull()
    try:
        stdout = StdoutExporter(StdoutSettings(**_channel(alerts)), stream=devnull)
        results.append(("stdout -> /dev/null", await _rate(stdout, alerts)))
    finally:
        devnull.close()
    sink = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    udp_port = sink[0].get_extra_info("sockname")[1]
    udp = SyslogSettings(**_channel(alerts), host="127.0.0.1", port=udp_port, transport="udp")
    results.append(("syslog udp -> local socket", await _rate(SyslogExporter(udp), alerts)))
    sink[0].close()

    rsyslog = Rsyslog(workdir / "rsyslog").start()
    try:
        tcp = SyslogSettings(
            **_channel(alerts), host="127.0.0.1", port=rsyslog.tcp_port, transport="tcp"
        )
        results.append(("syslog tcp -> rsyslogd", await _rate(SyslogExporter(tcp), alerts)))
    finally:
        rsyslog.stop()

    receiver = await HttpReceiver().start()
    try:
        few = min(alerts, 3000)
        single = HttpSettings(**_channel(few, batch_max_alerts=1), url=receiver.url)
        results.append(("http, 1 alert/request", await _rate(HttpExporter(single), few)))
        batched = HttpSettings(
            **_channel(alerts, batch_max_alerts=100, batch_max_delay="0s"), url=receiver.url
        )
        results.append(("http, batches of 100", await _rate(HttpExporter(batched), alerts)))
    finally:
        await receiver.stop()

    am = Alertmanager(workdir / "am").start()
    try:
        # Every benchmark alert is a distinct finding of one rule in one workload: with the
        # bound at its maximum, the first 1000 are alerts of their own; with the default (10),
        # nearly all share the overflow alert, re-rendered with its list on every batch.
        settings = AlertManagerSettings(**_channel(alerts), urls=[am.url], max_finding_alerts=1000)
        exporter = AlertManagerExporter(settings, url=am.url, name="alertmanager")
        results.append(("alertmanager (batches of 64)", await _rate(exporter, alerts)))
        settings = AlertManagerSettings(**_channel(alerts), urls=[am.url])
        exporter = AlertManagerExporter(settings, url=am.url, name="alertmanager")
        results.append(("alertmanager, overflow (default bound)", await _rate(exporter, alerts)))
    finally:
        am.stop()
    return results


async def _produce(delivery: Delivery, *, events: int, alert_every: int, work: int) -> float:
    """Events/s of a CPU-bound loop that submits an alert every `alert_every` events."""
    alerts = [make_alert() for _ in range(64)]
    payload = b"x" * 64
    started = time.perf_counter()
    for i in range(events):
        digest = payload
        for _ in range(work):  # stands in for decoding, merging and rule evaluation
            digest = hashlib.blake2b(digest, digest_size=32).digest()
        if i % alert_every == 0:
            delivery.submit(alerts[i % 64])
        if i % 256 == 255:
            await asyncio.sleep(0)  # the pipeline yields between batches
    return events / (time.perf_counter() - started)


async def part2(events: int, alert_every: int, work_us: float, rounds: int) -> None:
    # Calibrate the per-event work to about `work_us` microseconds.
    t = time.perf_counter()
    digest = b"x" * 64
    for _ in range(20000):
        digest = hashlib.blake2b(digest, digest_size=32).digest()
    per_hash_us = (time.perf_counter() - t) / 20000 * 1e6
    work = max(1, round(work_us / per_hash_us))

    async def run(make: Callable[[], list[Exporter]]) -> tuple[float, DeliveryStats]:
        stats = DeliveryStats()
        delivery = Delivery(make(), stats=stats)
        await delivery.start()
        rate = await _produce(delivery, events=events, alert_every=alert_every, work=work)
        await delivery.aclose(0.5)
        return rate, stats

    dead_url = f"http://127.0.0.1:{free_port()}"

    def dead() -> list[Exporter]:
        settings = AlertManagerSettings(enabled=True, urls=[dead_url])
        return [AlertManagerExporter(settings, url=dead_url, name="alertmanager")]

    none_rates, dead_rates = [], []
    last: DeliveryStats | None = None
    for _ in range(rounds):  # interleaved, so drift of the machine hits both alike
        none_rates.append((await run(list))[0])
        rate, last = await run(dead)
        dead_rates.append(rate)
    best_none, best_dead = max(none_rates), max(dead_rates)
    ratio = best_dead / best_none
    print(
        f"\nDetection throughput ({events} events/round, ~{work_us:g} µs work/event, "
        f"1 alert per {alert_every} events, best of {rounds}):"
    )
    print(f"  no exporter configured     {best_none:12,.0f} events/s")
    print(f"  dead AlertManager          {best_dead:12,.0f} events/s  ({ratio:.1%} of the above)")
    if last is not None:
        print(
            f"  dead AlertManager, last round: failed attempts "
            f"{sum(last.failed.values())}, dropped {dict(last.dropped)}"
        )
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    print(f"  within 10%: {verdict}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=20000)
    parser.add_argument("--events", type=int, default=300000)
    parser.add_argument("--alert-every", type=int, default=100)
    parser.add_argument("--work-us", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        results = await part1(args.alerts, Path(tmp))
    print(f"Alerts/s per exporter ({args.alerts} alerts, one process, one core):")
    for name, rate in results:
        print(f"  {name:32s} {rate:12,.0f} alerts/s")
    await part2(args.events, args.alert_every, args.work_us, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
