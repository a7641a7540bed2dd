"""gadgetwatch.k8s against the stand-in API server, through the official client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gadgetwatch.k8s import (
    ApiServerAddresses,
    KubeClient,
    KubernetesError,
    PermissionCheck,
    PodCache,
    agent_permissions,
    api_server_addresses,
    check_crds,
    check_permissions,
    load_configuration,
)
from profiler.documents import CRD_NAME, GROUP, PLURAL
from profiler.identity import PodMetadata
from tests.standins.fixtures import KubeApi, kube_api, kube_api_factory

__all__ = ["kube_api", "kube_api_factory"]  # fixtures used here

STANDIN_CRDS = Path(__file__).parents[1] / "standins" / "data"
#: Generous bound for conditions that normally hold within milliseconds.
WAIT_S = 15


def _pod(
    name: str,
    *,
    node: str = "node-a",
    namespace: str = "shop",
    owner: tuple[str, str] | None = None,
    **extra_meta: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, **extra_meta}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "nodeName": node,
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "kube-api-access-x7k2p", "projected": {"sources": []}},
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "nginx",
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {
                            "name": "kube-api-access-x7k2p",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        },
                    ],
                }
            ],
            "initContainers": [
                {
                    "name": "init",
                    "image": "busybox",
                    "volumeMounts": [{"name": "data", "mountPath": "/seed"}],
                }
            ],
        },
    }


def _replicaset(name: str, deployment: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if deployment:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment,
                "uid": "d1",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {"selector": {"matchLabels": {"app": "x"}}},
    }


@pytest.fixture
async def kube(kube_api: KubeApi) -> AsyncIterator[KubeClient]:
    client = KubeClient.from_settings(api_server=kube_api.url)
    yield client
    await client.aclose()


@pytest.fixture
async def cache(kube: KubeClient) -> AsyncIterator[PodCache]:
    pods = PodCache(kube, node_name="node-a", retry_delay=0.05, max_retry_delay=0.2)
    task = asyncio.create_task(pods.run(), name="pod-cache")
    yield pods
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pods.aclose()


async def _until(cache: PodCache, predicate: Callable[[], bool]) -> None:
    await asyncio.wait_for(cache.wait_until(predicate), WAIT_S)


async def test_cache_holds_this_nodes_pods_with_metadata(
    kube_api: KubeApi, cache: PodCache
) -> None:
    kube_api.add(_pod("web-1", labels={"app": "web"}, annotations={"a": "b"}))
    kube_api.add(_pod("elsewhere", node="node-b"))
    await _until(cache, lambda: cache.pod("shop", "web-1") is not None)
    metadata: PodMetadata = cache
    assert metadata.labels("shop", "web-1") == {"app": "web"}
    assert metadata.annotations("shop", "web-1") == {"a": "b"}
    assert list(metadata.volume_mounts("shop", "web-1", "app")) == ["/data"]
    assert list(metadata.volume_mounts("shop", "web-1", "init")) == ["/seed"]
    assert list(metadata.volume_mounts("shop", "web-1", "nope")) == []
    assert cache.pod("shop", "elsewhere") is None
    assert metadata.labels("shop", "unknown") == {}


async def test_cache_follows_changes_and_deletions(kube_api: KubeApi, cache: PodCache) -> None:
    await asyncio.wait_for(cache.ready.wait(), WAIT_S)
    kube_api.add(_pod("web-1", labels={"v": "1"}))
    await _until(cache, lambda: cache.labels("shop", "web-1") == {"v": "1"})
    kube_api.add(_pod("web-1", labels={"v": "2"}))
    await _until(cache, lambda: cache.labels("shop", "web-1") == {"v": "2"})
    kube_api.delete("pods", "web-1", "shop")
    await _until(cache, lambda: cache.pod("shop", "web-1") is None)
    assert cache.stats.lists["start"] == 1
    assert cache.stats.events["DELETED"] == 1


async def test_owner_resolution_exact(kube_api: KubeApi, cache: PodCache) -> None:
    kube_api.add(_replicaset("web-5d4f8", "web"))
    kube_api.add(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "nightly-x",
                "namespace": "shop",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "nightly",
                        "uid": "c1",
                        "controller": True,
                    }
                ],
            },
            "spec": {"template": {"spec": {"containers": [{"name": "j", "image": "x"}]}}},
        }
    )
    kube_api.add(_pod("web-5d4f8-abcde", owner=("ReplicaSet", "web-5d4f8")))
    kube_api.add(_pod("nightly-x-1", owner=("Job", "nightly-x")))
    await _until(cache, lambda: cache.stats.owners["lookup"] == 2)
    assert cache.top_owner("shop", "ReplicaSet", "web-5d4f8") == ("Deployment", "web")
    assert cache.top_owner("shop", "Job", "nightly-x") == ("CronJob", "nightly")
    assert cache.top_owner("shop", "StatefulSet", "db") == ("StatefulSet", "db")
    assert cache.top_owner("shop", "Pod", "bare") == ("Pod", "bare")


async def test_bare_replicaset_is_its_own_top_owner(kube_api: KubeApi, cache: PodCache) -> None:
    kube_api.add(_replicaset("solo", None))
    kube_api.add(_pod("solo-abcde", owner=("ReplicaSet", "solo")))
    await _until(cache, lambda: cache.stats.owners["lookup"] == 1)
    assert cache.top_owner("shop", "ReplicaSet", "solo") == ("ReplicaSet", "solo")


async def test_owner_heuristic_when_lookup_fails(kube_api: KubeApi, cache: PodCache) -> None:
    # No ReplicaSet object: the lookup gets 404 and the pod-template-hash heuristic stands.
    kube_api.add(
        _pod(
            "api-7c9d6-xyz12",
            owner=("ReplicaSet", "api-7c9d6"),
            labels={"pod-template-hash": "7c9d6"},
        )
    )
    await _until(cache, lambda: cache.stats.errors[("get ReplicaSet", "NotFound")] == 1)
    assert cache.top_owner("shop", "ReplicaSet", "api-7c9d6") == ("Deployment", "api")
    # A CronJob's run name without a Job object.
    assert cache.top_owner("shop", "Job", "backup-28374650") == ("CronJob", "backup")
    assert cache.top_owner("shop", "ReplicaSet", "unknown-rs") == ("ReplicaSet", "unknown-rs")


async def test_heuristic_answer_is_immediate_then_exact(kube_api: KubeApi, cache: PodCache) -> None:
    await asyncio.wait_for(cache.ready.wait(), WAIT_S)
    kube_api.add(_replicaset("front-abc12", "storefront"))
    # Asked before any pod: the heuristic cannot know better, the lookup corrects it.
    assert cache.top_owner("shop", "ReplicaSet", "front-abc12") == ("ReplicaSet", "front-abc12")
    await _until(
        cache,
        lambda: (
            cache.top_owner("shop", "ReplicaSet", "front-abc12") == ("Deployment", "storefront")
        ),
    )


async def test_cache_reconnects_after_outage(kube_api: KubeApi, cache: PodCache) -> None:
    await asyncio.wait_for(cache.ready.wait(), WAIT_S)
    await asyncio.to_thread(kube_api.set_down, True)
    kube_api.add(_pod("during-outage"))
    await _until(cache, lambda: sum(cache.stats.errors.values()) >= 1)
    await asyncio.to_thread(kube_api.set_down, False)
    await _until(cache, lambda: cache.pod("shop", "during-outage") is not None)


async def test_cache_relists_after_410(kube_api_factory: Callable[..., KubeApi]) -> None:
    server = kube_api_factory(history_size=2)
    kube = KubeClient.from_settings(api_server=server.url)
    cache = PodCache(kube, node_name="node-a", retry_delay=0.05, max_retry_delay=0.2)
    task = asyncio.create_task(cache.run())
    try:
        await asyncio.wait_for(cache.ready.wait(), WAIT_S)
        await asyncio.to_thread(server.set_down, True)
        for i in range(5):
            server.add(_pod(f"p{i}"))
        await _until(cache, lambda: sum(cache.stats.errors.values()) >= 1)
        await asyncio.to_thread(server.set_down, False)
        await _until(cache, lambda: all(cache.pod("shop", f"p{i}") for i in range(5)))
        assert cache.stats.lists["gone"] + cache.stats.lists["error"] >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await cache.aclose()
        await kube.aclose()


async def test_api_server_addresses(kube: KubeClient) -> None:
    addresses = await api_server_addresses(kube)
    assert addresses == ApiServerAddresses(
        endpoints=frozenset({("10.96.0.1", 443), ("172.18.0.2", 6443)})
    )
    assert addresses.ips == {"10.96.0.1", "172.18.0.2"}


async def test_check_permissions(kube_api: KubeApi, kube: KubeClient) -> None:
    kube_api.allow("*", "", "pods")
    kube_api.allow("create", "", "pods/portforward", "gadget")
    checks = [
        PermissionCheck("watch", "pods"),
        PermissionCheck("create", "pods", namespace="gadget", subresource="portforward"),
        PermissionCheck("patch", PLURAL, GROUP, "shop"),
    ]
    results = await check_permissions(kube, checks)
    assert [(r.check, r.allowed) for r in results] == [
        (checks[0], True),
        (checks[1], True),
        (checks[2], False),
    ]
    assert checks[2].display() == f"patch {CRD_NAME} in shop"


async def test_agent_permissions_all_granted_by_allow_all(kube: KubeClient) -> None:
    needed = agent_permissions(gadget_namespace="gadget")
    assert any(c.subresource == "portforward" for c in needed)
    results = await check_permissions(kube, needed)
    assert all(r.allowed for r in results)


async def test_check_crds(kube_api_factory: Callable[..., KubeApi]) -> None:
    server = kube_api_factory(crds_dir=STANDIN_CRDS)
    kube = KubeClient.from_settings(api_server=server.url)
    try:
        results = await check_crds(kube, ["widgets.example.com", "nothere.example.com"])
    finally:
        await kube.aclose()
    assert [(r.name, r.present, r.established, r.versions) for r in results] == [
        ("widgets.example.com", True, True, ("v1",)),
        ("nothere.example.com", False, False, ()),
    ]
    assert results[1].detail == "not installed"


async def test_errors_are_translated(kube_api: KubeApi, kube: KubeClient) -> None:
    with pytest.raises(KubernetesError) as err:
        await kube.call("get pod", kube.core.read_namespaced_pod, "nope", "shop")
    assert (err.value.status, err.value.reason) == (404, "NotFound")
    await asyncio.to_thread(kube_api.set_down, True)
    try:
        with pytest.raises(KubernetesError) as err:
            await kube.call("list pods", kube.core.list_namespaced_pod, "shop", _request_timeout=1)
        assert (err.value.status, err.value.reason) == (0, "Unreachable")
    finally:
        await asyncio.to_thread(kube_api.set_down, False)


def test_load_configuration_from_kubeconfig(kube_api: KubeApi, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "standin",
                "clusters": [{"name": "standin", "cluster": {"server": kube_api.url}}],
                "users": [{"name": "me", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "me"}}],
            }
        )
    )
    configuration = load_configuration(kubeconfig=str(path))
    assert configuration.host == kube_api.url
    overridden = load_configuration(kubeconfig=str(path), api_server="http://127.0.0.1:1")
    assert overridden.host == "http://127.0.0.1:1"


def test_load_configuration_needs_something(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubernetesError) as err:
        load_configuration(kubeconfig=str(tmp_path / "missing"))
    assert err.value.reason == "NoConfiguration"
    assert load_configuration(api_server="http://127.0.0.1:9").host == "http://127.0.0.1:9"
