"""The syslog exporter against a real rsyslogd: what rsyslog writes parses back to the alerts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from detector.alerts import Alert, Severity, safe_text
from exporters.config import SyslogSettings
from exporters.delivery import Delivery
from exporters.errors import SendError
from exporters.stats import DeliveryStats
from exporters.syslog import SyslogExporter, escape_param_value, format_message
from tests.exporters.daemons import Rsyslog, TlsFiles, gtls_available
from tests.exporters.helpers import make_alert, parse_rfc5424, wait_until

pytestmark = pytest.mark.rsyslog

HOSTILE_MESSAGE = 'evil"] \\ line1\nline2\r\x00\x1b[31m <13>1 fake header \u2028 ]"'


def _settings(daemon: Rsyslog, transport: str, app: str, **extra: object) -> SyslogSettings:
    port = daemon.udp_port if transport == "udp" else daemon.tcp_port
    values: dict[str, object] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "transport": transport,
        "app_name": app,
        "facility": "local3",
        "retry_initial_backoff": timedelta(milliseconds=20),
        "retry_max_backoff": timedelta(milliseconds=200),
        **extra,
    }
    return SyslogSettings.model_validate(values)


def _check_roundtrip(line: str, alert: Alert, *, app: str) -> None:
    m = parse_rfc5424(line)
    assert m.facility == 19  # local3
    assert (
        m.severity == {Severity.HIGH: 3, Severity.CRITICAL: 2, Severity.LOW: 5}[alert.rule.severity]
    )
    assert m.app_name == app
    assert m.hostname == alert.kubernetes.node
    assert m.msgid == alert.rule.id
    assert m.msg == safe_text(alert.message)
    a = m.sd["alert@32473"]
    assert a["id"] == alert.id
    assert a["cluster"] == alert.cluster
    assert a["ruleId"] == alert.rule.id
    assert a["rule"] == alert.rule.name
    assert a["severity"] == alert.rule.severity.label
    assert a["fingerprint"] == alert.fingerprint
    assert a["count"] == str(alert.dedup.count)
    assert a["fix"] == safe_text(alert.fix_suggestion)
    k = m.sd["k8s@32473"]
    assert k["namespace"] == alert.kubernetes.namespace
    assert k["workloadName"] == alert.kubernetes.workload_name
    assert k["pod"] == safe_text(alert.kubernetes.pod)
    assert k["containerId"] == alert.runtime.container_id
    p = m.sd["proc@32473"]
    assert p["pid"] == str(alert.process.pid)
    assert p["comm"] == safe_text(alert.process.comm)
    # Timestamp: the event time, microsecond precision.
    assert m.timestamp.startswith(alert.to_dict()["time"][:26])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_rsyslog_receives_parseable_rfc5424(
    transport: str, rsyslog_factory: Callable[..., Rsyslog]
) -> None:
    daemon = rsyslog_factory()
    app = f"gw-{transport}"
    exporter = SyslogExporter(_settings(daemon, transport, app))
    alerts = [
        make_alert(severity=Severity.HIGH, count=3, cluster="prod-eu"),
        make_alert(
            severity=Severity.CRITICAL,
            cluster="staging-us",
            message=HOSTILE_MESSAGE,
            comm='sh"]\\',
            args=("sh", "-c", 'echo ]"\\ \n done'),
            fix='quote " bracket ] backslash \\',
        ),
        make_alert(severity=Severity.LOW, pod="web-\n-evil", event={"path": '/x]"y'}),
    ]
    await exporter.send(alerts)
    await wait_until(lambda: len(daemon.lines(app_name=app)) >= 3, what="3 lines in rsyslog")
    lines = daemon.lines(app_name=app)
    assert len(lines) == 3
    for line, alert in zip(lines, alerts, strict=True):
        _check_roundtrip(line, alert, app=app)
    # The hostile message stayed inside its own line and frame.
    assert json.loads(parse_rfc5424(lines[1]).sd["proc@32473"]["args"]) == list(
        alerts[1].process.args
    )
    assert parse_rfc5424(lines[2]).sd["event@32473"]["path"] == '/x]"y'
    await exporter.aclose()


async def test_rsyslog_over_tls(
    rsyslog_factory: Callable[..., Rsyslog], tls_files: TlsFiles
) -> None:
    assert gtls_available(), "rsyslog-gnutls is missing: scripts/setup.sh --dev installs it"
    daemon = rsyslog_factory(tls=tls_files)
    app = "gw-tls"
    exporter = SyslogExporter(_settings(daemon, "tls", app, ca_file=tls_files.ca))
    alerts = [make_alert(), make_alert(message=HOSTILE_MESSAGE)]
    await exporter.send(alerts)
    await wait_until(lambda: len(daemon.lines(app_name=app)) >= 2, what="2 lines over TLS")
    for line, alert in zip(daemon.lines(app_name=app), alerts, strict=True):
        _check_roundtrip(line, alert, app=app)
    await exporter.aclose()


async def test_tls_refuses_an_unknown_ca(
    rsyslog_factory: Callable[..., Rsyslog], tls_files: TlsFiles
) -> None:
    assert gtls_available(), "rsyslog-gnutls is missing: scripts/setup.sh --dev installs it"
    daemon = rsyslog_factory(tls=tls_files)
    exporter = SyslogExporter(_settings(daemon, "tls", "gw-noca"))  # system CAs only
    with pytest.raises(SendError) as info:
        await exporter.send([make_alert()])
    assert not info.value.permanent
    assert "certificate" in str(info.value).lower()
    await exporter.aclose()


async def test_huge_arguments_are_capped_and_still_parse(
    rsyslog_factory: Callable[..., Rsyslog],
) -> None:
    daemon = rsyslog_factory()
    app = "gw-huge"
    exporter = SyslogExporter(_settings(daemon, "tcp", app))
    huge = make_alert(args=("x" * 100_000, *["y" * 3000] * 40), message="m" * 100_000)
    await exporter.send([huge])
    await wait_until(lambda: len(daemon.lines(app_name=app)) == 1, what="the capped message")
    line = daemon.lines(app_name=app)[0]
    assert len(line.encode()) <= 8192
    m = parse_rfc5424(line)
    assert m.sd["alert@32473"]["fingerprint"] == huge.fingerprint
    assert "truncated" in line
    await exporter.aclose()


async def test_reconnects_after_the_server_restarts(
    rsyslog_factory: Callable[..., Rsyslog],
) -> None:
    first = rsyslog_factory()
    app = "gw-restart"
    settings = _settings(first, "tcp", app)
    stats = DeliveryStats()
    delivery = Delivery([SyslogExporter(settings)], stats=stats)
    await delivery.start()
    delivery.submit(make_alert())
    await wait_until(lambda: len(first.lines(app_name=app)) == 1, what="first alert")
    first.stop()
    # The agent keeps going while syslog is down; alerts wait in the queue.
    delivery.submit(make_alert())
    await wait_until(lambda: stats.failed[("syslog", "transient")] > 0, what="failure counted")
    second = Rsyslog(first.dir.parent / "second", tls=None)
    second.tcp_port, second.udp_port = first.tcp_port, first.udp_port
    second.start()
    try:
        delivery.submit(make_alert())
        await wait_until(lambda: len(second.lines(app_name=app)) >= 2, what="after restart")
        assert stats.sent["syslog"] == 3
    finally:
        await delivery.aclose(1)
        second.stop()


def test_param_value_escaping_and_header_fields() -> None:
    assert escape_param_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    alert = make_alert(node="node with spaces\n", rule_id="R 1\n")
    raw = format_message(
        alert,
        settings=SyslogSettings(hostname="", app_name="gw"),
        default_hostname="fallback",
        procid=7,
    )
    text = raw.decode()
    assert "\n" not in text
    assert "\r" not in text
    m = parse_rfc5424(text)
    assert m.hostname == "node_with_spaces_"
    assert m.msgid == "R_1_"
    assert m.procid == "7"
    assert m.msg == alert.message
    assert text.endswith(" \ufeff" + alert.message)  # MSG is UTF-8, announced by a BOM


def test_tiny_message_limit_keeps_a_valid_message() -> None:
    alert = make_alert(message="z" * 5000)
    raw = format_message(
        alert,
        settings=SyslogSettings(max_message_bytes=480),
        default_hostname="h",
        procid=1,
    )
    assert len(raw) <= 480
    m = parse_rfc5424(raw.decode())
    assert m.sd["alert@32473"]["ruleId"] == alert.rule.id
