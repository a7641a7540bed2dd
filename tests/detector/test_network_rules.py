"""R2100-R2102 beyond the golden cases: hostile peer names, parameter validation, memo."""

from __future__ import annotations

import json

import jsonschema

from detector.alerts import MAX_TEXT
from gadgetclient.events import PeerIdentity
from profiler.identity import PeerKey
from tests.detector.builders import WEB_KEY, binding_yaml, make_detector, ruleset, tcp_ev
from tests.detector.profiles import MemoryProfile, MemoryProfiles
from tests.detector.test_artifacts import SCHEMA


def test_hostile_peer_names_are_bounded_and_escaped() -> None:
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY)])
    d = make_detector(binding_yaml("R2100"), profiles=profiles)
    evil = 'db\n{"forged":1}\x1b[2J\u2028' + "A" * 50_000
    labels = (("pod-template-hash", "x\ny"),)
    peer = PeerIdentity("pod", evil, "data\r\n", labels)
    alerts = d.evaluate([tcp_ev("10.244.2.7", 5432, peer=peer)])
    assert [a.rule.id for a in alerts] == ["R2100"]
    data = alerts[0].to_dict()
    jsonschema.validate(data, SCHEMA)
    text = data["message"] + json.dumps(data["event"])
    for ch in "\n\r\x1b\u2028":
        assert ch not in text
    assert len(data["message"]) < 1024
    assert len(data["event"]["peerIdentity"]["name"]) <= MAX_TEXT
    assert data["event"]["peerIdentity"]["kind"] == "Pod"


def test_bad_allow_parameters_are_reported_and_the_rule_stays_on() -> None:
    text = binding_yaml(
        "R2102",
        extra="    parameters: {allowedWorkloads: [metrics-server], allowedPodLabels: [x]}\n",
    )
    problems = [str(p) for p in ruleset(text).problems]
    assert len(problems) == 2
    assert "workloads must be namespace/Kind/name, got 'metrics-server'" in problems[0]
    assert "labels must be key=value, got 'x'" in problems[1]
    d = make_detector(text)
    assert [a.rule.id for a in d.evaluate([tcp_ev("10.0.0.12", 10250)])] == ["R2102"]


def test_a_known_peer_is_memoised_and_a_new_one_still_alerts() -> None:
    key = PeerKey("Deployment", "data", "db")
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY, peers={(key, 5432)})])
    d = make_detector(binding_yaml("R2100"), profiles=profiles)
    peer = PeerIdentity("pod", "db-6b8f9-aaaaa", "data", (("pod-template-hash", "6b8f9"),))
    quiet = [tcp_ev("10.244.2.7", 5432, t=i, peer=peer) for i in range(50)]
    assert d.evaluate(quiet) == []
    assert d.stats.memo_hits["tcp"] == 49
    other = PeerIdentity("pod", "cache-7c8d9-bbbbb", "data", (("pod-template-hash", "7c8d9"),))
    assert [a.rule.id for a in d.evaluate([tcp_ev("10.244.2.8", 5432, t=60, peer=other)])] == [
        "R2100"
    ]
