"""Every fix suggestion the detector produces is a `RuntimeAlertException` an operator can apply
as it is: it parses, the API server accepts it against the repository's CRD (the stand-in
validates the structural schema, strictly like `kubectl apply`), the agent loads it without a
problem, and once applied it silences exactly the finding it was made for. Suggestions for
different findings have different names, so they accumulate instead of replacing each other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from detector.alerts import Alert
from detector.bindings import API_VERSION as BINDING_API
from detector.exceptions import WORKLOAD_KINDS
from detector.rules import default_catalogue
from tests.detector.builders import WEB_KEY, PodMeta, exec_ev, make_detector, ruleset
from tests.detector.profiles import MemoryProfiles, profile_from_dict
from tests.detector.test_golden import CASES, build_event
from tests.standins.fixtures import KubeApi

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy" / "crds" / "runtimealertexceptions.gadgetwatch.io.yaml"
GROUP, VERSION, PLURAL = "gadgetwatch.io", "v1", "runtimealertexceptions"
#: DNS-1123 subdomain, what the API server requires of `metadata.name`.
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def _binding(case: dict[str, Any]) -> str:
    rules = "\n".join(f"  - ruleID: {r}" for r in case["rules"])
    if case.get("params"):
        params = yaml.safe_dump(case["params"], default_flow_style=True).strip()
        rules += "\n    parameters: " + params
    return (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\nmetadata: {{name: golden}}\n"
        f"spec:\n  rules:\n{rules}\n"
    )


def _run_case(case: dict[str, Any], *extra: str) -> list[Alert]:
    profiles = MemoryProfiles()
    if case.get("profile") is not None:
        profiles.add(profile_from_dict(WEB_KEY, case["profile"]))
    detector = make_detector(
        _binding(case), profiles=profiles, pod_meta=PodMeta(mounts={"app": ["/data", "/scripts"]})
    )
    if extra:
        applied = ruleset("---\n".join(extra), source="applied.yaml")
        assert applied.problems == ()
        detector.update_rules("applied", applied)
    return detector.evaluate([build_event(spec) for spec in case["events"]])


POSITIVE = [c for c in CASES if c["expect"]]


def _apply(api: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """`kubectl apply` of a new object: a create with strict field validation."""
    namespace = doc["metadata"]["namespace"]
    return dict(
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, doc, field_validation="Strict"
        )
    )


@pytest.fixture
def shop(kube_api: KubeApi) -> Any:
    core = client.CoreV1Api(kube_api.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="shop")))
    return client.CustomObjectsApi(kube_api.api_client())


def test_every_rule_has_a_fix_suggestion_case() -> None:
    rules = {a.rule.id for case in POSITIVE for a in _run_case(case)}
    assert rules == {r.id for r in default_catalogue().rules}


@pytest.mark.parametrize("case", POSITIVE, ids=[c["id"] for c in POSITIVE])
def test_every_fix_suggestion_applies_and_silences_its_finding(
    case: dict[str, Any], shop: Any
) -> None:
    alerts = _run_case(case)
    assert alerts
    snippets = []
    for alert in alerts:
        text = alert.fix_suggestion
        doc = yaml.safe_load(text)  # the whole suggestion, advice included, is one document
        assert doc["kind"] == "RuntimeAlertException", text
        assert NAME.fullmatch(doc["metadata"]["name"])
        assert len(doc["metadata"]["name"]) <= 253
        stored = _apply(shop, doc)
        # Nothing pruned: the API server kept every field the snippet set.
        assert stored["spec"] == doc["spec"]
        snippets.append(text)
    # Each distinct finding has its own name: applying them all adds up.
    names = [yaml.safe_load(s)["metadata"]["name"] for s in snippets]
    assert len(set(names)) == len({a.fingerprint for a in alerts})
    # Applied, the suggestions silence the alerts they were made for.
    assert _run_case(case, *snippets) == []


def test_two_findings_of_one_rule_accumulate_allowances(shop: Any) -> None:
    """`/bin/dash` and then `/bin/cat` in one container: two suggestions with different names;
    both applied, neither replaces the other, and both processes are allowed."""
    profiles = MemoryProfiles()
    profiles.add(profile_from_dict(WEB_KEY, {"execs": ["/usr/bin/app"]}))
    binding = (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\nmetadata: {{name: b}}\n"
        "spec:\n  rules:\n  - ruleID: R0001\n"
    )
    detector = make_detector(binding, profiles=profiles)
    dash, cat = detector.evaluate([exec_ev("/bin/dash"), exec_ev("/bin/cat")])
    docs = [yaml.safe_load(a.fix_suggestion) for a in (dash, cat)]
    assert docs[0]["metadata"]["name"] != docs[1]["metadata"]["name"]
    for doc in docs:
        _apply(shop, doc)
    listed = shop.list_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL)["items"]
    assert sorted(i["spec"]["allow"]["execs"] for i in listed) == [["/bin/cat"], ["/bin/dash"]]
    # The same finding again gives the same name: applying it twice changes nothing.
    again = make_detector(binding, profiles=profiles).evaluate([exec_ev("/bin/dash")])
    assert yaml.safe_load(again[0].fix_suggestion)["metadata"] == docs[0]["metadata"]
    applied = ruleset("---\n".join(yaml.safe_dump(i) for i in listed), source="cluster")
    detector.update_rules("cluster", applied)
    later = 7200 * 10**9
    assert detector.evaluate([exec_ev("/bin/dash", t=later), exec_ev("/bin/cat", t=later)]) == []
    assert [a.rule.id for a in detector.evaluate([exec_ev("/bin/sh", t=later)])] == ["R0001"]


# -- workload kinds: the agent and the CRD reject the same misspellings ----------------------


def _crd_kind_enum() -> list[str]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return list(spec["properties"]["workloads"]["items"]["properties"]["kind"]["enum"])


def test_agent_and_crd_know_the_same_workload_kinds() -> None:
    assert _crd_kind_enum() == list(WORKLOAD_KINDS)
    for copy in ("deploy/helm/gadgetwatch/crds", "deploy/kustomize/base/crds"):
        assert (REPO / copy / CRD.name).read_text() == CRD.read_text()


def _exception(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RuntimeAlertException",
        "metadata": {"name": "allow-web", "namespace": "shop"},
        "spec": {
            "workloads": [{"kind": kind, "name": "web", "containers": ["app"]}],
            "allow": {"execs": ["/bin/dash"]},
        },
    }


@pytest.mark.parametrize("kind", ["Deploymnt", "deployment", "Rollout", ""])
def test_misspelt_workload_kind_is_rejected_by_agent_and_api_server(kind: str, shop: Any) -> None:
    doc = _exception(kind)
    loaded = ruleset(yaml.safe_dump(doc), source="e.yaml")
    assert loaded.exceptions == ()  # never loaded with a reference that matches nothing
    (problem,) = [str(p) for p in loaded.problems]
    assert f"spec.workloads[0].kind: error: unknown workload kind {kind!r}" in problem
    assert "valid: " + ", ".join(WORKLOAD_KINDS) in problem
    with pytest.raises(client.ApiException) as err:
        _apply(shop, doc)
    assert err.value.status == 422
    body = json.loads(str(err.value.body))
    (cause,) = body["details"]["causes"]
    assert cause["field"] == "spec.workloads[0].kind"
    assert all(f'"{k}"' in cause["message"] for k in WORKLOAD_KINDS), cause["message"]


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_valid_workload_kind_is_accepted_by_both(kind: str, shop: Any) -> None:
    doc = _exception(kind)
    loaded = ruleset(yaml.safe_dump(doc), source="e.yaml")
    assert loaded.problems == ()
    assert len(loaded.exceptions) == 1
    assert _apply(shop, doc)["spec"] == doc["spec"]
