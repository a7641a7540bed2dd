"""The agent in a (stand-in) cluster: its settings, the rules it is given, what it wrote.

Shared by the Kubernetes end-to-end tests (`test_kubernetes`, `test_coexistence`): the agent
runs as a child process against the stand-in API server and a replay server on a unix socket.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client

from detector.k8s_source import BINDINGS, EXCEPTIONS
from profiler import documents
from tests.e2e.cluster import EXCEPTION, binding
from tests.e2e.harness import Agent
from tests.e2e.scenario import CAPTURE, LEARNING_PERIOD, NAMESPACE, NODE
from tests.exporters.receivers import HttpReceiver
from tests.standins.fixtures import KubeApi

#: Flush profiles every second so the test sees them land while the agent runs (the default
#: minute would outlast the test).
UPDATE_PERIOD = "1s"


def kube_env(env: dict[str, str], api: KubeApi) -> dict[str, str]:
    """Kubernetes settings through the environment layer (`GADGETWATCH_<SECTION>__<KEY>`)."""
    return {
        **env,
        "GADGETWATCH_KUBERNETES__MODE": "on",
        "GADGETWATCH_KUBERNETES__API_SERVER": api.url,
        "GADGETWATCH_PROFILER__STORE": "kubernetes",
        "GADGETWATCH_PROFILER__UPDATE_PERIOD": UPDATE_PERIOD,
        "GADGETWATCH_GADGETCLIENT__SECCOMP_WINDOW": "10m",
    }


async def create_rules(api: KubeApi) -> None:
    """The binding and the exception, created through the API like `kubectl apply` would."""
    custom: Any = k8s_client.CustomObjectsApi(api.api_client())
    await asyncio.to_thread(
        custom.create_cluster_custom_object,
        BINDINGS.group,
        BINDINGS.version,
        BINDINGS.plural,
        binding(),
    )
    await asyncio.to_thread(
        custom.create_namespaced_custom_object,
        EXCEPTIONS.group,
        EXCEPTIONS.version,
        NAMESPACE,
        EXCEPTIONS.plural,
        EXCEPTION,
    )


def dns_events(name: str) -> int:
    return sum(
        1
        for raw in CAPTURE.read_text().splitlines()[1:]
        if (line := json.loads(raw))["gadget"] == "trace_dns" and line["data"]["name"] == name
    )


def profile_states(api: KubeApi) -> dict[str, str]:
    return {
        o["metadata"]["name"]: o.get("status", {}).get("phase", "?")
        for o in api.objects(documents.CRD_NAME, NAMESPACE)
    }


def completed_profiles(api: KubeApi) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in api.objects(documents.CRD_NAME, NAMESPACE)
        if o.get("status", {}).get("phase") == "completed"
    }


async def start_agent(
    env: dict[str, str], api: KubeApi, socket: Path, webhook: HttpReceiver
) -> Agent:
    return await Agent.start(
        [
            "--target", f"unix://{socket}",
            "--node-name", NODE,
            "--learning-period", LEARNING_PERIOD,
            "--webhook", webhook.url,
        ],
        env=kube_env(env, api),
    )  # fmt: skip
