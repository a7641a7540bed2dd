"""Everything written validates against the CRD; bad input names the object and the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from profiler.cache import ProfileCache
from profiler.dirstore import DirectoryStore
from profiler.documents import API_VERSION as PROFILE_API
from profiler.documents import CRD_NAME, from_document, to_document
from profiler.errors import InvalidProfileError
from profiler.identity import WorkloadKey
from profiler.merging import merged
from profiler.profiles import profile_name
from profiler.readmodel import ProfileStatus
from tests.profiler.test_cli import completed

CRD = Path(__file__).resolve().parents[2] / f"deploy/crds/{CRD_NAME}.yaml"


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_written_documents_validate_against_the_crd() -> None:
    doc = to_document(completed())
    jsonschema.validate(doc, schema())
    assert from_document(doc, source="x") == completed()


def test_crd_has_printer_columns_and_short_name() -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["shortNames"] == ["approf"]
    columns = {c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Workload", "Status", "Age"} <= columns


def test_seed_fields_are_accepted_by_the_schema() -> None:
    seed = {
        "apiVersion": PROFILE_API,
        "kind": "ApplicationProfile",
        "metadata": {"name": "pod-x", "namespace": "default"},
        "spec": {
            "containers": [
                {
                    "name": "x",
                    "execs": [{"path": "/bin/ls", "args": ["-l"], "envs": [], "upperLayer": False}],
                    "opens": [
                        {"path": "/etc", "flags": ["O_RDONLY"], "taskName": "ls", "taskId": 1}
                    ],
                    "networkActivity": {
                        "outgoing": [{"port": 53, "protocol": "UDP", "dstEndpoint": "x"}]
                    },
                }
            ]
        },
    }
    jsonschema.validate(seed, schema())


C = "spec.containers[0]"


def _c(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: _c(d)["opens"][0].update(mode="x"), f"{C}.opens[0].mode", "unknown field"),
        (
            lambda d: _c(d)["networkActivity"]["outgoing"][0].update(port=70000),
            f"{C}.networkActivity.outgoing[0].port",
            "value 70000 out of range (0..65535)",
        ),
        (lambda d: d["status"].update(phase="done"), "status.phase", "unknown phase 'done'"),
        (lambda d: _c(d).update(syscalls="read"), f"{C}.syscalls", "expected a list, got str"),
        (lambda d: d["spec"].pop("workload"), "spec.workload", "expected a mapping, got null"),
        (lambda d: d.update(apiVersion="v2"), "apiVersion", f"expected {PROFILE_API!r}, got 'v2'"),
    ],
)
def test_bad_input_names_object_and_field(mutate: Any, field: str, message: str) -> None:
    doc = to_document(completed())
    mutate(doc)
    with pytest.raises(InvalidProfileError) as info:
        from_document(doc, source="shop/web.yaml")
    assert info.value.obj == "shop/web.yaml"
    assert info.value.field == field
    assert info.value.message.startswith(message)


async def test_corrupt_file_is_counted_and_the_others_load(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.create_sync(completed())
    bad = tmp_path / "staging" / "broken.yaml"
    bad.write_text(f"apiVersion: {PROFILE_API}\nkind: ApplicationProfile\nspec: {{workload: 3}}\n")
    cache = ProfileCache()
    await store.resync(cache, {})
    assert len(cache) == 1
    assert cache.stats.errors[("cache", "invalid")] == 1
    profiles, errors = await store.list()
    assert len(profiles) == 1
    assert str(errors[0]) == f"{bad}: spec.workload: expected a mapping, got int"


def test_names_are_dns1123_and_predictable() -> None:
    assert profile_name(WorkloadKey("ns", "Deployment", "web", "nginx")) == "deployment-web-nginx"
    odd = profile_name(WorkloadKey("", "Host", "docker.io/library/Redis", "redis_1"))
    assert odd.startswith("host-docker-io-library-redis-redis-1-")
    assert len(odd) <= 63
    long = profile_name(WorkloadKey("ns", "Deployment", "w" * 80, "c"))
    assert len(long) == 63
    assert long != profile_name(WorkloadKey("ns", "Deployment", "w" * 81, "c"))


def test_the_cache_keeps_the_newer_of_two_racing_versions() -> None:
    """The learner's write result and a rescan that read the file earlier can arrive in either
    order; the older must not undo the newer (a completed profile would fall back)."""
    newer = dataclasses.replace(completed(), resource_version="8")
    older_meta = dataclasses.replace(newer.meta, status=ProfileStatus.LEARNING)
    older = dataclasses.replace(newer, meta=older_meta, resource_version="7")
    cache = ProfileCache()
    cache.upsert(newer)
    cache.upsert(older)
    view = cache.get(newer.key)
    assert view is not None
    assert view.status is ProfileStatus.COMPLETED
    assert cache.stats.by_status == {"completed": 1}


def _with_policies(field: str, policies: Any) -> dict[str, Any]:
    doc = to_document(completed())
    doc["spec"]["containers"][0][field] = policies
    return doc


@pytest.mark.parametrize("field", ["rulePolicies", "policyByRuleId"])
def test_kubescape_rule_policies_are_imported_and_written_back(field: str) -> None:
    """Both spellings Kubescape uses load; they are written back as `rulePolicies`, validate
    against the CRD, and survive a merge with a learned profile (learning never drops them)."""
    policies = {
        "r1011": {"processAllowed": ["installer", "ldconfig"]},
        "R0002": {"containerAllowed": True},
        "R1030": {},
    }
    profile = from_document(_with_policies(field, policies), source="ks.yaml")
    assert profile.entries.rule_policies == {
        "R1011": frozenset({"installer", "ldconfig"}),
        "R0002": frozenset({"*"}),
        "R1030": frozenset(),
    }
    doc = to_document(profile)
    jsonschema.validate(doc, schema())
    assert doc["spec"]["containers"][0]["rulePolicies"] == {
        "R0002": {"processAllowed": [], "containerAllowed": True},
        "R1011": {"processAllowed": ["installer", "ldconfig"], "containerAllowed": False},
        "R1030": {"processAllowed": [], "containerAllowed": False},
    }
    assert from_document(doc, source="again") == profile
    learned = merged(completed(), profile)
    assert learned.entries.rule_policies == profile.entries.rule_policies
    view = ProfileCache()
    view.upsert(profile)
    compiled = view.get(profile.key)
    assert compiled is not None
    assert compiled.rule_policy("R1011") == frozenset({"installer", "ldconfig"})
    assert compiled.rule_policy("R0001") is None


@pytest.mark.parametrize(
    ("policies", "field", "message"),
    [
        ([], "rulePolicies", "expected a mapping"),
        ({"R1011": {"processes": ["x"]}}, "rulePolicies.R1011.processes", "unknown field"),
        (
            {"R1011": {"processAllowed": "x"}},
            "rulePolicies.R1011.processAllowed",
            "expected a list",
        ),
        ({"R1011": {"processAllowed": [""]}}, "processAllowed[0]", "must not be empty"),
        ({"R1011": {"containerAllowed": "yes"}}, "containerAllowed", "expected a boolean"),
        ({" ": {}}, "rulePolicies. ", "non-empty"),
    ],
)
def test_bad_rule_policies_name_the_field(policies: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidProfileError) as err:
        from_document(_with_policies("rulePolicies", policies), source="ks.yaml")
    assert field in str(err.value)
    assert message in str(err.value)


def test_paths_are_read_in_normal_form() -> None:
    doc = to_document(completed())
    container = doc["spec"]["containers"][0]
    container["opens"] = [{"path": "/etc//./app.conf", "flags": ["O_RDONLY"]}]
    container["execs"] = [{"path": "/usr/bin/../bin/app", "args": []}, {"path": "sh", "args": []}]
    entries = from_document(doc, source="x").entries
    assert set(entries.opens) == {"/etc/app.conf"}
    assert set(entries.execs) == {"/usr/bin/app", "sh"}
