"""What can be checked of the Helm chart without a helm binary (see the chart's README)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gadgetwatch.config import load_settings
from gadgetwatch.k8s import agent_permissions
from tests.deploy.manifests import BASE, CHART, DEPLOY, check_config

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


def _values(path: Path) -> dict[str, Any]:
    """Helm's view: the example merged over the defaults (maps merge, the rest replaces)."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return over

    merged: dict[str, Any] = merge(copy.deepcopy(DEFAULTS), yaml.safe_load(path.read_text()))
    return merged


def _errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [e.message for e in validator.iter_errors(values)]


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_schema_accepts_the_defaults() -> None:
    assert _errors(DEFAULTS) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_schema_accepts_the_examples(example: Path) -> None:
    assert _errors(_values(example)) == []


def _broken(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(DEFAULTS)
    node = values
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return values


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("ig.mode", "daemon"),
        ("unknownTopLevel", True),
        ("image.pullPolicy", "Sometimes"),
        ("config.gadgetclient.target", "http://ig:8080"),
        ("config.metrics.address", "0.0.0.0"),
        ("config.exporters.alertmanager.urls", ["alertmanager:9093"]),
        ("config.exporters.syslog.port", 70000),
        ("config.profiler.learningPeriod", "one day"),
        ("config.unknownSection", {}),
        ("serviceMonitor.interval", "often"),
        ("resources", "lots"),
        ("ig.portforward.namespace", "Gadget_NS"),
        ("rbac.create", "yes"),
        ("image.digest", "latest"),
        ("secrets.webhook.existingSecret", "Bad_Name"),
        ("secrets.webhook.header", "Authorization: Bearer"),
        ("secrets.unknown", {"existingSecret": "x"}),
        ("extraVolumeMounts", [{"name": "x", "mountPath": "relative"}]),
        ("extraEnv", [{"value": "no name"}]),
        ("prometheusRule.for", "soon"),
        ("grafanaDashboard.labels", {"grafana_dashboard": 1}),
    ],
)
def test_schema_rejects_broken_values(path: str, value: Any) -> None:
    assert _errors(_broken(path, value)) != []


def test_crds_are_byte_equal_to_deploy_crds() -> None:
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    source = {p.name: p.read_bytes() for p in (DEPLOY / "crds").glob("*.yaml")}
    assert source
    assert chart == source


def test_default_binding_is_byte_equal_to_deploy_bindings() -> None:
    source = DEPLOY / "bindings" / "all-rules-all-pods.yaml"
    assert (CHART / "files" / "all-rules-all-pods.yaml").read_bytes() == source.read_bytes()


def _rules_block(text: str, kind: str) -> list[dict[str, Any]]:
    """The static `rules:` list of the first `kind` document of a (template) file."""
    for doc in re.split(r"^---$", text, flags=re.M):
        if re.search(rf"^kind: {kind}$", doc, flags=re.M):
            block = doc[doc.index("\nrules:") :]
            rules: list[dict[str, Any]] = yaml.safe_load(block)["rules"]
            return rules
    raise AssertionError(f"no {kind} in the file")


def test_chart_rbac_equals_the_kustomize_base() -> None:
    template = (CHART / "templates" / "rbac.yaml").read_text()
    base = (BASE / "rbac.yaml").read_text()
    for kind in ("ClusterRole", "Role"):
        assert _rules_block(template, kind) == _rules_block(base, kind), kind


def test_chart_portforward_role_grants_what_port_forward_needs() -> None:
    template = (CHART / "templates" / "rbac.yaml").read_text()
    block = template[template.index("-ig-portforward\n") :]
    rules = yaml.safe_load(block[block.index("\nrules:") : block.index("---")])["rules"]
    granted = {
        (v, g, r)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    extra = set(agent_permissions(gadget_namespace="gadget")) - set(agent_permissions())
    assert granted == {(c.verb, c.group, f"{c.resource}/{c.subresource}") for c in extra}


def test_chart_defaults_equal_the_kustomize_base_config() -> None:
    base_config = yaml.safe_load((BASE / "config.yaml").read_text())
    assert DEFAULTS["config"]["gadgetclient"] == base_config["gadgetclient"]
    assert DEFAULTS["config"]["profiler"] == base_config["profiler"]
    assert DEFAULTS["config"]["metrics"] == base_config["metrics"]


def _leaf_paths(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        out: list[str] = []
        for key, value in values.items():
            out.extend(_leaf_paths(value, f"{prefix}{key}."))
        return out
    return [prefix.rstrip(".")]


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    missing = [
        p
        for p in _leaf_paths(DEFAULTS)
        if p not in documented and not any(p.startswith(d + ".") for d in documented)
    ]
    assert missing == []


@pytest.mark.parametrize("example", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_values_config_loads(example: Path | None, tmp_path: Path) -> None:
    values = _values(example) if example else DEFAULTS
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values["config"]))
    load_settings(config_file=path)


@pytest.mark.parametrize("example", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_values_config_passes_check_config(example: Path | None, tmp_path: Path) -> None:
    """Needs the lead's `gadgetwatch run --check-config` (gadgetwatch/commands/run.py)."""
    values = _values(example) if example else DEFAULTS
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values["config"]))
    result = check_config(path)
    assert result.returncode == 0, result.stderr


def test_cluster_name_value_reaches_the_agent_settings(tmp_path: Path) -> None:
    """`config.clusterName` is a chart value (empty by default) that the agent reads as its
    root `clusterName` setting; the schema bounds it like the setting does."""
    assert DEFAULTS["config"]["clusterName"] == ""
    values = _broken("config.clusterName", "shop-eu-1")
    assert _errors(values) == []
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values["config"]))
    assert load_settings(config_file=path).cluster_name == "shop-eu-1"
    assert _errors(_broken("config.clusterName", "x" * 254)) != []
    assert _errors(_broken("config.clusterName", 42)) != []
