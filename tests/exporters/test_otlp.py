"""The OTLP exporter against a real OTLP/gRPC receiver on loopback (`otlp_receiver`).

Every alert arrives as one log record with its semantic-convention attributes; a receiver that
is down, slow or rejecting is handled as the exporter contract says (UNAVAILABLE retried,
INVALID_ARGUMENT dropped and counted); TLS works with a private CA; OTLP/HTTP posts the same
protobuf request.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from detector.alerts import ProfileInfo, Severity
from exporters.config import OtlpSettings
from exporters.delivery import Delivery
from exporters.errors import ExporterError, SendError
from exporters.otlp import OtlpExporter, alert_attributes
from exporters.stats import DeliveryStats
from tests.exporters.daemons import TlsFiles
from tests.exporters.helpers import free_port, make_alert, wait_until
from tests.exporters.otlp_receiver import OtlpReceiver
from tests.exporters.receivers import HttpReceiver

FAST: dict[str, Any] = {
    "enabled": True,
    "host": "127.0.0.1",
    "insecure": True,
    "retry_initial_backoff": timedelta(milliseconds=10),
    "retry_max_backoff": timedelta(milliseconds=50),
}


def settings(port: int, **extra: Any) -> OtlpSettings:
    return OtlpSettings(**{**FAST, "port": port, **extra})


async def test_every_alert_arrives_with_its_attributes(tmp_path: Path) -> None:
    receiver = await OtlpReceiver().start()
    headers_dir = tmp_path / "otel-headers"
    headers_dir.mkdir()
    (headers_dir / "X-Api-Key").write_text("s3cret-from-secret\n")
    (headers_dir / ".hidden").write_text("ignored")
    exporter = OtlpExporter(
        settings(
            receiver.port,
            headers={"X-Tenant": "team-a"},
            headers_dir=headers_dir,
            resource_attributes={"deployment.environment.name": "prod"},
        ),
        agent_version="1.2.3",
    )
    stats = DeliveryStats()
    delivery = Delivery([exporter], stats=stats)
    await delivery.start()
    hostile = "a\udcffb\u202e\x00 [x] \"q\" '${jndi}'"  # lone surrogate, bidi, NUL
    alerts = [
        make_alert(
            severity=sev,
            cluster="prod-eu",
            message=f"alert {i} {hostile}",
            args=("sh", "-c", hostile),
            event={"type": "tcp", "dstAddr": "10.0.0.9", "dstPort": 443, "srcPort": 50000},
        )
        for i, sev in enumerate(Severity)
    ]
    try:
        for alert in alerts:
            delivery.submit(alert)
        await wait_until(lambda: len(receiver.records()) == len(alerts), what="all records")
        await wait_until(lambda: stats.sent["otlp"] == len(alerts), what="sent counted")
    finally:
        await delivery.aclose(5)
        await receiver.stop()
    records = receiver.records()
    by_id = {r.attributes["gadgetwatch.alert.id"]: r for r in records}
    assert set(by_id) == {a.id for a in alerts}
    for alert in alerts:
        got = by_id[alert.id]
        attrs = got.attributes
        assert attrs["k8s.cluster.name"] == "prod-eu"
        assert attrs["k8s.namespace.name"] == alert.kubernetes.namespace
        assert attrs["k8s.pod.name"] == alert.kubernetes.pod
        assert attrs["k8s.container.name"] == alert.kubernetes.container
        assert attrs["k8s.node.name"] == alert.kubernetes.node
        assert attrs["k8s.deployment.name"] == alert.kubernetes.workload_name
        assert attrs["container.id"] == alert.runtime.container_id
        assert attrs["container.image.name"] == alert.runtime.image
        assert attrs["process.pid"] == alert.process.pid
        assert attrs["process.parent_pid"] == alert.process.ppid
        assert attrs["process.executable.path"] == alert.process.exe
        assert attrs["process.executable.name"] == alert.process.comm
        assert attrs["process.command_args"][0:2] == ["sh", "-c"]
        assert "\\udcff" in attrs["process.command_args"][2]  # escaped, not lost
        assert attrs["destination.address"] == "10.0.0.9"
        assert attrs["destination.port"] == 443
        assert attrs["source.port"] == 50000
        assert attrs["network.transport"] == "tcp"
        assert attrs["gadgetwatch.rule.id"] == alert.rule.id
        assert attrs["gadgetwatch.rule.tags"] == list(alert.rule.tags)
        assert attrs["gadgetwatch.alert.fingerprint"] == alert.fingerprint
        assert attrs["gadgetwatch.mitre.technique"] == "T1059"
        assert attrs["gadgetwatch.event.type"] == "tcp"
        assert attrs["gadgetwatch.dedup.count"] == 1
        assert got.body.startswith(f"alert {alerts.index(alert)} a\\udcffb")
        assert got.record.time_unix_nano == alert.time_ns
        assert got.record.severity_text == alert.rule.severity.label.upper()
        assert got.record.event_name == "gadgetwatch.alert"
        assert got.scope == "gadgetwatch.exporters.otlp"
        assert got.resource["service.name"] == "gadgetwatch"
        assert got.resource["service.version"] == "1.2.3"
        assert got.resource["deployment.environment.name"] == "prod"
        assert got.metadata["x-tenant"] == "team-a"
        assert got.metadata["x-api-key"] == "s3cret-from-secret"
        assert ".hidden" not in got.metadata
    severities = {
        r.attributes["gadgetwatch.rule.severity"]: r.record.severity_number for r in records
    }
    # Severity order is kept: info < low < medium < high < critical (FATAL = 21).
    assert [severities[s.label] for s in Severity] == sorted(severities.values())
    assert severities["critical"] == 21
    assert severities["info"] == 9


def test_event_fields_without_a_convention_keep_their_name_under_the_prefix() -> None:
    alert = make_alert(
        event={"type": "open", "path": "/etc/shadow", "flags": ["O_RDONLY"], "nested": {"a": 1}},
    )
    alert = alert.__class__(**{**_fields(alert), "profile": ProfileInfo("web", "completed")})
    attrs = alert_attributes(alert)
    assert attrs["file.path"] == "/etc/shadow"
    assert attrs["gadgetwatch.event.flags"] == ["O_RDONLY"]
    assert attrs["gadgetwatch.event.nested"] == '{"a":1}'
    assert attrs["gadgetwatch.profile.status"] == "completed"
    assert "k8s.cluster.name" not in attrs  # empty values are left out


def _fields(alert: Any) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in alert.__dataclass_fields__}


async def test_receiver_down_then_up_receives_everything_in_order() -> None:
    port = free_port()
    exporter = OtlpExporter(settings(port, timeout=timedelta(seconds=1)))
    stats = DeliveryStats()
    delivery = Delivery([exporter], stats=stats)
    await delivery.start()
    alerts = [make_alert() for _ in range(5)]
    for alert in alerts:
        delivery.submit(alert)
    await wait_until(lambda: stats.failed[("otlp", "transient")] >= 2, what="transient failures")
    assert stats.up["otlp"] == 0
    assert delivery.health()["otlp"]["healthy"] is False
    receiver = await OtlpReceiver().start(port)
    try:
        await wait_until(lambda: stats.sent["otlp"] == 5, what="delivered after the outage")
        got = [r.attributes["gadgetwatch.alert.fingerprint"] for r in receiver.records()]
        assert got == [a.fingerprint for a in alerts]
        assert stats.up["otlp"] == 1
    finally:
        await delivery.aclose(2)
        await receiver.stop()
    assert not stats.dropped


async def test_slow_receiver_times_out_as_transient() -> None:
    receiver = await OtlpReceiver(mode="slow").start()
    exporter = OtlpExporter(settings(receiver.port, timeout=timedelta(milliseconds=200)))
    try:
        with pytest.raises(SendError) as info:
            await exporter.send([make_alert()])
        assert not info.value.permanent
        assert "DEADLINE_EXCEEDED" in str(info.value)
    finally:
        await exporter.aclose()
        await receiver.stop()


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        (grpc.StatusCode.UNAVAILABLE, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, False),
        (grpc.StatusCode.INVALID_ARGUMENT, True),
        (grpc.StatusCode.UNAUTHENTICATED, True),
    ],
)
async def test_rejecting_receiver_status_codes(code: grpc.StatusCode, permanent: bool) -> None:
    receiver = await OtlpReceiver(mode="reject", code=code).start()
    exporter = OtlpExporter(settings(receiver.port))
    stats = DeliveryStats()
    delivery = Delivery([exporter], stats=stats)
    await delivery.start()
    try:
        delivery.submit(make_alert())
        if permanent:
            await wait_until(
                lambda: stats.dropped[("otlp", "permanent_error")] == 1, what="permanent drop"
            )
            assert receiver.calls == 1  # not retried
            assert stats.failed[("otlp", "permanent")] == 1
        else:
            await wait_until(lambda: receiver.calls >= 3, what="retries")
            assert stats.failed[("otlp", "transient")] >= 2
            assert not stats.dropped
    finally:
        await delivery.aclose(0.2)
        await receiver.stop()
    assert stats.sent["otlp"] + sum(stats.dropped.values()) == 1
    assert code.name in str(delivery.health()["otlp"]["lastError"])


async def test_partial_success_is_a_permanent_failure() -> None:
    receiver = await OtlpReceiver(mode="partial", rejected=1).start()
    exporter = OtlpExporter(settings(receiver.port))
    try:
        with pytest.raises(SendError) as info:
            await exporter.send([make_alert(), make_alert()])
        assert info.value.permanent
        assert "rejected 1 record(s): attribute too long" in str(info.value)
    finally:
        await exporter.aclose()
        await receiver.stop()


async def test_tls_with_a_private_ca(tls_files: TlsFiles) -> None:
    receiver = await OtlpReceiver(tls=(tls_files.cert, tls_files.key)).start()
    trusted = OtlpExporter(settings(receiver.port, insecure=False, ca_file=tls_files.ca))
    by_name = OtlpExporter(
        settings(receiver.port, insecure=False, ca_file=tls_files.ca, server_name="localhost"),
        name="otlp-sni",
    )
    untrusted = OtlpExporter(
        settings(receiver.port, insecure=False, timeout=timedelta(seconds=2)),
        name="otlp-system-ca",
    )
    try:
        await trusted.healthcheck()
        await trusted.send([make_alert(fingerprint="over-tls")])
        await by_name.send([make_alert(fingerprint="by-name")])
        fps = {r.attributes["gadgetwatch.alert.fingerprint"] for r in receiver.records()}
        assert fps == {"over-tls", "by-name"}
        with pytest.raises(SendError) as info:  # the system store does not know our test CA
            await untrusted.send([make_alert()])
        assert not info.value.permanent
    finally:
        for e in (trusted, by_name, untrusted):
            await e.aclose()
        await receiver.stop()
    assert len(receiver.records()) == 2


async def test_healthcheck_reports_an_unreachable_collector() -> None:
    exporter = OtlpExporter(settings(free_port(), timeout=timedelta(milliseconds=300)))
    with pytest.raises(ExporterError, match="cannot connect"):
        await exporter.healthcheck()
    await exporter.aclose()
    await exporter.aclose()
    with pytest.raises(SendError) as info:
        await exporter.send([make_alert()])
    assert info.value.permanent


def test_build_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ExporterError) as info:
        OtlpExporter(OtlpSettings(enabled=True))
    assert info.value.field == "exporters.otlp.host"
    with pytest.raises(ExporterError) as info:
        OtlpExporter(settings(4317, insecure=False, ca_file=tmp_path / "missing.pem"))
    assert info.value.field == "exporters.otlp.caFile"
    with pytest.raises(ExporterError) as info:
        OtlpExporter(
            settings(4318, protocol="http", insecure=False, cert_file=tmp_path / "client.pem")
        )
    assert info.value.field == "exporters.otlp.certFile"
    with pytest.raises(ExporterError) as info:
        OtlpExporter(settings(4317, insecure=False, key_file=tmp_path / "client.key"))
    assert info.value.field == "exporters.otlp.keyFile"
    with pytest.raises(ValueError, match="not a valid header name"):
        settings(4317, headers={"bad header\n": "x"})


async def test_secrets_stay_out_of_errors(tmp_path: Path) -> None:
    headers_dir = tmp_path / "h"
    headers_dir.mkdir()
    secret = tmp_path / "h" / "authorization"
    secret.write_text("Bearer top-secret")
    receiver = await OtlpReceiver(mode="reject", code=grpc.StatusCode.UNAUTHENTICATED).start()
    exporter = OtlpExporter(
        settings(receiver.port, headers={"x-key": "inline-secret"}, headers_dir=headers_dir)
    )
    try:
        with pytest.raises(SendError) as info:
            await exporter.send([make_alert()])
        text = str(info.value) + repr(exporter.channel)
        assert "top-secret" not in text
        assert "inline-secret" not in text
    finally:
        await exporter.aclose()
        await receiver.stop()


async def test_otlp_http_posts_the_same_request() -> None:
    receiver = await HttpReceiver(statuses=[503]).start()
    exporter = OtlpExporter(
        settings(receiver.port, protocol="http", headers={"X-Tenant": "team-a"}), name="otlp-http"
    )
    try:
        with pytest.raises(SendError) as info:
            await exporter.send([make_alert(fingerprint="first")])
        assert not info.value.permanent
        assert info.value.status == 503
        await exporter.send([make_alert(fingerprint="second")])
        await exporter.healthcheck()
    finally:
        await exporter.aclose()
        await receiver.stop()
    last = receiver.requests[-1]
    assert last.path == "/v1/logs"
    assert last.headers["Content-Type"] == "application/x-protobuf"
    assert last.headers["x-tenant"] == "team-a"
    request = ExportLogsServiceRequest.FromString(last.body)
    [record] = request.resource_logs[0].scope_logs[0].log_records
    attrs = {kv.key: kv.value.string_value for kv in record.attributes}
    assert attrs["gadgetwatch.alert.fingerprint"] == "second"


async def test_oversized_batch_is_split_below_the_message_limit() -> None:
    exporter = OtlpExporter(settings(4317))
    big = [make_alert(message="m" * 2000, args=tuple("x" * 2000 for _ in range(200)))]
    bodies = exporter.request_bytes(big * 12)
    assert len(bodies) > 1
    assert all(len(b) <= 4 * 1024 * 1024 for b in bodies)
    total = sum(
        len(rl.scope_logs[0].log_records)
        for b in bodies
        for rl in ExportLogsServiceRequest.FromString(b).resource_logs
    )
    assert total == 12
    await exporter.aclose()


@pytest.mark.parametrize(
    "host", ["http://collector", "user:pw@collector", "collector:4317", "c/p", "a b"]
)
def test_host_is_a_plain_name_or_address(host: str) -> None:
    with pytest.raises(ValueError, match="host name or address"):
        settings(4317, host=host)
    assert settings(4317, host="[::1]").host == "[::1]"
