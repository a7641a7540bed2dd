"""SelfSubjectAccessReview, RBAC enforcement, server down/unavailable, latency, process mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client

from profiler.documents import GROUP, PLURAL
from tests.standins.fixtures import REPO_ROOT, KubeApi


def _review(
    api: Any, verb: str, resource: str, namespace: str = "", group: str = "", subresource: str = ""
) -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "namespace": namespace,
                "subresource": subresource,
            }
        },
    }
    return bool(api.create_self_subject_access_review(body).status.allowed)


def test_access_reviews_follow_the_allow_list(kube_api: KubeApi) -> None:
    api: Any = client.AuthorizationV1Api(kube_api.api_client())
    assert _review(api, "list", "pods")  # no list configured: everything allowed
    kube_api.allow("list", "", "pods")
    kube_api.allow("create", "", "pods/portforward", "gadget")
    kube_api.allow("*", GROUP, PLURAL)
    assert _review(api, "list", "pods", "any")
    assert not _review(api, "watch", "pods")
    assert _review(api, "create", "pods", "gadget", subresource="portforward")
    assert not _review(api, "create", "pods", "default", subresource="portforward")
    assert _review(api, "patch", PLURAL, "shop", group=GROUP)
    kube_api.deny_all()
    assert not _review(api, "list", "pods")


def test_enforced_rbac_answers_403(kube_api: KubeApi) -> None:
    kube_api.allow("list", "", "pods")
    kube_api.set_enforce_rbac(True)
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.list_namespaced_pod("default")
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map("default")
    assert err.value.status == 403
    assert json.loads(str(err.value.body))["reason"] == "Forbidden"


def test_down_refuses_then_recovers(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.list_namespace()  # opens a keep-alive connection that going down must drop
    kube_api.set_down(True)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_namespace()
    kube_api.set_down(False)
    assert core.list_namespace().items


def test_unavailable_is_503(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    kube_api.set_down(True, mode="unavailable")
    with pytest.raises(client.ApiException) as err:
        core.list_namespace()
    assert err.value.status == 503
    kube_api.set_down(False)
    assert core.list_namespace().items


def test_latency_trips_a_short_client_timeout(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    kube_api.set_latency(2.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.list_namespace(_request_timeout=0.05)
    kube_api.set_latency(0.0)
    assert core.list_namespace().items


def test_request_log_records_writes(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    log = kube_api.request_log()
    assert ("POST", "/api/v1/namespaces/default/configmaps", 201) in [
        (r.method, r.path, r.status) for r in log
    ]


def test_process_mode(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded, namespace: shop}\n"
        "data: {a: '1'}\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.standins.kubeapi",
            "--port",
            "0",
            "--crds",
            str(Path(__file__).parent / "data"),
            "--seed",
            str(seed),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("KUBEAPI_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        api = client.ApiClient(client.Configuration(host=url))
        core: Any = client.CoreV1Api(api)
        assert core.read_namespaced_config_map("seeded", "shop").data == {"a": "1"}
        custom: Any = client.CustomObjectsApi(api)
        assert (
            custom.list_namespaced_custom_object("example.com", "v1", "shop", "widgets")["items"]
            == []
        )
        http = urllib3.PoolManager()
        resp = http.request("POST", f"{url}/_standin/unavailable", json={"down": True})
        assert resp.status == 200
        with pytest.raises(client.ApiException) as err:
            core.list_namespace()
        assert err.value.status == 503
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
