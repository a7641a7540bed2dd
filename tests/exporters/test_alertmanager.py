"""The AlertManager exporter against real Alertmanager daemons (clustering off, loopback)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
        extra_labels={"team": "shop"},
        generator_url="https://console.example/alerts?rule={rule_id}&pod={pod}",
    )
    exporter = AlertManagerExporter(settings, url=am.url, name="alertmanager")
    first = make_alert(pid=100, comm="curl", count=1, cluster="prod-eu")
    await exporter.send([first])
    await wait_until(lambda: len(am.alerts()) == 1, what="the alert in Alertmanager")
    got = am.alerts()[0]
    assert got["labels"] == {
        "alertname": "UnexpectedProcessLaunched",
        "rule_id": "R0001",
        "severity": "high",
        "cluster": "prod-eu",
        "namespace": "prod",
        "workload_kind": "Deployment",
        "workload_name": "web",
        "container": "app",
        "finding": first.fingerprint,
        "team": "shop",
    }
    ann = got["annotations"]
    assert ann["summary"] == "Unexpected process launched in prod/web (container app)"
    assert ann["description"] == first.message
    assert ann["fix_suggestion"] == first.fix_suggestion
    assert "curl (pid 100" in ann["process"]
    assert ann["count"] == "1"
    assert (ann["pod"], ann["node"], ann["alert_id"]) == ("web-6d4b-x2", "node-1", first.id)
    assert got["generatorURL"] == ("https://console.example/alerts?rule=R0001&pod=web-6d4b-x2")
    assert got["status"]["state"] == "active"

    # The same finding again, from another process in another replica: one alert, updated.
    again = make_alert(
        pid=200,
        comm="curl",
        count=7,
        fingerprint=first.fingerprint,
        pod="web-6d4b-y7",
        cluster="prod-eu",
    )
    await exporter.send([again])
    await wait_until(
        lambda: am.alerts()[0]["annotations"]["count"] == "8", what="the count updated"
    )
    alerts = am.alerts()
    assert len(alerts) == 1
    assert "pid 200" in alerts[0]["annotations"]["process"]
    assert alerts[0]["annotations"]["pod"] == "web-6d4b-y7"
    await exporter.aclose()


class FakeClock:
    """Wall time in ns that only moves when the test says so."""

    def __init__(self, start_ns: int) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += int(delta.total_seconds() * 1e9)


def _ns(text: str) -> int:
    """AlertManager's RFC 3339 time (ms precision) as ns."""
    whole, _, frac = text.rstrip("Z").partition(".")
    secs = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return int(secs) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def _by_finding(am: Alertmanager) -> dict[str, dict[str, Any]]:
    return {a["labels"]["finding"]: a for a in am.alerts()}


