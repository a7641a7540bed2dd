"""What every alert carries, whoever produced it and wherever it goes.

- every kind of alert the product emits (each rule, hence each event shape; the detector's
  `GW0001` and the exporters' `GW0002` "limit reached" announcements) validates against the
  published schema `docs/alert.schema.json`, as posted to a real webhook;
- the configured cluster name is in every alert;
- each alert has an id that stays the same on every delivery attempt (a receiver deduplicates
  retries on it) and differs between alerts, also between repeats of one finding.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detector.alerts import Alert
from detector.bindings import API_VERSION as BINDING_API
from exporters.config import HttpSettings
from exporters.delivery import Delivery
from exporters.http import HttpExporter
from exporters.stats import DeliveryStats
from tests.detector.builders import SEC, WEB_KEY, PodMeta, exec_ev, make_detector
from tests.detector.profiles import MemoryProfiles, profile_from_dict
from tests.detector.test_fix_suggestions import POSITIVE, _binding
from tests.detector.test_golden import build_event
from tests.exporters.helpers import make_alert, wait_until
from tests.exporters.receivers import HttpReceiver

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "alert.schema.json").read_text())
CLUSTER = "prod-eu-1"


def _golden_alerts() -> list[Alert]:
    out: list[Alert] = []
    for case in POSITIVE:
        profiles = MemoryProfiles()
        if case.get("profile") is not None:
            profiles.add(profile_from_dict(WEB_KEY, case["profile"]))
        detector = make_detector(
            _binding(case),
            profiles=profiles,
            pod_meta=PodMeta(mounts={"app": ["/data", "/scripts"]}),
            cluster_name=CLUSTER,
        )
        out += detector.evaluate([build_event(spec) for spec in case["events"]])
    return out


def _detector_limit_alert() -> Alert:
    binding = (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\nmetadata: {{name: b}}\n"
        "spec:\n  rules:\n  - ruleID: R1000\n"
    )
    detector = make_detector(binding, per_rule_rate_limit=1, cluster_name=CLUSTER)
    alerts = detector.evaluate([exec_ev(f"/dev/shm/x{i}", t=i * SEC) for i in range(3)])
    (system,) = [a for a in alerts if a.rule.id == "GW0001"]
    return system


def _http(url: str, **extra: Any) -> HttpExporter:
    return HttpExporter(
        HttpSettings.model_validate(
            {
                "enabled": True,
                "url": url,
                "retry_initial_backoff": timedelta(milliseconds=10),
                "retry_max_backoff": timedelta(milliseconds=50),
                "max_alerts_per_minute": 0,
                **extra,
            }
        )
    )


@pytest.fixture
async def receiver():
    r = await HttpReceiver().start()
    yield r
    await r.stop()


async def test_every_alert_kind_validates_against_the_published_schema(
    receiver: HttpReceiver,
) -> None:
    rule_alerts = _golden_alerts()
    limit = _detector_limit_alert()
    # The exporter's own announcement: a limit of all the alerts but one, so it fires once.
    extra = make_alert(cluster=CLUSTER, fingerprint="f" * 16, event={"type": "exec"})
    alerts = [*rule_alerts, limit, extra]
    stats = DeliveryStats()
    delivery = Delivery([_http(receiver.url, max_alerts_per_minute=len(alerts) - 1)], stats=stats)
    await delivery.start()
    for alert in alerts:
        delivery.submit(alert)
    await wait_until(lambda: stats.sent["http"] == len(alerts), what="every alert posted")
    await delivery.aclose(5)
    posted = receiver.alerts()
    for body in posted:
        jsonschema.validate(body, SCHEMA)
    # Every kind is there: each rule, each event shape, both system alerts.
    rules = {b["rule"]["id"] for b in posted}
    assert {a.rule.id for a in rule_alerts} | {"GW0001", "GW0002"} <= rules
    shapes = {b["event"]["type"] for b in posted}
    assert shapes == {"exec", "open", "tcp", "dns", "capability", "syscalls", "limit"}
    assert {b["kind"] for b in posted} == {"rule", "system"}
    # The cluster name is in every one of them, the exporters' own announcement included.
    assert {b["cluster"] for b in posted} == {CLUSTER}
    # Ids: unique per alert.
    assert len({b["id"] for b in posted}) == len(posted)


def test_alerts_without_a_cluster_name_say_so() -> None:
    alert = make_alert(fingerprint="e" * 16, event={"type": "exec"})
    data = alert.to_dict()
    assert data["cluster"] == ""
    jsonschema.validate(data, SCHEMA)


async def test_alert_id_is_stable_across_retries_and_unique_across_repeats(
    receiver: HttpReceiver,
) -> None:
    receiver.statuses = [503, 503, 200, 200]
    first = make_alert(fingerprint="0123456789abcdef", time_ns=10 * SEC, count=1)
    repeat = make_alert(fingerprint="0123456789abcdef", time_ns=3700 * SEC, count=5)
    assert first.id != repeat.id
    stats = DeliveryStats()
    delivery = Delivery([_http(receiver.url)], stats=stats)
    await delivery.start()
    delivery.submit(first)
    delivery.submit(repeat)
    await wait_until(lambda: stats.sent["http"] == 2, what="both delivered")
    await delivery.aclose(5)
    ids = [r.json()["id"] for r in receiver.requests]
    # The first alert was delivered three times (two 503s): at least once, always one id.
    assert ids == [first.id, first.id, first.id, repeat.id]
    # Deterministic: the same alert content gives the same id (a replay yields the same ids).
    again = make_alert(fingerprint="0123456789abcdef", time_ns=10 * SEC, count=1)
    assert again.id == first.id
