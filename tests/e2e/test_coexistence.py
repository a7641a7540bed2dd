"""gadgetwatch next to kubecop / Kubescape in one cluster (issue 13, part 3).

The stand-in API server gets the other project's CRDs (`tests/data/kubescape/kubecop-crds.yaml`,
their `kubescape.io` ApplicationProfile and RuntimeRuleAlertBinding schemas) installed through
the apiextensions API as their chart would, plus their objects, next to gadgetwatch's CRDs
(`deploy/crds/`, `gadgetwatch.io`). Then the agent runs the e2e scenario: its profiles land in
`gadgetwatch.io` and pass its schema, its binding is watched and drives the alerts, and it
never sends a request to `kubescape.io`: their CRDs and objects keep their resourceVersions.
Finally `gadgetwatch profile import` converts their profile (as listed from the API) into
gadgetwatch profiles, saying what it could not carry over.

The stand-in enforces CRD schemas as the API server does, so the failure the issue reports is
reproduced first: a gadgetwatch document sent to their group is refused (400, unknown field
`spec.workload`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from detector.k8s_source import BINDINGS
from gadgetwatch.k8s import AGENT_CRDS
from profiler import documents
from tests.e2e.cluster import seed
from tests.e2e.harness import GADGETWATCH, Proc, eventually, start_replay_server
from tests.e2e.kube_agent import completed_profiles, create_rules, start_agent
from tests.e2e.scenario import (
    CAPTURE,
    EXPECTED,
    NAMESPACE,
    PROFILE_NAMES,
    SILENCED_BY_EXCEPTION,
    expected_of,
)
from tests.exporters.receivers import HttpReceiver
from tests.standins.fixtures import KubeApi
from tests.standins.kube_schema import validate_custom_object

DATA = Path(__file__).resolve().parents[1] / "data" / "kubescape"
REPO = Path(__file__).resolve().parents[2]
THEIR_CRDS: list[dict[str, Any]] = list(
    yaml.safe_load_all((DATA / "kubecop-crds.yaml").read_text())
)
THEIR_PROFILE, THEIR_BINDING = yaml.safe_load_all((DATA / "kubecop-objects.yaml").read_text())
THEIR_GROUP, THEIR_VERSION = documents.LEGACY_API_VERSION.split("/")
OUR_CRD = REPO / "deploy" / "crds" / f"{documents.CRD_NAME}.yaml"


def their_state(api: KubeApi) -> dict[str, dict[str, Any]]:
    """Their CRDs and objects as stored (resourceVersions included)."""
    state: dict[str, dict[str, Any]] = {}
    for crd in THEIR_CRDS:
        name = crd["metadata"]["name"]
        stored = api.get("customresourcedefinitions.apiextensions.k8s.io", name)
        assert stored is not None, name
        state[name] = copy.deepcopy(stored)
    profile = api.get(f"applicationprofiles.{THEIR_GROUP}", "deployment-web", NAMESPACE)
    binding = api.get(f"runtimerulealertbindings.{THEIR_GROUP}", "all-rules-all-pods")
    assert profile is not None
    assert binding is not None
    state["profile"], state["binding"] = copy.deepcopy(profile), copy.deepcopy(binding)
    return state


async def install_theirs(api: KubeApi) -> None:
    """Their chart's CRDs, then their objects, through the API (`kubectl apply`: Strict)."""
    client = api.api_client()
    extensions: Any = k8s_client.ApiextensionsV1Api(client)
    for crd in THEIR_CRDS:
        await asyncio.to_thread(extensions.create_custom_resource_definition, crd)
    custom: Any = k8s_client.CustomObjectsApi(client)
    await asyncio.to_thread(
        custom.create_namespaced_custom_object,
        THEIR_GROUP, THEIR_VERSION, NAMESPACE, "applicationprofiles", THEIR_PROFILE,
        field_validation="Strict",
    )  # fmt: skip
    await asyncio.to_thread(
        custom.create_cluster_custom_object,
        THEIR_GROUP, THEIR_VERSION, "runtimerulealertbindings", THEIR_BINDING,
        field_validation="Strict",
    )  # fmt: skip


def our_document_in_their_group() -> dict[str, Any]:
    """A profile as gadgetwatch writes it, with the group it used before issue 13."""
    ours = yaml.safe_load(OUR_CRD.read_text())
    assert ours["spec"]["group"] == documents.GROUP
    return {
        "apiVersion": documents.LEGACY_API_VERSION,
        "kind": documents.KIND,
        "metadata": {"name": "deployment-web-app", "namespace": NAMESPACE},
        "spec": {
            "workload": {"namespace": NAMESPACE, "kind": "Deployment", "name": "web"},
            "containers": [{"name": "app", "syscalls": ["read"]}],
        },
    }


def kubeconfig(path: Path, api: KubeApi) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "standin", "cluster": {"server": api.url}}],
                "users": [{"name": "test", "user": {}}],
                "contexts": [{"name": "t", "context": {"cluster": "standin", "user": "test"}}],
                "current-context": "t",
            }
        )
    )
    return path


