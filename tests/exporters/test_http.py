"""The HTTP webhook exporter against an aiohttp receiver: batching, auth, status handling,
TLS with a CA bundle, and the per-minute limit with its single announcement."""

from __future__ import annotations

import os
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporters.config import HttpSettings
from exporters.delivery import Delivery
from exporters.errors import ExporterError, SendError
from exporters.http import HttpExporter
from exporters.stats import DeliveryStats
from tests.exporters.daemons import TlsFiles
from tests.exporters.helpers import make_alert, wait_until
from tests.exporters.receivers import HttpReceiver


def _settings(url: str, **extra: Any) -> HttpSettings:
    values = {
        "enabled": True,
        "url": url,
        "retry_initial_backoff": timedelta(milliseconds=10),
        "retry_max_backoff": timedelta(milliseconds=50),
        "max_alerts_per_minute": 0,
        **extra,
    }
    return HttpSettings.model_validate(values)


@pytest.fixture
async def receiver():
    r = await HttpReceiver().start()
    yield r
    await r.stop()


async def _run(exporter: HttpExporter, **kwargs: Any) -> tuple[Delivery, DeliveryStats]:
    stats = DeliveryStats()
    delivery = Delivery([exporter], stats=stats, **kwargs)
    await delivery.start()
    return delivery, stats


async def test_single_alert_per_request(receiver: HttpReceiver) -> None:
    alert = make_alert(message='multi\nline "quoted" \x00', event={"flags": ["O_RDWR"]})
    exporter = HttpExporter(_settings(receiver.url + "/hook"))
    await exporter.send([alert])
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req.method == "POST"
    assert req.path == "/hook"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == alert.to_dict()
    await exporter.aclose()


async def test_batches_by_size_and_time(receiver: HttpReceiver) -> None:
    settings = _settings(
        receiver.url, batch_max_alerts=10, batch_max_delay=timedelta(milliseconds=200)
    )
    delivery, stats = await _run(HttpExporter(settings))
    alerts = [make_alert() for _ in range(23)]
    for a in alerts:
        delivery.submit(a)
    await wait_until(lambda: stats.sent["http"] == 23, what="23 alerts sent")
    sizes = [len(r.json()["alerts"]) for r in receiver.requests]
    assert sizes == [10, 10, 3]  # the last, partial batch went out after the delay
    assert [a["fingerprint"] for a in receiver.alerts()] == [a.fingerprint for a in alerts]
    await delivery.aclose(1)


async def test_auth_header_from_file_is_sent_and_never_logged(
    receiver: HttpReceiver, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("Bearer s3cret-token\n")
    settings = _settings(
        receiver.url,
        header_files={"Authorization": str(token_file)},
        header_env={"X-Api-Key": "WEBHOOK_KEY"},
        headers={"X-Static": "static-secret"},
    )
    exporter = HttpExporter(settings, environ={"WEBHOOK_KEY": "env-secret"})
    with capture_logs() as logs:
        delivery, stats = await _run(exporter)
        delivery.submit(make_alert())
        await wait_until(lambda: stats.sent["http"] == 1, what="sent")
        headers = receiver.requests[0].headers
        assert headers["Authorization"] == "Bearer s3cret-token"
        assert headers["X-Api-Key"] == "env-secret"
        assert headers["X-Static"] == "static-secret"
        # A rotated token is picked up without a restart.
        token_file.write_text("Bearer rotated\n")
        os.utime(token_file, ns=(1, 1))
        delivery.submit(make_alert())
        await wait_until(lambda: stats.sent["http"] == 2, what="second sent")
        assert receiver.requests[1].headers["Authorization"] == "Bearer rotated"
        # A missing file: transient failure, with the file named and no secret shown.
        token_file.unlink()
        delivery.submit(make_alert())
        await wait_until(lambda: stats.failed[("http", "transient")] > 0, what="failure")
        await delivery.aclose(0.1)
    text = repr(logs) + repr(settings) + str(settings.model_dump())
    for secret in ("s3cret-token", "rotated", "env-secret", "static-secret"):
        assert secret not in text
    assert any("token" in str(e.get("error", "")) for e in logs)


def test_missing_environment_variable_names_the_key() -> None:
    settings = _settings("http://127.0.0.1:1", header_env={"Authorization": "NOPE"})
    with pytest.raises(ExporterError) as info:
        HttpExporter(settings, environ={})
    assert info.value.field == "exporters.http.headerEnv.Authorization"


async def test_4xx_is_not_retried_5xx_and_429_are(receiver: HttpReceiver) -> None:
    receiver.statuses = [400, 503, 429, 200, 200]
    delivery, stats = await _run(HttpExporter(_settings(receiver.url)))
    first, second = make_alert(), make_alert()
    delivery.submit(first)  # 400: dropped, not retried
    delivery.submit(second)  # 503, 429, then 200
    await wait_until(lambda: stats.sent["http"] == 1, what="second delivered")
    assert [r.json()["fingerprint"] for r in receiver.requests] == [
        first.fingerprint,
        second.fingerprint,
        second.fingerprint,
        second.fingerprint,
    ]
    assert stats.failed[("http", "permanent")] == 1
    assert stats.failed[("http", "transient")] == 2
    assert stats.dropped[("http", "permanent_error")] == 1
    await delivery.aclose(1)


async def test_rate_limit_announced_once_per_window(receiver: HttpReceiver) -> None:
    now = [1000.0]
    exporter = HttpExporter(_settings(receiver.url, max_alerts_per_minute=5))
    delivery, stats = await _run(exporter, clock=lambda: now[0])
    for _ in range(9):
        delivery.submit(make_alert())
    await wait_until(lambda: stats.sent["http"] == 6, what="5 alerts and the announcement")
    kinds = [a["kind"] for a in receiver.alerts()]
    assert kinds == ["rule"] * 5 + ["system"]
    notice = receiver.alerts()[5]
    assert notice["rule"]["id"] == "GW0002"
    assert "5 alerts per minute" in notice["message"]
    assert stats.dropped[("http", "rate_limit")] == 4
    now[0] += 61  # next window: admitted again, and announced again once over the limit
    for _ in range(7):
        delivery.submit(make_alert())
    await wait_until(lambda: stats.sent["http"] == 12, what="second window")
    assert [a["kind"] for a in receiver.alerts()].count("system") == 2
    assert stats.dropped[("http", "rate_limit")] == 4 + 2
    await delivery.aclose(1)


async def test_https_with_ca_bundle(tls_files: TlsFiles) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_files.cert, tls_files.key)
    receiver = await HttpReceiver(ssl_context=ctx).start()
    try:
        trusted = HttpExporter(_settings(receiver.url, ca_file=str(tls_files.ca)))
        await trusted.send([make_alert()])
        await trusted.healthcheck()
        assert len(receiver.requests) == 1
        untrusted = HttpExporter(_settings(receiver.url))
        with pytest.raises(SendError) as info:
            await untrusted.send([make_alert()])
        assert not info.value.permanent
        await trusted.aclose()
        await untrusted.aclose()
    finally:
        await receiver.stop()


async def test_timeout_is_transient() -> None:
    receiver = await HttpReceiver(hold=True).start()
    try:
        exporter = HttpExporter(_settings(receiver.url, timeout=timedelta(milliseconds=100)))
        with pytest.raises(SendError) as info:
            await exporter.send([make_alert()])
        assert not info.value.permanent
        await exporter.aclose()
    finally:
        await receiver.stop()
