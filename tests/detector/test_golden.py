"""Golden tests per rule: binding + profile + events -> the exact list of alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.bindings import API_VERSION as BINDING_API
from detector.rules import default_catalogue
from gadgetclient.events import Event, PeerIdentity
from tests.detector.builders import (
    SEC,
    WEB_KEY,
    PodMeta,
    cap_ev,
    dns_ev,
    exec_ev,
    make_detector,
    open_ev,
    sys_ev,
    tcp_ev,
)
from tests.detector.profiles import MemoryProfiles, profile_from_dict

DATA = Path(__file__).parent.parent / "data" / "detector"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "golden_rules.yaml").read_text())


def build_event(spec: dict[str, Any]) -> Event:
    spec = dict(spec)
    t = int(spec.pop("t", 0) * SEC)
    if "exec" in spec:
        return exec_ev(
            spec["exec"],
            *spec.get("args", []),
            t=t,
            cwd=spec.get("cwd", ""),
            upper_layer=spec.get("upper_layer", False),
        )
    if "open" in spec:
        return open_ev(spec["open"], *spec.get("flags", []), t=t, comm=spec.get("comm", "app"))
    if "tcp" in spec:
        raw = dict(spec.get("peer") or {})
        raw["labels"] = tuple(sorted((k, v) for k, v in (raw.get("labels") or {}).items()))
        peer = PeerIdentity(**raw) if "peer" in spec else None
        return tcp_ev(spec["tcp"], spec["port"], t=t, comm=spec.get("comm", "app"), peer=peer)
    if "dns" in spec:
        return dns_ev(spec["dns"], t=t, comm=spec.get("comm", "app"))
    if "cap" in spec:
        return cap_ev(spec["cap"], t=t)
    return sys_ev(*spec["sys"], t=t)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_golden(case: dict[str, Any]) -> None:
    rules = "\n".join(f"  - ruleID: {r}" for r in case["rules"])
    params = case.get("params")
    if params:
        rules += "\n    parameters: " + yaml.safe_dump(params, default_flow_style=True).strip()
    binding = (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\nmetadata: {{name: golden}}\n"
        f"spec:\n  rules:\n{rules}\n"
    )
    profiles = MemoryProfiles()
    if case.get("profile") is not None:
        profiles.add(profile_from_dict(WEB_KEY, case["profile"]))
    detector = make_detector(
        binding, profiles=profiles, pod_meta=PodMeta(mounts={"app": ["/data", "/scripts"]})
    )
    alerts = detector.evaluate([build_event(spec) for spec in case["events"]])
    got = [
        {"rule": a.rule.id, "severity": a.rule.severity.label, "message": a.message} for a in alerts
    ]
    assert got == case["expect"]
    assert detector.stats.errors == {}


def test_every_available_rule_has_a_positive_golden_case() -> None:
    positive = {e["rule"] for c in CASES for e in c["expect"]}
    assert positive == {r.id for r in default_catalogue().rules}
