"""Lists with selectors and pagination; watches from a resourceVersion, 410 Gone, bookmarks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch

from tests.standins.fixtures import KubeApi

#: The client's Watch is untyped; held as Any so strict mypy accepts the calls.
Watch: Any = watch.Watch


def _pod(name: str, node: str = "node-a", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]},
    }


def _names(items: Any) -> list[str]:
    return sorted(i.metadata.name for i in items)


def test_label_selectors(kube_api: KubeApi) -> None:
    kube_api.add(_pod("a", app="web", tier="front"))
    kube_api.add(_pod("b", app="db"))
    kube_api.add(_pod("c", app="cache", tier="back"))
    core: Any = client.CoreV1Api(kube_api.api_client())

    def sel(selector: str) -> list[str]:
        return _names(core.list_namespaced_pod("default", label_selector=selector).items)

    assert sel("app=web") == ["a"]
    assert sel("app==web") == ["a"]
    assert sel("app!=web") == ["b", "c"]
    assert sel("app in (web, db)") == ["a", "b"]
    assert sel("app notin (web,db)") == ["c"]
    assert sel("tier") == ["a", "c"]
    assert sel("!tier") == ["b"]
    assert sel("tier,app=cache") == ["c"]


def test_field_selectors(kube_api: KubeApi) -> None:
    kube_api.add(_pod("a", node="node-a"))
    kube_api.add(_pod("b", node="node-b"))
    core: Any = client.CoreV1Api(kube_api.api_client())
    on_a = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-a")
    assert _names(on_a.items) == ["a"]
    by_name = core.list_namespaced_pod("default", field_selector="metadata.name!=a")
    assert _names(by_name.items) == ["b"]
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_pod("default", field_selector="spec.hostname=x")
    assert err.value.status == 400
    assert "field label not supported" in json.loads(str(err.value.body))["message"]


def test_pagination(kube_api: KubeApi) -> None:
    for i in range(5):
        kube_api.add(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm{i}", "namespace": "default"},
            }
        )
    core: Any = client.CoreV1Api(kube_api.api_client())
    seen: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map("default", limit=2, _continue=token)
        seen.extend(i.metadata.name for i in page.items)
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"cm{i}" for i in range(5)]


def test_watch_from_resource_version_sees_only_later_changes(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    kube_api.add(_pod("before"))
    listed = core.list_namespaced_pod("default")
    rv = listed.metadata.resource_version
    kube_api.add(_pod("after", app="web"))
    kube_api.add(_pod("after", app="api"))
    kube_api.delete("pods", "after", "default")
    w = Watch()
    events = [
        (e["type"], e["object"].metadata.name, e["object"].metadata.labels)
        for e in w.stream(
            core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1
        )
    ]
    assert events == [
        ("ADDED", "after", {"app": "web"}),
        ("MODIFIED", "after", {"app": "api"}),
        ("DELETED", "after", {"app": "api"}),
    ]


def test_watch_without_resource_version_starts_with_current_state(kube_api: KubeApi) -> None:
    kube_api.add(_pod("a", node="node-a"))
    kube_api.add(_pod("b", node="node-b"))
    core: Any = client.CoreV1Api(kube_api.api_client())
    w = Watch()
    events = [
        (e["type"], e["object"].metadata.name)
        for e in w.stream(
            core.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=node-a",
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "a")]


def test_selector_transitions_are_added_and_deleted(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    start = core.list_namespaced_pod("default").metadata.resource_version
    kube_api.add(_pod("p", app="web"))
    kube_api.add(_pod("p", app="db"))
    kube_api.add(_pod("p", app="web"))
    w = Watch()
    events = [
        e["type"]
        for e in w.stream(
            core.list_namespaced_pod,
            "default",
            label_selector="app=web",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert events == ["ADDED", "DELETED", "ADDED"]


def test_live_events_reach_an_open_watch(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    rv = core.list_namespaced_pod("default").metadata.resource_version
    w = Watch()
    stream = w.stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=30)
    kube_api.add(_pod("live"))
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "live")
    kube_api.delete("pods", "live", "default")
    second = next(stream)
    assert second["type"] == "DELETED"
    w.stop()
    stream.close()


def test_too_old_resource_version_is_410(kube_api_factory: Callable[..., KubeApi]) -> None:
    server = kube_api_factory(history_size=3)
    core: Any = client.CoreV1Api(server.api_client())
    old = core.list_namespaced_pod("default").metadata.resource_version
    for i in range(5):
        server.add(_pod(f"p{i}"))
    w = Watch()
    with pytest.raises(client.ApiException) as err:
        list(w.stream(core.list_namespaced_pod, "default", resource_version=old, timeout_seconds=1))
    assert err.value.status == 410
    # The raw stream carries the ERROR event with a Status, as the real server sends it.
    raw = core.list_namespaced_pod(
        "default", watch=True, resource_version=old, timeout_seconds=1, _preload_content=False
    )
    line = json.loads(raw.data.decode().splitlines()[0])
    assert line["type"] == "ERROR"
    assert line["object"]["code"] == 410
    assert line["object"]["reason"] == "Expired"
    assert line["object"]["message"].startswith("too old resource version")


def test_bookmark_at_timeout(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    raw = core.list_namespaced_pod(
        "default",
        watch=True,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    lines = [json.loads(x) for x in raw.data.decode().splitlines() if x]
    assert [x["type"] for x in lines] == ["BOOKMARK"]
    assert lines[0]["object"]["metadata"]["resourceVersion"]


def test_custom_resource_watch_raw_objects(kube_api_factory: Callable[..., KubeApi]) -> None:
    from tests.standins.test_kubeapi_custom import DATA

    server = kube_api_factory(crds_dir=DATA)
    api: Any = client.CustomObjectsApi(server.api_client())
    w = Watch()
    server.add(
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default"},
            "spec": {"size": 1},
        }
    )
    events = list(
        w.stream(
            api.list_namespaced_custom_object,
            "example.com",
            "v1",
            "default",
            "widgets",
            timeout_seconds=1,
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w")]