async def test_their_crds_refuse_our_documents_as_the_issue_reported(kube_api: KubeApi) -> None:
    seed(kube_api)
    await install_theirs(kube_api)
    custom: Any = k8s_client.CustomObjectsApi(kube_api.api_client())
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(
            custom.create_namespaced_custom_object,
            THEIR_GROUP, THEIR_VERSION, NAMESPACE, "applicationprofiles",
            our_document_in_their_group(), field_validation="Strict",
        )  # fmt: skip
    assert refused.value.status == 400
    assert 'unknown field "spec.workload"' in json.loads(refused.value.body or "{}")["message"]
    # With Warn (the server's default) the identity is pruned away: the object no longer says
    # whose it is.
    kept = await asyncio.to_thread(
        custom.create_namespaced_custom_object,
        THEIR_GROUP, THEIR_VERSION, NAMESPACE, "applicationprofiles",
        our_document_in_their_group(), field_validation="Warn",
    )  # fmt: skip
    assert "workload" not in kept["spec"]
    # Our CRDs and theirs share no name, so neither install skips or replaces the other's.
    assert {c["metadata"]["name"] for c in THEIR_CRDS}.isdisjoint(AGENT_CRDS)


async def test_agent_runs_next_to_kubecop_and_imports_its_profile(
    sockdir: Path,
    env: dict[str, str],
    kube_api: KubeApi,
    webhook: HttpReceiver,
    tmp_path: Path,
) -> None:
    seed(kube_api)
    await install_theirs(kube_api)
    before = their_state(kube_api)
    await create_rules(kube_api)
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env)
    mark = len(kube_api.request_log())
    agent = None
    try:
        agent = await start_agent(env, kube_api, socket, webhook)
        await agent.wait_ready()
        # Our binding (gadgetwatch.io) is watched and drives the alerts; theirs is not read.
        want = sorted(e for e in EXPECTED if e != SILENCED_BY_EXCEPTION)
        await eventually(lambda: len(webhook.alerts()) >= len(want), what="webhook alerts")
        await eventually(
            lambda: set(completed_profiles(kube_api)) == PROFILE_NAMES,
            what="completed gadgetwatch profiles",
        )
        assert await agent.terminate() == 0
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()
    assert sorted(expected_of(a) for a in webhook.alerts()) == want

    # Profiles: in our group, valid against our schema, read back by the agent (the store's
    # watch lists them), and with their identity.
    schema = yaml.safe_load(OUR_CRD.read_text())["spec"]["versions"][0]["schema"]
    for name, obj in completed_profiles(kube_api).items():
        assert obj["apiVersion"] == documents.API_VERSION, name
        result = validate_custom_object(obj, schema["openAPIV3Schema"])
        assert (result.causes, result.unknown) == ([], []), name
    agent_paths = [r.path for r in kube_api.request_log()[mark:]]
    assert any(p.startswith(f"/apis/{documents.GROUP}/") for p in agent_paths)
    assert any(
        p == f"/apis/{BINDINGS.group}/{BINDINGS.version}/{BINDINGS.plural}" for p in agent_paths
    )
    assert not [p for p in agent_paths if p.startswith(f"/apis/{THEIR_GROUP}/")]
    # Nothing of theirs was touched: same objects, same resourceVersions.
    assert their_state(kube_api) == before

    # Migration: their profile, listed from the API as `kubectl get -o yaml` would, imported.
    custom: Any = k8s_client.CustomObjectsApi(kube_api.api_client())
    listing = await asyncio.to_thread(
        custom.list_namespaced_custom_object,
        THEIR_GROUP, THEIR_VERSION, NAMESPACE, "applicationprofiles",
    )  # fmt: skip
    exported = tmp_path / "kubecop-profiles.yaml"
    exported.write_text(yaml.safe_dump(listing))
    config = kubeconfig(tmp_path / "kubeconfig", kube_api)
    proc = await Proc.start(
        "import",
        [GADGETWATCH, "profile", "--kubeconfig", str(config), "import", str(exported)],
        env=env,
    )
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    assert proc.stdout == [
        f"imported {NAMESPACE}/deployment-web-app (completed, user-owned)",
        f"imported {NAMESPACE}/deployment-web-nginx (completed, user-owned)",
    ]
    source = f"{exported} items[0]"
    assert [line for line in proc.stderr if line.startswith("warning:")] == [
        f"warning: {source}: spec.containers[0].execs[0].envs: not kept (gadgetwatch profiles "
        "do not record environment variables)",
        f"warning: {source}: spec.containers[0].opens[0].taskName: not kept (opens are allowed "
        "per container, not per process)",
        f"warning: {source}: spec.containers[0].opens[0].taskId: not kept (opens are allowed "
        "per container, not per process)",
    ]
    app = kube_api.get(documents.CRD_NAME, "deployment-web-app", NAMESPACE)
    assert app is not None
    assert app["status"]["managedBy"] == "user"
    (container,) = app["spec"]["containers"]
    assert [e["path"] for e in container["execs"]] == ["/usr/local/bin/app"]
    assert container["networkActivity"]["outgoing"] == [
        {"port": 5432, "protocol": "TCP", "dstEndpoint": "10.96.0.20"}
    ]
    assert their_state(kube_api) == before
