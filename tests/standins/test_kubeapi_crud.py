"""CRUD, errors and concurrency through the official client, as a cluster would answer them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.standins.fixtures import KubeApi

DATA = Path(__file__).parent / "data"


def _pod(name: str, **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx"}]},
    }


def test_pod_crud_and_resource_versions_increase(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    created = core.create_namespaced_pod("default", _pod("web"))
    rv1 = int(created.metadata.resource_version)
    assert created.metadata.uid
    assert created.metadata.namespace == "default"
    created.metadata.labels = {"tier": "front"}
    replaced = core.replace_namespaced_pod("web", "default", created)
    assert int(replaced.metadata.resource_version) > rv1
    assert core.read_namespaced_pod("web", "default").metadata.labels == {"tier": "front"}
    deleted = core.delete_namespaced_pod("web", "default")
    assert deleted.metadata.name == "web"
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod("web", "default")
    assert err.value.status == 404
    body = json.loads(str(err.value.body))
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert body["message"] == 'pods "web" not found'


def test_create_existing_is_already_exists(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespaced_pod("default", _pod("web"))
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod("default", _pod("web"))
    assert err.value.status == 409
    assert json.loads(str(err.value.body))["reason"] == "AlreadyExists"


def test_create_in_missing_namespace_is_not_found(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod("nowhere", _pod("web"))
    assert err.value.status == 404
    assert json.loads(str(err.value.body))["message"] == 'namespaces "nowhere" not found'


def test_stale_resource_version_conflicts(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    first = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    first.data = {"a": "2"}
    core.replace_namespaced_config_map("cm", "default", first)
    first.data = {"a": "3"}
    with pytest.raises(client.ApiException) as err:
        core.replace_namespaced_config_map("cm", "default", first)
    assert err.value.status == 409
    assert json.loads(str(err.value.body))["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cm", "default").data == {"a": "2"}


def test_injected_conflicts_then_success(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {}})
    kube_api.inject_conflicts("configmaps", 2)
    statuses = []
    for attempt in range(3):
        try:
            core.patch_namespaced_config_map("cm", "default", {"data": {"n": str(attempt)}})
            statuses.append(200)
        except client.ApiException as exc:
            statuses.append(exc.status)
    assert statuses == [409, 409, 200]
    assert core.read_namespaced_config_map("cm", "default").data == {"n": "2"}


def test_noop_update_keeps_resource_version(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {}})
    again = core.replace_namespaced_config_map("cm", "default", cm)
    assert again.metadata.resource_version == cm.metadata.resource_version


def test_generate_name(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    body = {"metadata": {"generateName": "gw-"}, "data": {}}
    a = core.create_namespaced_config_map("default", body)
    b = core.create_namespaced_config_map("default", body)
    assert a.metadata.name.startswith("gw-")
    assert len(a.metadata.name) == len("gw-") + 5
    assert a.metadata.name != b.metadata.name


def test_invalid_name_is_422(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert err.value.status == 422
    causes = json.loads(str(err.value.body))["details"]["causes"]
    assert [c["field"] for c in causes] == ["metadata.name"]


def test_strategic_merge_merges_containers_by_name(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespaced_pod("default", _pod("web"))
    patch = {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}
    out = core.patch_namespaced_pod("web", "default", patch)
    assert [c.name for c in out.spec.containers] == ["app", "sidecar"]


def test_json_patch_on_builtin(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    ops = [{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}]
    assert core.patch_namespaced_config_map("cm", "default", ops).data == {"b": "2"}
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map(
            "cm", "default", [{"op": "test", "path": "/data/b", "value": "9"}]
        )
    assert err.value.status == 422


def test_delete_returns_status_for_configmaps_and_finalizers_delay(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("cm", "default")
    held = core.read_namespaced_config_map("cm", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("cm", "default")
    assert err.value.status == 404
    core.create_namespaced_config_map("default", {"metadata": {"name": "plain"}})
    status = core.delete_namespaced_config_map("plain", "default")
    assert status["status"] == "Success"


def test_request_too_large(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    big = {"metadata": {"name": "big"}, "data": {"x": "a" * (1600 * 1024)}}
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", big)
    assert err.value.status == 413
    assert "too large" in json.loads(str(err.value.body))["message"]
    huge = {"metadata": {"name": "huge"}, "data": {"x": "a" * (4 * 1024 * 1024)}}
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", huge)
    assert err.value.status == 413
    assert json.loads(str(err.value.body))["message"].startswith("Request entity too large")


def test_events_and_workloads(kube_api: KubeApi) -> None:
    api = kube_api.api_client()
    core: Any = client.CoreV1Api(api)
    apps: Any = client.AppsV1Api(api)
    batch: Any = client.BatchV1Api(api)
    event = core.create_namespaced_event(
        "default",
        {
            "metadata": {"generateName": "gw."},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "InvalidBinding",
            "message": "rule R9999 unknown",
            "type": "Warning",
        },
    )
    assert event.metadata.name.startswith("gw.")
    listed = core.list_namespaced_event("default", field_selector="reason=InvalidBinding")
    assert [e.message for e in listed.items] == ["rule R9999 unknown"]
    kube_api.add(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-5d4f",
                "namespace": "shop",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": "u1",
                        "controller": True,
                    }
                ],
            },
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
        }
    )
    rs = apps.read_namespaced_replica_set("web-5d4f", "shop")
    assert rs.metadata.owner_references[0].name == "web"
    kube_api.add(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "backup-123", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}},
        }
    )
    assert batch.read_namespaced_job("backup-123", "shop").metadata.name == "backup-123"


def test_namespace_delete_removes_contents(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespace({"metadata": {"name": "tmp"}})
    core.create_namespaced_config_map("tmp", {"metadata": {"name": "cm"}})
    core.delete_namespace("tmp")
    assert kube_api.get("configmaps", "cm", "tmp") is None
    assert kube_api.get("namespaces", "tmp") is None


def test_seeded_cluster_has_kubernetes_service(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == "10.96.0.1"
    ep = core.read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for a in ep.subsets[0].addresses] == ["172.18.0.2"]
