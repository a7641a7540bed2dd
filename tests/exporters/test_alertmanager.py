"""The AlertManager exporter against real Alertmanager daemons (clustering off, loopback)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from exporters.alertmanager import AlertManagerExporter, payload
from exporters.building import build_exporters
from exporters.config import AlertManagerSettings, ExportersSettings
from exporters.delivery import Delivery
from exporters.stats import DeliveryStats
from tests.exporters.daemons import Alertmanager
from tests.exporters.helpers import free_port, make_alert, wait_until
from tests.exporters.receivers import HttpReceiver

pytestmark = pytest.mark.alertmanager

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FAST = {
    "retry_initial_backoff": timedelta(milliseconds=20),
    "retry_max_backoff": timedelta(milliseconds=100),
}


def _settings(*urls: str, **extra: object) -> AlertManagerSettings:
    return AlertManagerSettings.model_validate(
        {"enabled": True, "urls": list(urls), **FAST, **extra}
    )


async def test_labels_annotations_and_no_duplicates(
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    am = alertmanager_factory()
    settings = _settings(
        am.url,
        extra_labels={"cluster": "prod-eu"},
        generator_url="https://console.example/alerts?rule={rule_id}&pod={pod}",
    )
    exporter = AlertManagerExporter(settings, url=am.url, name="alertmanager")
    first = make_alert(pid=100, comm="curl", count=1)
    await exporter.send([first])
    await wait_until(lambda: len(am.alerts()) == 1, what="the alert in Alertmanager")
    got = am.alerts()[0]
    assert got["labels"] == {
        "alertname": "UnexpectedProcessLaunched",
        "rule_id": "R0001",
        "severity": "high",
        "namespace": "prod",
        "workload_kind": "Deployment",
        "workload_name": "web",
        "pod": "web-6d4b-x2",
        "container": "app",
        "node": "node-1",
        "cluster": "prod-eu",
    }
    ann = got["annotations"]
    assert ann["summary"] == "Unexpected process launched in prod/web (container app)"
    assert ann["description"] == first.message
    assert ann["fix_suggestion"] == first.fix_suggestion
    assert "curl (pid 100" in ann["process"]
    assert ann["count"] == "1"
    assert got["generatorURL"] == ("https://console.example/alerts?rule=R0001&pod=web-6d4b-x2")
    assert got["status"]["state"] == "active"

    # The same behaviour again, from another process: one alert, updated (no per-pid labels).
    again = make_alert(pid=200, comm="curl", count=7, fingerprint=first.fingerprint)
    await exporter.send([again])
    await wait_until(
        lambda: am.alerts()[0]["annotations"]["count"] == "7", what="the count updated"
    )
    alerts = am.alerts()
    assert len(alerts) == 1
    assert "pid 200" in alerts[0]["annotations"]["process"]
    await exporter.aclose()


async def test_alerts_group_by_workload(alertmanager_factory: Callable[..., Alertmanager]) -> None:
    am = alertmanager_factory()
    exporter = AlertManagerExporter(_settings(am.url), url=am.url, name="alertmanager")
    batch = [
        make_alert(workload_name="web", pod="web-1"),
        make_alert(workload_name="web", pod="web-2"),
        make_alert(workload_name="web", pod="web-1", rule_id="R0002", rule_name="Unexpected file"),
        make_alert(workload_name="db", workload_kind="StatefulSet", pod="db-0"),
    ]
    await exporter.send(batch)
    await wait_until(lambda: len(am.alerts()) == 4, what="4 alerts")

    def workloads() -> dict[str, int]:
        return {g["labels"].get("workload_name", ""): len(g["alerts"]) for g in am.groups()}

    await wait_until(lambda: workloads() == {"web": 3, "db": 1}, what="two workload groups")
    await exporter.aclose()


async def test_ha_pair_gets_every_alert(alertmanager_factory: Callable[..., Alertmanager]) -> None:
    a, b = alertmanager_factory(), alertmanager_factory()
    stats = DeliveryStats()
    settings = ExportersSettings.model_validate(
        {"alertmanager": {"enabled": True, "urls": [a.url, b.url], **FAST}}
    )
    exporters = build_exporters(settings, stats=stats)
    assert len(exporters) == 2
    delivery = Delivery(exporters, stats=stats)
    await delivery.start()
    alerts = [make_alert(pod=f"web-{i}") for i in range(5)]
    for alert in alerts:
        delivery.submit(alert)
    await wait_until(lambda: len(a.alerts()) == 5, what="5 alerts at the first")
    await wait_until(lambda: len(b.alerts()) == 5, what="5 alerts at the second")
    await delivery.aclose(5)
    assert sum(stats.sent.values()) == 10


async def test_unreachable_at_start_then_back(
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    """Down at start: the agent runs, reports it, keeps trying; alerts within the queue bound
    are delivered when Alertmanager comes up, the rest are counted as dropped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stats = DeliveryStats()
    exporter = AlertManagerExporter(_settings(url, queue_size=3), url=url, name="alertmanager")
    delivery = Delivery([exporter], stats=stats)
    await delivery.start()
    await wait_until(
        lambda: delivery.health()["alertmanager"]["state"] == "failing", what="unhealthy"
    )
    alerts = [make_alert(pod=f"web-{i}") for i in range(8)]
    for alert in alerts:
        delivery.submit(alert)
    await wait_until(lambda: stats.failed[("alertmanager", "transient")] > 0, what="retrying")
    # One batch is in flight (retried), 3 wait in the queue, the rest were dropped.
    dropped = stats.dropped[("alertmanager", "queue_full")]
    assert dropped > 0
    am = alertmanager_factory(port=port)
    await wait_until(lambda: len(am.alerts()) == 8 - dropped, within=15, what="the backlog")
    assert stats.sent["alertmanager"] == 8 - dropped
    assert delivery.health()["alertmanager"]["healthy"] is True
    await delivery.aclose(5)


