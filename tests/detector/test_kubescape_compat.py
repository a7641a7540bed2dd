"""Kubescape compatibility (issue 21): the cases of `tests/data/detector/kubescape_compat.yaml`.

Each case goes through the real pieces: the profile is an `ApplicationProfile` document read by
`profiler.documents.from_document` and compiled by `profiler.cache.ProfileCache`, the binding is
a `RuntimeRuleAlertBinding` loaded by the rule loader, and the events pass `Detector.evaluate`
(profile gate, checks, rule policies, DNS answers, exceptions, dedup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.bindings import API_VERSION as BINDING_API
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import Catalogue
from detector.ruleset import load_text
from detector.stats import DetectorStats
from gadgetclient.events import DnsEvent, Event, OpenEvent
from profiler.cache import ProfileCache
from profiler.documents import API_VERSION as PROFILE_API
from profiler.documents import from_document
from tests.detector.builders import (
    DB,
    SEC,
    T0,
    WEB,
    WEB_KEY,
    PodMeta,
    exec_ev,
    proc,
    ruleset,
    tcp_ev,
)

DATA = Path(__file__).parent.parent / "data" / "detector"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "kubescape_compat.yaml").read_text())


def profile_document(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": PROFILE_API,
        "kind": "ApplicationProfile",
        "metadata": {"name": "deployment-web-app", "namespace": WEB_KEY.namespace},
        "spec": {
            "workload": {
                "namespace": WEB_KEY.namespace,
                "kind": WEB_KEY.owner_kind,
                "name": WEB_KEY.owner_name,
                "container": WEB_KEY.container,
            },
            "containers": [{"name": WEB_KEY.container, **container}],
        },
        "status": {"phase": "completed"},
    }


def build_event(spec: dict[str, Any]) -> Event:
    t = int(spec.get("t", 0) * SEC)
    c = DB if spec.get("c") == "db" else WEB
    comm = spec.get("comm", "app")
    if "exec" in spec:
        return exec_ev(
            spec["exec"], *spec.get("args", []), t=t, c=c, comm=comm, cwd=spec.get("cwd", "")
        )
    if "open" in spec:
        return OpenEvent(
            timestamp_ns=T0 + t,
            container=c,
            process=proc(comm, cwd=spec.get("cwd", "")),
            path=spec["open"],
            flags=tuple(spec.get("flags", ["O_RDONLY"])),
        )
    if "tcp" in spec:
        return tcp_ev(spec["tcp"], spec["port"], t=t, c=c, comm=comm)
    answers = tuple(spec.get("answers", ()))
    return DnsEvent(
        timestamp_ns=T0 + t,
        container=c,
        process=proc(comm),
        name=spec["dns"],
        is_response=bool(answers),
        qtype="A",
        addresses=answers,
    )


def detector_for(case: dict[str, Any], catalogue: Catalogue | None = None) -> Detector:
    rules = "\n".join(f"  - ruleID: {r}" for r in case["rules"])
    if case.get("params"):
        dumped = yaml.safe_dump(case["params"], default_flow_style=True).strip()
        rules += f"\n    parameters: {dumped}"
    binding = (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\n"
        f"metadata: {{name: compat}}\nspec:\n  rules:\n{rules}\n"
    )
    cache = ProfileCache()
    if case.get("profile") is not None:
        cache.upsert(from_document(profile_document(case["profile"]), source=case["id"]))
    loaded = (
        ruleset(binding)
        if catalogue is None
        else load_text(binding, source="compat.yaml", catalogue=catalogue)
    )
    assert not loaded.problems, loaded.problems
    return Detector(
        settings=DetectorSettings(),
        profiles=cache,
        pod_metadata=PodMeta(),
        stats=DetectorStats(),
        rules=loaded,
        catalogue=catalogue,
    )


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_kubescape_compatible_expectation(case: dict[str, Any]) -> None:
    detector = detector_for(case)
    alerts = detector.evaluate([build_event(e) for e in case["events"]])
    got = [(a.rule.id, a.message) for a in alerts]
    assert len(got) == len(case["expect"]), got
    for (rule_id, message), (want_rule, want_text) in zip(got, case["expect"], strict=True):
        assert rule_id == want_rule
        assert want_text in message, message
    for reason, count in (case.get("suppressed") or {}).items():
        assert sum(n for (_, r), n in detector.stats.suppressed.items() if r == reason) == count
    assert detector.stats.errors == {}


def test_every_case_names_its_kubescape_counterpart() -> None:
    assert all(c.get("kubescape") for c in CASES)
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_documented_differences_are_in_the_docs() -> None:
    """Every case marked `difference` is a line of docs/rules.md's compatibility section."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    section = docs[docs.index("## Compatibility with Kubescape") :]
    for case in CASES:
        if "difference" in case:
            assert case["rules"][0] in section, case["id"]