async def test_replayed_alerts_fire_from_send_time_and_while_behaviour_repeats(
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    """Event times two days in the past (a replay) still give firing alerts: `startsAt` is
    the first occurrence, `endsAt` the time of sending + resolveAfter. A repeated behaviour is
    re-sent before it expires and stays firing; one that stopped resolves resolveAfter after
    its last occurrence (AlertManager then no longer lists it)."""
    am = alertmanager_factory()
    resolve = timedelta(minutes=30)
    # The agent's clock starts 50 minutes before AlertManager's: alerts sent then expire 20
    # minutes ago in AlertManager's eyes unless a re-send extends them.
    clock = FakeClock(time.time_ns() - int(timedelta(minutes=50).total_seconds() * 1e9))
    settings = _settings(am.url, resolve_after=resolve, resend_interval=timedelta(minutes=1))
    exporter = AlertManagerExporter(settings, url=am.url, name="alertmanager", clock_ns=clock)
    event_ns = time.time_ns() - int(timedelta(days=2).total_seconds() * 1e9)
    repeated = make_alert(fingerprint="a" * 16, time_ns=event_ns, comm="sh")
    stopped = make_alert(fingerprint="b" * 16, time_ns=event_ns, comm="cat")
    t0 = clock.now
    await exporter.send([repeated, stopped])
    resolve_ns = int(resolve.total_seconds() * 1e9)
    for alert in (repeated, stopped):
        item = payload(alert, settings=settings, now_ns=t0)
        assert _ns(item["startsAt"]) == event_ns
        assert _ns(item["endsAt"]) == t0 + resolve_ns

    # Nothing repeated: nothing to re-send.
    clock.advance(timedelta(minutes=5))
    assert await exporter.refresh() == 0
    # `repeated` keeps happening (the detector counts 3 repeats in its cooldown).
    clock.advance(timedelta(minutes=20))
    assert exporter.note_repeats({repeated.fingerprint: 3, "f" * 16: 9}) == 1
    last_repeat = clock.now
    assert await exporter.refresh() == 1
    assert await exporter.refresh() == 0  # sent; nothing new

    def state() -> dict[str, dict[str, Any]]:
        return _by_finding(am)

    await wait_until(lambda: set(state()) == {repeated.fingerprint}, what="only `repeated` firing")
    got = state()[repeated.fingerprint]
    assert got["status"]["state"] == "active"
    assert got["annotations"]["count"] == "4"
    assert abs(_ns(got["startsAt"]) - event_ns) < 1_000_000
    # Fires exactly until the last occurrence + resolveAfter (AlertManager keeps ms).
    assert abs(_ns(got["endsAt"]) - (last_repeat + resolve_ns)) < 1_000_000
    await exporter.aclose()


async def test_every_distinct_finding_visible_and_alerts_per_workload_bounded(
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    am = alertmanager_factory()
    settings = _settings(am.url, max_finding_alerts=5)
    exporter = AlertManagerExporter(settings, url=am.url, name="alertmanager")
    # Five different unexpected processes in one container: five alerts, each showing its own.
    procs = ["dash", "cat", "curl", "wget", "nc"]
    five = [
        make_alert(fingerprint=f"{i:016x}", comm=c, message=f"Unexpected process launched: {c}")
        for i, c in enumerate(procs)
    ]
    await exporter.send(five)
    await wait_until(lambda: len(am.alerts()) == 5, what="five alerts")
    assert {a["annotations"]["description"] for a in am.alerts()} == {a.message for a in five}
    # Repeats of one finding, from other pids and pods: still five alerts, the count grows.
    for pid in (7, 8, 9):
        await exporter.send([make_alert(fingerprint=five[1].fingerprint, pid=pid, pod="web-2")])
    await wait_until(
        lambda: _by_finding(am)[five[1].fingerprint]["annotations"]["count"] == "4",
        what="the repeated finding's count",
    )
    assert len(am.alerts()) == 5
    # A storm of 200 more distinct findings: one more alert, listing them with counts.
    storm = [
        make_alert(fingerprint=f"{100 + i:016x}", message=f"Unexpected process launched: x{i}")
        for i in range(200)
    ]
    await exporter.send(storm)
    await wait_until(lambda: "overflow" in _by_finding(am), what="the overflow alert")
    alerts = am.alerts()
    assert len(alerts) == 6
    overflow = _by_finding(am)["overflow"]
    lines = overflow["annotations"]["findings"].split("\n")
    assert lines[0] == "1× Unexpected process launched: x199"  # most recent first
    assert lines[-1] == "… and 180 more"
    assert overflow["annotations"]["count"] == "200"
    assert overflow["labels"]["workload_name"] == "web"
    # Another workload has its own bound.
    await exporter.send([make_alert(fingerprint="c" * 16, workload_name="db")])
    await wait_until(lambda: len(am.alerts()) == 7, what="the other workload's alert")
    await exporter.aclose()


async def test_delivery_passes_repeats_and_resends_them_on_shutdown(
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    """Through `Delivery`: the repeats the detector counted reach the exporter, and the last
    ones are re-sent when delivery drains at shutdown."""
    am = alertmanager_factory()
    clock = FakeClock(time.time_ns())
    stats = DeliveryStats()
    exporter = AlertManagerExporter(
        _settings(am.url, resolve_after=timedelta(minutes=10)),
        url=am.url,
        name="alertmanager",
        clock_ns=clock,
    )
    delivery = Delivery([exporter], stats=stats)
    await delivery.start()
    alert = make_alert(fingerprint="d" * 16)
    delivery.submit(alert)
    await wait_until(lambda: stats.sent["alertmanager"] == 1, what="the first send")
    clock.advance(timedelta(minutes=3))
    delivery.note_repeats({alert.fingerprint: 2})
    await delivery.aclose(5)
    assert stats.resent["alertmanager"] == 1
    (got,) = am.alerts()
    assert got["annotations"]["count"] == "3"
    assert abs(_ns(got["endsAt"]) - (clock.now + 600 * 10**9)) < 1_000_000


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
    sent_ns = 1_800_000_000_000_000_000
    settings = AlertManagerSettings(resolve_after=timedelta(minutes=30))
    item = payload(alert, settings=settings, now_ns=sent_ns)
    assert item["startsAt"] == "2023-11-14T22:13:20.000000000Z"  # the event
    assert item["endsAt"] == "2027-01-15T08:30:00.000000000Z"  # sending + 30 min
    assert not {"pid", "comm", "ppid", "uid", "args", "container_id", "pod"} & set(item["labels"])
    assert "generatorURL" not in item
    # A node clock running ahead cannot put startsAt after endsAt (a 400 from AlertManager).
    ahead = make_alert(time_ns=sent_ns + 10**13)
    item = payload(ahead, settings=settings, now_ns=sent_ns)
    assert item["startsAt"] == "2027-01-15T08:00:00.000000000Z"


async def test_a_retried_batch_is_counted_once() -> None:
    receiver = await HttpReceiver(statuses=[503, 503, 200]).start()
    try:
        exporter = AlertManagerExporter(_settings(receiver.url), url=receiver.url, name="am")
        stats = DeliveryStats()
        delivery = Delivery([exporter], stats=stats)
        await delivery.start()
        delivery.submit(make_alert(count=3))
        await wait_until(lambda: stats.sent["am"] == 1, what="delivered after two 503s")
        await delivery.aclose(1)
        counts = [r.json()[0]["annotations"]["count"] for r in receiver.requests]
        assert counts == ["3", "3", "3"]
    finally:
        await receiver.stop()
