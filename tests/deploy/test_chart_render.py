"""The Helm chart rendered by a real Go template engine (tests/deploy/helmrender).

helmrender is Go's text/template with sprig, the two libraries Helm renders with (Debian
packages), plus the objects and functions Helm adds that this chart uses; it runs with
missingkey=error (`helm lint --strict`), so a template reading a value absent from values.yaml
fails to render. Every test renders the chart with some values and checks the manifests: built-in
objects against the Kubernetes models, and what each value is supposed to do.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.k8s_source import BINDINGS
from gadgetwatch.config import load_settings
from gadgetwatch.k8s import AGENT_CRDS
from profiler import documents
from tests.deploy.manifests import CHART, REPO, builtin_errors, is_custom

RENDERER = Path(__file__).resolve().parent / "helmrender"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def helmrender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    assert go, "go is required (scripts/setup.sh --dev installs golang-go)"
    out = tmp_path_factory.mktemp("helmrender")
    # GOPATH mode over Debian's Go source packages: no module download.
    env = {
        "GO111MODULE": "off",
        "GOPATH": "/usr/share/gocode",
        "GOCACHE": str(out / "cache"),
        "HOME": str(out),
        "PATH": "/usr/bin:/bin",
    }
    built = subprocess.run(
        [go, "build", "-o", str(out / "helmrender"), "main.go"],
        cwd=RENDERER,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return out / "helmrender"


@pytest.fixture
def render(helmrender: Path, tmp_path: Path):
    def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        args = [str(helmrender), str(CHART)]
        if values is not None:
            path = tmp_path / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            args.append(str(path))
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    return _render


def find(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, [o["metadata"]["name"] for o in objects if o["kind"] == kind]
    return matches[0]


def agent(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "agent")


def config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    cm = find(objects, "ConfigMap", "-config")
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])
    return loaded


EVERYTHING: dict[str, Any] = {
    "image": {"digest": DIGEST},
    "secrets": {
        "webhook": {"existingSecret": "hook-token"},
        "alertmanager": {"existingSecret": "am-auth", "bearerTokenKey": "token", "caKey": "ca.crt"},
        "syslogTls": {"existingSecret": "syslog-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
        "igTls": {"existingSecret": "ig-mtls"},
    },
    "config": {
        "gadgetclient": {"target": "tcp://ig.gadget.svc:8443"},
        "exporters": {
            "http": {"enabled": True, "url": "https://hooks.example.com/gw"},
            "alertmanager": {"enabled": True, "urls": ["https://am.example.com:9093"]},
            "syslog": {
                "enabled": True,
                "transport": "tls",
                "host": "logs.example.com",
                "port": 6514,
            },
        },
    },
    "extraEnv": [{"name": "GADGETWATCH_DETECTOR__COOLDOWN", "value": "30m"}],
    "extraVolumes": [{"name": "extra-ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "extra-ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus"}},
    "grafanaDashboard": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "networkPolicy": {"enabled": True},
}


@pytest.mark.parametrize("values", [None, EVERYTHING], ids=["defaults", "everything"])
def test_builtin_objects_validate(render, values) -> None:
    objects = render(values)
    errors = {
        f"{o['kind']}/{o['metadata']['name']}": builtin_errors(o)
        for o in objects
        if not is_custom(o)
    }
    assert {k: v for k, v in errors.items() if v} == {}


def test_defaults_keep_the_hardened_security_contexts(render) -> None:
    objects = render()
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert agent(objects)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert agent(objects)["image"] == "ghcr.io/gadgetwatch/gadgetwatch:0.1.0"
    assert not [o for o in objects if o["kind"] in ("PrometheusRule",)]


def test_security_contexts_can_be_overridden(render) -> None:
    objects = render(
        {
            "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": None},
            "podSecurityContext": {"runAsGroup": 3000},
        }
    )
    # Helm merges user maps over the defaults; null removes a key.
    assert agent(objects)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1001,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsGroup"] == 3000
    assert pod["securityContext"]["fsGroup"] == 65532


def test_existing_secrets_are_mounted_read_only_and_referenced_by_config(
    render, tmp_path: Path
) -> None:
    objects = render(EVERYTHING)
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in agent(objects)["volumeMounts"]}
    expected = {
        "webhook": "hook-token",
        "alertmanager": "am-auth",
        "syslog-tls": "syslog-tls",
        "ig-tls": "ig-mtls",
    }
    for name, secret in expected.items():
        volume = volumes[f"secret-{name}"]
        assert volume["secret"] == {"secretName": secret, "defaultMode": 0o440}
        mount = mounts[f"secret-{name}"]
        assert mount["readOnly"] is True
        assert mount["mountPath"] == f"/var/run/secrets/gadgetwatch/{name}"
    cfg = config(objects)
    ex = cfg["exporters"]
    assert ex["http"]["headerFiles"] == {
        "Authorization": "/var/run/secrets/gadgetwatch/webhook/token"
    }
    assert (
        ex["alertmanager"]["bearerTokenFile"] == "/var/run/secrets/gadgetwatch/alertmanager/token"
    )
    assert ex["alertmanager"]["caFile"] == "/var/run/secrets/gadgetwatch/alertmanager/ca.crt"
    assert ex["syslog"]["caFile"] == "/var/run/secrets/gadgetwatch/syslog-tls/ca.crt"
    assert ex["syslog"]["certFile"] == "/var/run/secrets/gadgetwatch/syslog-tls/tls.crt"
    assert ex["syslog"]["keyFile"] == "/var/run/secrets/gadgetwatch/syslog-tls/tls.key"
    assert cfg["gadgetclient"]["tls"] == {
        "serverCa": "/var/run/secrets/gadgetwatch/ig-tls/ca.crt",
        "clientCert": "/var/run/secrets/gadgetwatch/ig-tls/tls.crt",
        "clientKey": "/var/run/secrets/gadgetwatch/ig-tls/tls.key",
    }
    # Every referenced file lies in a mounted Secret under the key the values name.
    for path in [*ex["http"]["headerFiles"].values(), ex["alertmanager"]["bearerTokenFile"]]:
        directory, key = path.rsplit("/", 1)
        name = directory.rsplit("/", 1)[1]
        assert mounts[f"secret-{name}"]["mountPath"] == directory
        assert key
    # The agent's own loader accepts the rendered configuration.
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    load_settings(config_file=path)
    # No Secret object is created by the chart and no secret material is in the ConfigMap or env.
    assert not [o for o in objects if o["kind"] == "Secret"]
    env_text = json.dumps(agent(objects)["env"])
    assert "secretKeyRef" not in env_text


def test_basic_auth_password_comes_from_the_secret(render) -> None:
    objects = render(
        {
            "secrets": {
                "alertmanager": {
                    "existingSecret": "am",
                    "username": "gw",
                    "passwordKey": "password",
                }
            }
        }
    )
    am = config(objects)["exporters"]["alertmanager"]
    assert am["username"] == "gw"
    assert am["passwordFile"] == "/var/run/secrets/gadgetwatch/alertmanager/password"
    assert "password" not in am
    assert "bearerTokenFile" not in am


def test_no_secret_values_means_no_secret_volumes(render) -> None:
    objects = render()
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if v["name"].startswith("secret-")]
    assert "headerFiles" not in config(objects)["exporters"]["http"]


def test_digest_extra_env_and_extra_volumes(render) -> None:
    objects = render(EVERYTHING)
    container = agent(objects)
    assert container["image"] == f"ghcr.io/gadgetwatch/gadgetwatch@{DIGEST}"
    assert {"name": "GADGETWATCH_DETECTOR__COOLDOWN", "value": "30m"} in container["env"]
    assert {"name": "extra-ca", "mountPath": "/etc/corp-ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert {"name": "extra-ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]


DOCUMENTED = set(
    re.findall(
        r"`((?:gadgetwatch|process|python)_[a-z0-9_]+)`", (REPO / "docs" / "metrics.md").read_text()
    )
)
METRIC = re.compile(r"\b((?:gadgetwatch|process)_[a-z0-9_]+)")


def test_prometheus_rule_alerts_on_agent_health_with_documented_metrics(render) -> None:
    rule = find(render(EVERYTHING), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    rules = rule["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {
        "GadgetwatchIGStreamDown",
        "GadgetwatchEventsLostUpstream",
        "GadgetwatchExporterFailing",
        "GadgetwatchExporterDropping",
        "GadgetwatchProfileWritesFailing",
    }
    for r in rules:
        metrics = METRIC.findall(r["expr"])
        assert metrics, r
        assert set(metrics) <= DOCUMENTED, r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")")
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["for"] == "10m"
        # Prometheus' own template syntax survives Helm's.
        assert "{{ $labels." in r["annotations"]["summary"]


def test_grafana_dashboard_is_the_generated_one_and_queries_documented_metrics(render) -> None:
    cm = find(render(EVERYTHING), "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(cm["data"]["gadgetwatch.json"])
    spec = importlib.util.spec_from_file_location(
        "make_dashboard", REPO / "scripts" / "make_dashboard.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (CHART / "files" / "dashboard.json").read_text()
    assert committed == module.render(), "run scripts/make_dashboard.py"
    assert board == json.loads(committed)
    queried = {m for p in board["panels"] for t in p["targets"] for m in METRIC.findall(t["expr"])}
    assert queried <= DOCUMENTED
    for wanted in (
        "gadgetwatch_gadget_events_received_total",
        "gadgetwatch_gadget_events_lost_total",
        "gadgetwatch_pipeline_events_processed_total",
        "gadgetwatch_detector_alerts_total",
        "gadgetwatch_exporter_queue_alerts",
        "gadgetwatch_exporter_alerts_dropped_total",
        "gadgetwatch_profiler_profiles",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert wanted in queried


def test_a_template_reading_an_undefined_value_fails_to_render(
    helmrender: Path, tmp_path: Path
) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "broken.yaml").write_text("x: {{ .Values.image.nosuchkey }}\n")
    out = subprocess.run([str(helmrender), str(chart)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "nosuchkey" in out.stderr


HEADLESS: dict[str, Any] = {
    "ig": {"mode": "portforward"},
    "config": {
        "gadgetclient": {
            "target": "k8s://gadget",
            "headless": {
                "enabled": True,
                "stateFile": "/var/lib/gadgetwatch/state/instances-seq.json",
            },
        }
    },
}


def test_headless_mounts_the_node_state_and_removes_instances_before_delete(render) -> None:
    objects = render(HEADLESS)
    errors = {
        f"{o['kind']}/{o['metadata']['name']}": builtin_errors(o)
        for o in objects
        if not is_custom(o)
    }
    assert {k: v for k, v in errors.items() if v} == {}
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert {
        "name": "state",
        "hostPath": {"path": "/var/lib/gadgetwatch/state", "type": "DirectoryOrCreate"},
    } in pod["volumes"]
    assert {"name": "state", "mountPath": "/var/lib/gadgetwatch/state"} in agent(objects)[
        "volumeMounts"
    ]
    job = find(objects, "Job", "-headless-cleanup")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == agent(objects)["image"]
    assert container["args"] == [
        "instances", "--config", "/etc/gadgetwatch/config.yaml",
        "--target", "k8s://gadget", "remove", "--mine",
    ]  # fmt: skip
    # The config the hook reads names the same instances as the agent's.
    assert config(objects)["gadgetclient"]["headless"]["enabled"] is True


def test_without_headless_there_is_no_state_volume_and_no_hook(render) -> None:
    objects = render()
    assert not [o for o in objects if o["kind"] == "Job"]
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert "state" not in {v["name"] for v in pod["volumes"]}


def test_chart_owns_only_gadgetwatch_groups_next_to_kubescape(render) -> None:
    """Coexistence (issue 13): Helm skips CRDs that exist, so the chart's must not share a name
    with kubecop's/Kubescape's; the agent is granted its own group and nothing in theirs."""
    objects = render()
    role = find(objects, "ClusterRole")
    groups = {g for rule in role["rules"] for g in rule["apiGroups"]}
    assert documents.KUBESCAPE_GROUP not in groups
    profile_rules = [r for r in role["rules"] if documents.PLURAL in r["resources"]]
    assert [r["apiGroups"] for r in profile_rules] == [[documents.GROUP]]
    binding = find(objects, BINDINGS.kind)
    assert binding["apiVersion"] == f"{BINDINGS.group}/{BINDINGS.version}"
    crds = [yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    assert {c["spec"]["group"] for c in crds} == {documents.GROUP}
    assert {c["metadata"]["name"] for c in crds} == set(AGENT_CRDS)
    theirs = REPO / "tests" / "data" / "kubescape" / "kubecop-crds.yaml"
    their_names = {c["metadata"]["name"] for c in yaml.safe_load_all(theirs.read_text())}
    assert their_names.isdisjoint(AGENT_CRDS)
