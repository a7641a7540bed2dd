"""The kustomize base and overlay render with `kubectl kustomize`, and what they render is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from gadgetwatch.config import load_settings
from gadgetwatch.k8s import agent_permissions
from tests.deploy.manifests import (
    BASE,
    DEPLOY,
    OVERLAY,
    builtin_errors,
    check_config,
    granted,
    grants_of,
    is_custom,
    kustomize,
)
from tests.standins.fixtures import KubeApi

SA = ("gadgetwatch", "gadgetwatch")


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def test_base_renders_the_expected_objects(base: list[dict[str, Any]]) -> None:
    assert _kinds(base) == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "DaemonSet",
            "RuntimeRuleAlertBinding",
        ]
    )


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_builtin_objects_match_the_kubernetes_schemas(
    which: str, request: pytest.FixtureRequest
) -> None:
    objects = request.getfixturevalue(which)
    errors = {
        f"{o['kind']}/{o['metadata']['name']}": builtin_errors(o)
        for o in objects
        if not is_custom(o)
    }
    assert {k: v for k, v in errors.items() if v} == {}


def test_validator_rejects_broken_objects(base: list[dict[str, Any]]) -> None:
    ds = next(o for o in base if o["kind"] == "DaemonSet")
    broken = yaml.safe_load(yaml.safe_dump(ds))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    broken["spec"]["template"]["spec"]["containers"][1]["securityContext"]["readOnly"] = True
    del broken["spec"]["selector"]
    errors = builtin_errors(broken)
    assert any("imagePullPolicy" in e for e in errors)
    assert any("readOnly" in e for e in errors)
    assert any(e.startswith("spec.selector") for e in errors)
    snake = yaml.safe_load(yaml.safe_dump(ds))
    port = snake["spec"]["template"]["spec"]["containers"][1]["ports"][0]
    port["container_port"] = port.pop("containerPort")
    assert builtin_errors(snake) != []


def test_custom_objects_and_crds_are_accepted_by_the_api(
    base: list[dict[str, Any]], kube_api_factory: Any
) -> None:
    server: KubeApi = kube_api_factory(crds_dir=None)
    api = server.api_client()
    ext: Any = client.ApiextensionsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    for crd in (o for o in base if o["kind"] == "CustomResourceDefinition"):
        ext.create_custom_resource_definition(crd)
    customs = [o for o in base if is_custom(o)]
    assert customs
    for obj in customs:
        group, version = obj["apiVersion"].split("/")
        plural = {"RuntimeRuleAlertBinding": "runtimerulealertbindings"}[obj["kind"]]
        custom.create_cluster_custom_object(group, version, plural, obj)


def test_rbac_grants_exactly_what_the_agent_needs(base: list[dict[str, Any]]) -> None:
    needed = agent_permissions()
    for check in needed:
        resource = f"{check.resource}/{check.subresource}" if check.subresource else check.resource
        assert granted(
            base,
            sa_namespace=SA[0],
            sa_name=SA[1],
            verb=check.verb,
            group=check.group,
            resource=resource,
            namespace=check.namespace or "shop",
            name=check.name,
        ), check.display()
    wanted = {(c.verb, c.group, c.resource, c.name) for c in needed}
    assert grants_of(base) == wanted


def test_agent_runs_unprivileged_next_to_a_privileged_ig(base: list[dict[str, Any]]) -> None:
    ds = next(o for o in base if o["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    agent, ig = containers["agent"], containers["ig"]
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    assert agent["securityContext"]["runAsNonRoot"] is True
    assert agent["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert ig["securityContext"]["privileged"] is True
    assert ig["args"][:4] == ["daemon", "--tls-insecure", "--host", "unix:///run/ig/ig.socket"]
    socket_dirs = {
        c: next(m["mountPath"] for m in containers[c]["volumeMounts"] if m["name"] == "ig-socket")
        for c in ("agent", "ig")
    }
    assert socket_dirs == {"agent": "/run/ig", "ig": "/run/ig"}
    config_map = next(o for o in base if o["kind"] == "ConfigMap")
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["gadgetclient"]["target"] == "unix:///run/ig/ig.socket"
    port = int(config["metrics"]["address"].rsplit(":", 1)[1])
    assert agent["ports"][0]["containerPort"] == port


def test_copies_are_byte_equal_to_their_sources() -> None:
    for crd in sorted((DEPLOY / "crds").glob("*.yaml")):
        assert (BASE / "crds" / crd.name).read_bytes() == crd.read_bytes(), crd.name
    assert {p.name for p in (BASE / "crds").glob("*.yaml")} == {
        p.name for p in (DEPLOY / "crds").glob("*.yaml")
    }
    source = DEPLOY / "bindings" / "all-rules-all-pods.yaml"
    assert (BASE / "binding-all-rules-all-pods.yaml").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_rendered_config_loads(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    objects = request.getfixturevalue(which)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    settings = load_settings(config_file=path)
    assert settings.gadgetclient.target == "unix:///run/ig/ig.socket"


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_rendered_config_passes_check_config(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Needs the lead's `gadgetwatch run --check-config` (gadgetwatch/commands/run.py)."""
    objects = request.getfixturevalue(which)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    result = check_config(path)
    assert result.returncode == 0, result.stderr
