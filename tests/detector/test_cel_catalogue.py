"""The built-in catalogue re-expressed in CEL (deploy/rules) gives the same alerts.

Every golden case (tests/data/detector/golden_rules.yaml: binding, profile, events, for every
rule, positive and negative) and the Kubescape-compatibility cases are run twice, with the
Python rules and with the CEL catalogue, and the alerts must be identical in rule, severity,
workload, dedup key (the fingerprint is a hash of workload, rule and key) and message. The
metadata of each CEL rule must equal its Python twin's, so `rules list` cannot tell them apart.
`NOT_EXPRESSIBLE` names the rules that could not be written in CEL (none today); the test
fails if a rule is missing from deploy/rules without being named there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector import bindings
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import Catalogue, Rule, default_catalogue
from detector.ruleset import cel_catalogue, load_text
from detector.stats import DetectorStats
from tests.detector import test_kubescape_compat as compat
from tests.detector.builders import WEB_KEY, PodMeta
from tests.detector.profiles import MemoryProfile, MemoryProfiles, profile_from_dict
from tests.detector.test_golden import CASES, build_event

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "rules"

#: Built-in rules with no CEL version, each with the reason (docs/rules.md repeats it).
NOT_EXPRESSIBLE: dict[str, str] = {}

PYTHON = default_catalogue()
CEL = cel_catalogue(RULES_DIR)


def _detector(catalogue: Catalogue, case: dict[str, Any]) -> Detector:
    rules = "\n".join(f"  - ruleID: {r}" for r in case["rules"])
    params = case.get("params")
    if params:
        rules += "\n    parameters: " + yaml.safe_dump(params, default_flow_style=True).strip()
    binding = (
        f"apiVersion: {bindings.API_VERSION}\nkind: RuntimeRuleAlertBinding\n"
        "metadata: {name: golden}\n"
        f"spec:\n  rules:\n{rules}\n"
    )
    profiles = MemoryProfiles()
    if case.get("profile") is not None:
        profiles.add(profile_from_dict(WEB_KEY, case["profile"]))
    return Detector(
        settings=DetectorSettings(),
        profiles=profiles,
        pod_metadata=PodMeta(mounts={"app": ["/data", "/scripts"]}),
        stats=DetectorStats(),
        rules=load_text(binding, source="golden.yaml", catalogue=catalogue),
        catalogue=catalogue,
    )


def _alerts(catalogue: Catalogue, case: dict[str, Any]) -> list[tuple[Any, ...]]:
    detector = _detector(catalogue, case)
    alerts = detector.evaluate([build_event(spec) for spec in case["events"]])
    assert detector.stats.errors == {}, detector.stats.errors
    assert not detector.ruleset.problems, detector.ruleset.problems
    return [
        (
            a.rule.id,
            a.rule.severity.label,
            a.kubernetes.namespace,
            a.kubernetes.workload_name,
            a.fingerprint,
            a.message,
        )
        for a in alerts
    ]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_cel_catalogue_gives_the_alerts_of_the_python_rules(case: dict[str, Any]) -> None:
    if set(case["rules"]) & set(NOT_EXPRESSIBLE):
        pytest.skip(f"not expressible in CEL: {NOT_EXPRESSIBLE}")
    expected = _alerts(PYTHON, case)
    assert _alerts(CEL, case) == expected
    assert [(r, m) for r, _, _, _, _, m in expected] == [
        (e["rule"], e["message"]) for e in case["expect"]
    ]


@pytest.mark.parametrize("case", compat.CASES, ids=[c["id"] for c in compat.CASES])
def test_cel_catalogue_matches_on_the_kubescape_compatibility_cases(case: dict[str, Any]) -> None:
    """Real `ProfileCache` profiles, DNS answers (R0011), rule policies, exceptions."""
    runs = []
    for catalogue in (PYTHON, CEL):
        detector = compat.detector_for(case, catalogue)
        alerts = detector.evaluate([compat.build_event(e) for e in case["events"]])
        assert detector.stats.errors == {}
        suppressed = sorted(detector.stats.suppressed.items())
        runs.append(([(a.rule.id, a.fingerprint, a.message) for a in alerts], suppressed))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) == len(case["expect"])


def _metadata(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "description": rule.description,
        "severity": rule.severity,
        "tags": rule.tags,
        "mitre": (rule.mitre_tactic, rule.mitre_technique),
        "profile": rule.profile,
        "kinds": rule.kinds,
        "parameters": [(p.name, p.kind, p.default or ()) for p in rule.parameters],
        "fix": rule.fix,
    }


def test_every_built_in_rule_is_in_deploy_rules_or_named_as_not_expressible() -> None:
    cel_ids = {r.id for r in CEL.rules}
    for rule in PYTHON.rules:
        if rule.id in NOT_EXPRESSIBLE:
            assert rule.id not in cel_ids
            continue
        twin = CEL.by_id(rule.id)
        assert isinstance(twin, Rule), f"{rule.id} has no CEL version in deploy/rules"
        assert _metadata(twin) == _metadata(rule), rule.id
        assert twin.revision, "CEL rules carry a revision"
    assert cel_ids <= {r.id for r in PYTHON.rules}


def test_cel_catalogue_keeps_the_unavailable_rules_and_guards() -> None:
    assert CEL.unavailable == PYTHON.unavailable
    assert CEL.resource_rules == PYTHON.resource_rules


#: What the CEL catalogue leaves out: the process-aware variants of these anomaly rules (a
#: profile recording which executables reached each resource, `profiler.processAware`). The
#: CEL versions have no helper over the process sets, so they judge a process-aware profile
#: like a plain one; docs/rules.md "The built-in catalogue in CEL" says so.
PROCESS_AWARE_ONLY_IN_PYTHON = ("R0002", "R0005", "R0006", "R0011", "R2100")


def test_process_aware_findings_are_named_as_python_only() -> None:
    """With a process-aware profile, a profiled file read by another executable alerts with
    the Python rule and not with its CEL version: the one behaviour the test names as not
    expressed."""
    from tests.detector.builders import exec_ev, open_ev

    started = exec_ev("/bin/sh", pid=4242)
    read = replace(open_ev("/etc/app/secret.yaml"), process=replace(started.process, pid=4242))
    results = {}
    for name, catalogue in (("python", PYTHON), ("cel", CEL)):
        profiles = MemoryProfiles()
        profiles.add(
            MemoryProfile(
                WEB_KEY,
                execs={"/bin/sh": []},
                opens={"/etc/app/secret.yaml": {"O_RDONLY"}},
                sources={("open", "/etc/app/secret.yaml"): frozenset({"/usr/local/bin/app"})},
            )
        )
        binding = f"apiVersion: {bindings.API_VERSION}\nkind: RuntimeRuleAlertBinding\n"
        binding += "metadata: {name: pa}\nspec:\n  rules:\n  - ruleID: R0002\n"
        detector = Detector(
            settings=DetectorSettings(),
            profiles=profiles,
            pod_metadata=PodMeta(),
            stats=DetectorStats(),
            rules=load_text(binding, source="pa.yaml", catalogue=catalogue),
            catalogue=catalogue,
        )
        results[name] = [a.rule.id for a in detector.evaluate([started, read])]
    assert results == {"python": ["R0002"], "cel": []}
    docs = (REPO / "docs" / "rules.md").read_text()
    section = docs[docs.index("### The built-in catalogue in CEL") :]
    section = section[: section.index("\n## ")]
    for rule_id in PROCESS_AWARE_ONLY_IN_PYTHON:
        assert rule_id in section, rule_id
