"""The scenario's cluster in the stand-in API server: workloads, pods, a binding, an exception.

The objects are what a real cluster would hold for the capture's pods: Deployments owning
ReplicaSets (controller references with uids) owning the pods, a StatefulSet owning `db-0`,
every pod scheduled on `node-a`. The agent's pod cache lists them by `spec.nodeName` and its
owner resolution reads the ReplicaSets to reach the Deployments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.e2e.scenario import (
    API_POD,
    APP,
    DB,
    DB_POD,
    NAMESPACE,
    NGINX,
    NODE,
    PROXY,
    WEB_POD,
    WORKER,
)
from tests.standins.fixtures import KubeApi

REPO = Path(__file__).resolve().parents[2]
BINDING_FILE = REPO / "deploy" / "bindings" / "all-rules-all-pods.yaml"

#: The RuntimeAlertException the Kubernetes test creates: the api worker may resolve
#: updates.example.org (so its R0005 is silenced), nothing else.
EXCEPTION: dict[str, Any] = {
    "apiVersion": "gadgetwatch.io/v1",
    "kind": "RuntimeAlertException",
    "metadata": {"name": "api-worker-updates", "namespace": NAMESPACE},
    "spec": {
        "reason": "the worker checks for updates",
        "workloads": [{"kind": "Deployment", "name": "api", "containers": ["worker"]}],
        "allow": {"domains": ["updates.example.org"]},
    },
}


def _labels(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split(","))


def _ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pod(name: str, owner: dict[str, Any], containers: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": _labels(containers[0].labels),
            "ownerReferences": [_ref(owner)],
        },
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": c.name, "image": c.image} for c in containers],
        },
        "status": {"phase": "Running", "podIP": containers[0].ip},
    }


def _workload(kind: str, name: str, labels: str) -> dict[str, Any]:
    selector = {"matchLabels": {"app": _labels(labels)["app"]}}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"selector": selector, "template": {"metadata": {"labels": _labels(labels)}}},
    }


def seed(api: KubeApi) -> None:
    """Create the namespace, the workloads and the node's pods."""
    api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for deploy, rs_name, pod, containers in (
        ("web", "web-5d4f8c7b9", WEB_POD, [APP, NGINX]),
        ("api", "api-7c9d6b5f4", API_POD, [WORKER, PROXY]),
    ):
        d = api.add(_workload("Deployment", deploy, containers[0].labels))
        rs = _workload("ReplicaSet", rs_name, containers[0].labels)
        rs["metadata"]["ownerReferences"] = [_ref(d)]
        api.add(_pod(pod, api.add(rs), containers))
    sts = api.add(_workload("StatefulSet", "db", DB.labels))
    api.add(_pod(DB_POD, sts, [DB]))


def binding() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(BINDING_FILE.read_text())
    return doc