async def test_hostile_strings_respect_label_rules(
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    am = alertmanager_factory()
    exporter = AlertManagerExporter(_settings(am.url), url=am.url, name="alertmanager")
    hostile = make_alert(
        rule_name='Bad "rule"\n{name}',
        pod="web\n\x00\ud800-x" + "p" * 1000,
        namespace='ns"}',
        message="line1\nline2\x1b[0m",
        args=("a" * 100_000,),
    )
    await exporter.send([hostile])
    await wait_until(lambda: len(am.alerts()) == 1, what="the hostile alert accepted")
    got = am.alerts()[0]
    for name, value in got["labels"].items():
        assert LABEL_NAME.fullmatch(name)
        assert "\n" not in value
        assert "\x00" not in value
        assert len(value) < 400
    assert got["labels"]["alertname"] == "BadRuleName"
    assert len(got["annotations"]["process"]) < 4200
    await exporter.aclose()


async def test_auth_headers_and_permanent_rejection() -> None:
    receiver = await HttpReceiver(statuses=[200, 400]).start()
    try:
        basic = AlertManagerExporter(
            _settings(receiver.url, username="gw", password="s3cret", batch_max_alerts=1),
            url=receiver.url,
            name="am",
        )
        await basic.send([make_alert()])
        assert receiver.requests[0].path == "/api/v2/alerts"
        assert receiver.requests[0].headers["Authorization"] == "Basic Z3c6czNjcmV0"
        stats = DeliveryStats()
        delivery = Delivery([basic], stats=stats)
        await delivery.start()
        delivery.submit(make_alert())  # answered 400: not retried
        delivery.submit(make_alert())  # answered 200
        await wait_until(lambda: stats.sent["am"] == 1, what="second alert delivered")
        assert stats.dropped[("am", "permanent_error")] == 1
        assert stats.failed[("am", "permanent")] == 1
        assert len(receiver.requests) == 3
        await delivery.aclose(1)
    finally:
        await receiver.stop()


def test_payload_times_and_per_process_values_stay_out_of_labels() -> None:
    alert = make_alert(time_ns=1_700_000_000_000_000_000)
    item = payload(alert, settings=AlertManagerSettings(resolve_after=timedelta(minutes=30)))
    assert item["startsAt"] == "2023-11-14T22:13:20.000000000Z"
    assert item["endsAt"] == "2023-11-14T22:43:20.000000000Z"
    assert not {"pid", "comm", "ppid", "uid", "args", "container_id"} & set(item["labels"])
    assert "generatorURL" not in item
