"""The exporter compliance test: every exporter, through `Delivery`, honours the package contract
(`exporters/__init__.py`): it delivers, counts sent and failed, survives a slow and a dead peer
without stalling the others, accounts for every alert (sent + dropped == submitted), and closes
idempotently.

Receivers are light loopback servers here (a file, a pipe, a syslog socket, an aiohttp app, an
OTLP/gRPC server); each exporter's own tests run against the real daemons (rsyslog,
Alertmanager) or, for OTLP, a receiver built from opentelemetry-proto's service stubs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporters.alertmanager import AlertManagerExporter
from exporters.building import build_exporters
from exporters.config import (
    AlertManagerSettings,
    ExportersSettings,
    HttpSettings,
    OtlpSettings,
    StdoutSettings,
    SyslogSettings,
)
from exporters.delivery import Delivery
from exporters.errors import SendError
from exporters.exporter import Exporter
from exporters.http import HttpExporter
from exporters.otlp import OtlpExporter
from exporters.stats import DeliveryStats
from exporters.stdout import StdoutExporter
from exporters.syslog import SyslogExporter
from tests.exporters.daemons import TlsFiles
from tests.exporters.helpers import free_port, make_alert, parse_rfc5424, wait_until
from tests.exporters.otlp_receiver import OtlpReceiver
from tests.exporters.receivers import BlackHole, HttpReceiver, SyslogReceiver

KINDS = ["stdout", "syslog-udp", "syslog-tcp", "syslog-tls", "http", "alertmanager", "otlp"]

#: Fast retries keep the tests short; the bounds themselves are tested in test_delivery.
FAST: dict[str, Any] = {
    "retry_initial_backoff": timedelta(milliseconds=10),
    "retry_max_backoff": timedelta(milliseconds=50),
    "max_alerts_per_minute": 0,
}


@dataclass
class Peer:
    exporter: Exporter
    received: Callable[[], list[str]] = list
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class Harness:
    """Builds an exporter of one kind against a healthy, a slow or a dead destination."""

    def __init__(self, kind: str, tmp_path: Path, tls: TlsFiles) -> None:
        self.kind = kind
        self.tmp = tmp_path
        self.tls = tls
        self.cleanups: list[Callable[[], Awaitable[None]]] = []

    def _server_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls.cert, self.tls.key)
        return ctx

    async def peer(self, mode: str, name: str, **channel: Any) -> Peer:
        """mode: healthy, slow or dead."""
        kind = self.kind
        opts = {**FAST, "enabled": True, **channel}
        if kind == "stdout":
            return self._stdout(mode, name, opts)
        if kind.startswith("syslog"):
            return await self._syslog(mode, name, kind.split("-")[1], opts)
        if kind == "http":
            return await self._http(mode, name, opts)
        if kind == "otlp":
            return await self._otlp(mode, name, opts)
        return await self._alertmanager(mode, name, opts)

    def _stdout(self, mode: str, name: str, opts: dict[str, Any]) -> Peer:
        settings = StdoutSettings(**opts)
        if mode == "healthy":
            path = self.tmp / f"{name}.jsonl"
            stream = path.open("wb")

            async def close_file() -> None:
                stream.close()

            def received() -> list[str]:
                lines = path.read_bytes().splitlines()
                return [orjson.loads(line)["fingerprint"] for line in lines]

            exporter = StdoutExporter(settings, stream=stream, name=name)
            return Peer(exporter, received, [close_file])
        r, w = os.pipe()
        if mode == "dead":
            os.close(r)  # every write fails with EPIPE
            dead_stream = os.fdopen(w, "wb", buffering=0)
            exporter = StdoutExporter(settings, stream=dead_stream, name=name)

            async def close_dead() -> None:
                dead_stream.close()

            return Peer(exporter, cleanups=[close_dead])
        # slow: a pipe whose reader never reads, filled up so the first write blocks.
        fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(w, b"x" * 65536)
        fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        slow_stream = os.fdopen(w, "wb", buffering=0)
        exporter = StdoutExporter(settings, stream=slow_stream, name=name)

        async def unblock() -> None:
            os.close(r)  # the blocked write fails with EPIPE and the writer thread moves on
            thread = exporter._thread
            if thread is not None:
                thread.join(timeout=5)
            slow_stream.close()

        return Peer(exporter, cleanups=[unblock])

    async def _syslog(self, mode: str, name: str, transport: str, opts: dict[str, Any]) -> Peer:
        extra: dict[str, Any] = {"transport": transport, "host": "127.0.0.1"}
        if transport == "tls":
            extra["ca_file"] = self.tls.ca
        if mode == "healthy":
            receiver = await SyslogReceiver(
                transport, ssl_context=self._server_ssl() if transport == "tls" else None
            ).start()
            exporter = SyslogExporter(
                SyslogSettings(**opts, **extra, port=receiver.port, app_name=name), name=name
            )

            def received() -> list[str]:
                return [
                    parse_rfc5424(m.decode()).sd["alert@32473"]["fingerprint"]
                    for m in receiver.messages
                ]

            return Peer(exporter, received, [receiver.stop])
        if mode == "dead":
            port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
            exporter = SyslogExporter(SyslogSettings(**opts, **extra, port=port), name=name)
            return Peer(exporter)
        if transport == "udp":
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read
            sink.bind(("127.0.0.1", 0))

            async def close_sink() -> None:
                sink.close()

            port = sink.getsockname()[1]
            exporter = SyslogExporter(SyslogSettings(**opts, **extra, port=port), name=name)
            return Peer(exporter, cleanups=[close_sink])
        hole = BlackHole()

        async def close_hole() -> None:
            hole.close()

        exporter = SyslogExporter(SyslogSettings(**opts, **extra, port=hole.port), name=name)
        return Peer(exporter, cleanups=[close_hole])

    async def _receiver(self, mode: str) -> HttpReceiver:
        return await HttpReceiver(hold=mode == "slow").start()

    async def _http(self, mode: str, name: str, opts: dict[str, Any]) -> Peer:
        if mode == "dead":
            url = f"http://127.0.0.1:{free_port()}/hook"
            return Peer(HttpExporter(HttpSettings(**opts, url=url), name=name))
        receiver = await self._receiver(mode)
        exporter = HttpExporter(HttpSettings(**opts, url=receiver.url + "/hook"), name=name)
        return Peer(
            exporter, lambda: [a["fingerprint"] for a in receiver.alerts()], [receiver.stop]
        )

    async def _otlp(self, mode: str, name: str, opts: dict[str, Any]) -> Peer:
        """A real OTLP/gRPC receiver (TLS with the test CA); slow never answers, dead is a
        port nobody listens on."""
        tls: dict[str, Any] = {"host": "127.0.0.1", "insecure": False, "ca_file": self.tls.ca}
        if mode == "dead":
            settings = OtlpSettings(**opts, **tls, port=free_port())
            return Peer(OtlpExporter(settings, name=name))
        receiver = await OtlpReceiver(
            mode="slow" if mode == "slow" else "healthy", tls=(self.tls.cert, self.tls.key)
        ).start()
        exporter = OtlpExporter(OtlpSettings(**opts, **tls, port=receiver.port), name=name)
        return Peer(
            exporter,
            lambda: [r.attributes["gadgetwatch.alert.fingerprint"] for r in receiver.records()],
            [receiver.stop],
        )

    async def _alertmanager(self, mode: str, name: str, opts: dict[str, Any]) -> Peer:
        # Every alert here is a distinct finding of one rule and workload: a bound above their
        # number keeps each its own AlertManager alert (the overflow has its own test).
        settings = AlertManagerSettings(**{"max_finding_alerts": 1000, **opts})
        if mode == "dead":
            url = f"http://127.0.0.1:{free_port()}"
            return Peer(AlertManagerExporter(settings, url=url, name=name))
        receiver = await self._receiver(mode)
        exporter = AlertManagerExporter(settings, url=receiver.url, name=name)
        return Peer(
            exporter,
            lambda: [a["annotations"]["fingerprint"] for a in receiver.alerts()],
            [receiver.stop],
        )


@pytest.fixture(params=KINDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path, tls_files: TlsFiles):
    h = Harness(request.param, tmp_path, tls_files)
    yield h
    for cleanup in h.cleanups:
        await cleanup()


async def _delivery(h: Harness, peers: list[Peer], stats: DeliveryStats) -> Delivery:
    delivery = Delivery([p.exporter for p in peers], stats=stats)
    for p in peers:
        h.cleanups[:0] = p.cleanups
    await delivery.start()
    return delivery


def _accounted(stats: DeliveryStats, name: str) -> int:
    return stats.sent[name] + sum(n for (ex, _), n in stats.dropped.items() if ex == name)


async def test_delivers_and_counts_sent(harness: Harness) -> None:
    stats = DeliveryStats()
    peer = await harness.peer("healthy", "ok")
    delivery = await _delivery(harness, [peer], stats)
    alerts = [make_alert() for _ in range(25)]
    for alert in alerts:
        delivery.submit(alert)
    await wait_until(lambda: len(peer.received()) >= 25, what="25 alerts at the receiver")
    await wait_until(lambda: stats.sent["ok"] == 25, what="sent counted")
    assert sorted(peer.received()) == sorted(a.fingerprint for a in alerts)
    assert delivery.health()["ok"]["healthy"] is True
    assert stats.up["ok"] == 1
    await delivery.aclose(5)
    assert not any(ex == "ok" for ex, _ in stats.dropped)


async def test_dead_peer_counts_failures_and_accounts_every_alert(harness: Harness) -> None:
    stats = DeliveryStats()
    peer = await harness.peer("dead", "dead")
    delivery = await _delivery(harness, [peer], stats)
    # UDP learns of a dead port only from the ICMP error of an earlier datagram, so alerts
    # keep coming (as they would) until failures show; the wait is bounded by a deadline.
    submitted = 0

    def failing() -> bool:
        nonlocal submitted
        if stats.queue_depth["dead"] == 0 and submitted < 50:
            delivery.submit(make_alert())
            submitted += 1
        return stats.failed[("dead", "transient")] >= 2

    await wait_until(failing, what="failures counted")
    health = delivery.health()["dead"]
    assert health["lastError"]
    if harness.kind != "syslog-udp":  # UDP flips back to "ok" with every datagram that leaves
        assert health["healthy"] is False
        assert stats.up["dead"] == 0
    await delivery.aclose(0.2)
    assert _accounted(stats, "dead") == submitted
    if harness.kind != "syslog-udp":
        assert stats.sent["dead"] == 0
        assert stats.dropped[("dead", "shutdown")] == submitted


async def test_slow_and_dead_peers_do_not_stall_a_healthy_one(harness: Harness) -> None:
    stats = DeliveryStats()
    small = {"queue_size": 5}
    peers = [
        await harness.peer("dead", "dead", **small),
        await harness.peer("slow", "slow", **small),
        await harness.peer("healthy", "ok", **small),
    ]
    delivery = await _delivery(harness, peers, stats)
    n = 40
    for _ in range(n):
        delivery.submit(make_alert())
        # Let the healthy channel drain between alerts, as detection does between events;
        # the slow and dead channels must not hold it up.
        await wait_until(lambda: stats.queue_depth["ok"] == 0, within=5, what="ok queue drained")
    await wait_until(lambda: len(peers[2].received()) == n, within=5, what="all at healthy peer")
    assert stats.sent["ok"] == n
    await delivery.aclose(0.3)
    for name in ("dead", "slow", "ok"):
        assert _accounted(stats, name) == n, (name, stats)
    if harness.kind not in ("syslog-udp",):
        assert stats.dropped[("dead", "queue_full")] > 0
    if harness.kind != "syslog-udp":
        # A peer that never completes a request overflows its own queue (UDP to a socket
        # nobody reads cannot be slow: datagrams vanish without back-pressure).
        assert stats.dropped[("slow", "queue_full")] > 0


async def test_close_is_idempotent(harness: Harness) -> None:
    stats = DeliveryStats()
    peer = await harness.peer("healthy", "ok")
    delivery = await _delivery(harness, [peer], stats)
    delivery.submit(make_alert())
    await wait_until(lambda: stats.sent["ok"] == 1, what="one alert sent")
    await delivery.aclose(1)
    await delivery.aclose(1)
    await peer.exporter.aclose()
    delivery.submit(make_alert())  # after close: refused, counted, no exception
    assert stats.dropped[("ok", "shutdown")] == 1
    with pytest.raises(SendError) as info:
        await peer.exporter.send([make_alert()])
    assert info.value.permanent


async def test_factory_builds_each_enabled_exporter() -> None:
    stats = DeliveryStats()
    settings = ExportersSettings.model_validate(
        {
            "syslog": {"enabled": True},
            "http": {"enabled": True, "url": "http://127.0.0.1:1/hook"},
            "alertmanager": {
                "enabled": True,
                "urls": ["http://am-0.example:9093", "http://am-1.example:9093"],
            },
            "otlp": {"enabled": True, "host": "collector.example", "insecure": True},
        }
    )
    exporters = build_exporters(settings, stats=stats)
    assert [e.name for e in exporters] == [
        "syslog",
        "http",
        "alertmanager@am-0.example:9093",
        "alertmanager@am-1.example:9093",
        "otlp",
    ]
    assert set(stats.sent) == {e.name for e in exporters}
    fallback = build_exporters(ExportersSettings(), stats=stats)
    assert [e.name for e in fallback] == ["stdout"]
    for e in [*exporters, *fallback]:
        await e.aclose()
