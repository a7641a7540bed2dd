"""Reading `kubescape.io/v1` profiles: ours from before issue 13 as they are, kapprofiler's and
kubecop's converted one profile per container, with every loss and every refusal located."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from profiler.dirstore import DirectoryStore
from profiler.documents import (
    API_VERSION,
    LEGACY_API_VERSION,
    dump_yaml,
    from_document,
    seal,
    to_document,
)
from profiler.errors import InvalidProfileError
from profiler.exporting import read_converted
from profiler.identity import WorkloadKey
from profiler.kubescape import LABEL_NAMESPACE, convert, needs_conversion
from profiler.profiles import ManagedBy
from profiler.status import ProfileStatus
from tests.profiler.test_cli import completed


def theirs(name: str = "deployment-web", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": LEGACY_API_VERSION,
        "kind": "ApplicationProfile",
        "metadata": {"name": name, "namespace": "shop", **metadata},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "execs": [{"path": "/bin/app", "args": ["app"], "envs": ["A=1"]}],
                    "opens": [{"path": "/etc//app.conf", "flags": ["O_RDONLY"]}],
                    "syscalls": ["read"],
                },
                {"name": "sidecar", "syscalls": ["write"], "capabilities": []},
            ]
        },
    }


def test_each_container_becomes_a_profile_with_the_workload_from_the_name() -> None:
    doc = theirs(labels={"kapprofiler.kubescape.io/final": "true"})
    result = convert(doc, source="f.yaml")
    assert [p.key for p in result.profiles] == [
        WorkloadKey("shop", "Deployment", "web", "app"),
        WorkloadKey("shop", "Deployment", "web", "sidecar"),
    ]
    app = result.profiles[0]
    assert app.meta.status is ProfileStatus.COMPLETED
    assert app.meta.managed_by is ManagedBy.LEARNED
    assert set(app.entries.opens) == {"/etc/app.conf"}
    assert result.notes == [
        "f.yaml: spec.containers[0].execs[0].envs: not kept (gadgetwatch profiles do not "
        "record environment variables)"
    ]
    # What comes out is written in our group.
    assert to_document(app)["apiVersion"] == API_VERSION


def test_unfinished_partial_and_user_managed_profiles_keep_their_state() -> None:
    learning = convert(theirs(labels={"kapprofiler.kubescape.io/partial": "true"}), source="x")
    assert learning.profiles[0].meta.status is ProfileStatus.LEARNING
    assert learning.profiles[0].meta.partial is True
    user = convert(theirs("ug-statefulset-db"), source="x").profiles[0]
    assert (user.key.owner_kind, user.key.owner_name) == ("StatefulSet", "db")
    assert user.meta.managed_by is ManagedBy.USER


def test_centrally_stored_profiles_take_the_namespace_from_the_label() -> None:
    doc = theirs("deployment-web-shop", labels={LABEL_NAMESPACE: "shop"})
    doc["metadata"]["namespace"] = "kapprofiler"
    keys = [p.key for p in convert(doc, source="x").profiles]
    assert keys[0] == WorkloadKey("shop", "Deployment", "web", "app")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d["metadata"].update(name="web"), "metadata.name", "cannot tell the workload"),
        (
            lambda d: d["metadata"].update(name="service-web"),
            "metadata.name",
            "kind one of cronjob, daemonset",
        ),
        (lambda d: d["metadata"].pop("namespace"), "metadata.namespace", "is required"),
        (lambda d: d["spec"].update(containers=[]), "spec.containers", "non-empty"),
        (
            lambda d: d["spec"]["containers"][1].update(syscalls="write"),
            "spec.containers[1].syscalls",
            "expected a list",
        ),
        (
            lambda d: d["spec"]["containers"][1].update(imageID="sha256:x"),
            "spec.containers[1].imageID",
            "unknown field",
        ),
    ],
)
def test_what_cannot_be_converted_is_refused_with_its_field(
    change: Any, field: str, message: str
) -> None:
    doc = theirs()
    change(doc)
    with pytest.raises(InvalidProfileError) as err:
        convert(doc, source="f.yaml")
    assert err.value.obj == "f.yaml"
    assert err.value.field == field
    assert message in err.value.message


def test_old_network_shape_and_init_containers_are_noted_not_dropped_silently() -> None:
    doc = theirs()
    doc["spec"]["containers"][0]["networkActivity"] = {
        "incoming": {"tcpconnections": [{"rawconnection": {"destport": 80}}]},
        "outgoing": [{"port": 53, "protocol": "udp", "dstEndpoint": "10.0.0.10"}],
    }
    doc["spec"]["initContainers"] = [{"name": "migrate"}]
    result = convert(doc, source="x")
    assert result.notes[0].startswith("x: spec.initContainers[0] ('migrate'): not converted")
    assert result.notes[2].startswith("x: spec.containers[0].networkActivity.incoming: not kept")
    app = result.profiles[0]
    assert app.entries.ingress == set()
    assert {(a, p, proto) for a, p, proto, _ in app.entries.egress} == {("10.0.0.10", 53, "UDP")}


def test_our_own_documents_in_the_old_group_are_read_as_they_are() -> None:
    doc = to_document(completed())
    doc["apiVersion"] = LEGACY_API_VERSION
    assert not needs_conversion(doc)
    assert from_document(doc, source="x") == completed()
    assert convert(doc, source="x").profiles == [completed()]


def test_from_document_points_their_documents_at_the_import() -> None:
    with pytest.raises(InvalidProfileError, match="gadgetwatch profile import") as err:
        from_document(theirs(), source="x")
    assert err.value.field == "spec.workload"


def test_api_lists_and_kubectl_lists_are_both_imported() -> None:
    for kind in ("List", "ApplicationProfileList"):
        listing = {"apiVersion": "v1", "kind": kind, "items": [theirs(), theirs("pod-web-1")]}
        result = read_converted(dump_yaml(listing), source="l.yaml")
        assert [p.key.owner_kind for p in result.profiles] == ["Deployment"] * 2 + ["Pod"] * 2
        assert result.notes[0].startswith("l.yaml items[0]: ")


async def test_directory_store_reads_old_files_and_single_container_conversions(
    tmp_path: Path,
) -> None:
    store = DirectoryStore(tmp_path)
    ours = completed()
    old = seal(to_document(ours))
    old["apiVersion"] = LEGACY_API_VERSION
    old["metadata"]["resourceVersion"] = "3"
    path = store.path_for(ours.key)
    path.parent.mkdir(parents=True)
    path.write_text(dump_yaml(old))
    got = await store.get(ours.key)
    assert got is not None
    assert got.entries == ours.entries
    # Written back in our group on the next write.
    await store.update(got)
    assert path.read_text().startswith(f"apiVersion: {API_VERSION}\n")

    single = copy.deepcopy(theirs())
    single["spec"]["containers"].pop()
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "deployment-web.yaml").write_text(dump_yaml(single))
    double = tmp_path / "shop" / "deployment-api.yaml"
    double.write_text(dump_yaml(theirs("deployment-api")))
    profiles, errors = await store.list("shop")
    assert WorkloadKey("shop", "Deployment", "web", "app") in {p.key for p in profiles}
    assert [(e.obj, e.field) for e in errors] == [(str(double), "spec.containers")]
