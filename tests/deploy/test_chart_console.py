"""The chart's optional console (console.enabled): its Deployment, Service and RBAC, and the
agents' webhook pointed at it, rendered by the real Go template engine (tests/deploy/helmrender)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from detector.k8s_source import EXCEPTIONS
from gadgetwatch.config import load_settings
from gadgetwatch.console.security import read_token
from profiler import documents
from tests.deploy.manifests import builtin_errors, is_custom
from tests.deploy.test_chart_render import agent, config, find, helmrender, render
from tests.e2e.harness import GADGETWATCH

__all__ = ["helmrender", "render"]

CONSOLE: dict[str, Any] = {
    "console": {
        "enabled": True,
        "existingSecret": "console-auth",
        "persistence": {"existingClaim": "console-data"},
        "retention": {"maxAge": "7d", "maxAlerts": 200000},
    }
}


def _console_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = find(objects, "Deployment", "-console")["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


def test_disabled_by_default(render) -> None:
    objects = render()
    assert not [o for o in objects if o["metadata"]["name"].endswith("-console")]
    assert config(objects)["exporters"]["http"]["enabled"] is False


def test_console_objects_validate_and_agents_post_to_it(render, tmp_path: Path) -> None:
    objects = render(CONSOLE)
    errors = {
        f"{o['kind']}/{o['metadata']['name']}": builtin_errors(o)
        for o in objects
        if not is_custom(o)
    }
    assert {k: v for k, v in errors.items() if v} == {}
    deployment = find(objects, "Deployment", "-console")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one SQLite writer
    service = find(objects, "Service", "-console")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # The agents' selector does not take the console's pods, nor the other way round.
    daemonset = find(objects, "DaemonSet")
    ds_labels = daemonset["spec"]["selector"]["matchLabels"]
    console_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not all(console_labels.get(k) == v for k, v in ds_labels.items())

    # The agents' webhook is the console's Service, authenticated by the ingest key only.
    http = config(objects)["exporters"]["http"]
    assert http["enabled"] is True
    namespace = service["metadata"]["namespace"]
    assert http["url"] == (
        f"http://{service['metadata']['name']}.{namespace}.svc:8080/api/v1/alerts"
    )
    assert http["headerFiles"] == {
        "Authorization": "/var/run/secrets/gadgetwatch/console-ingest/ingest"
    }
    pod = daemonset["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "console-ingest")
    assert volume["secret"]["items"] == [{"key": "ingest", "path": "ingest"}]
    mount = next(m for m in agent(objects)["volumeMounts"] if m["name"] == "console-ingest")
    assert mount["mountPath"] == "/var/run/secrets/gadgetwatch/console-ingest"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(objects)))
    load_settings(config_file=path)

    # The console reads both keys of the Secret, keeps its database on the claim.
    container = _console_container(objects)
    args = container["args"]
    assert "--token-file=/var/run/secrets/gadgetwatch/console/token" in args
    assert "--ingest-token-file=/var/run/secrets/gadgetwatch/console/ingest" in args
    assert "--retention-max-age=7d" in args
    assert "--retention-max-alerts=200000" in args
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "console-data"}
    assert volumes["credentials"]["secret"]["secretName"] == "console-auth"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    # The Health page finds every agent through a headless Service selecting the agents.
    agents = find(objects, "Service", "-console-agents")
    assert agents["spec"]["clusterIP"] == "None"
    assert agents["spec"]["selector"] == ds_labels
    assert (
        f"--agent-metrics-dns=http://{agents['metadata']['name']}.{namespace}.svc:9090/metrics"
        in args
    )

    # The real CLI accepts the rendered arguments (parsed up to starting to serve).
    result = subprocess.run(
        [GADGETWATCH, "console", "--help"], capture_output=True, text=True, timeout=60
    )
    for arg in args[1:]:
        flag = arg.split("=", 1)[0]
        assert flag in result.stdout, flag


def test_console_rbac_reads_profiles_and_only_creates_exceptions(render) -> None:
    objects = render(CONSOLE)
    role = find(objects, "ClusterRole", "-console")
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    writes = {x for x in granted if x[2] not in ("get", "list", "watch")}
    assert writes == {(EXCEPTIONS.group, EXCEPTIONS.plural, "create")}
    reads = granted - writes
    assert reads == {(documents.GROUP, documents.PLURAL, v) for v in ("get", "list", "watch")}
    binding = find(objects, "ClusterRoleBinding", "-console")
    assert (
        binding["subjects"][0]["name"]
        == find(objects, "ServiceAccount", "-console")["metadata"]["name"]
    )


def test_tls_serves_https_and_agents_use_it(render) -> None:
    values = {"console": {**CONSOLE["console"], "tlsSecret": "console-tls"}}
    objects = render(values)
    container = _console_container(objects)
    assert "--tls-cert-file=/var/run/secrets/gadgetwatch/console-tls/tls.crt" in container["args"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert config(objects)["exporters"]["http"]["url"].startswith("https://")


def test_the_ingest_key_holds_the_header_both_sides_read(tmp_path: Path) -> None:
    """One Secret key: the agents send its content as the Authorization header, the console
    reads the token out of it."""
    key = tmp_path / "ingest"
    key.write_text("Bearer s3cret\n")
    assert read_token(key) == "s3cret"
