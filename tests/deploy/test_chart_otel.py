"""The chart's `otel` and `debug` values: the schema's rules, and the environment the
template sets, which must name real agent settings (an unknown key fails the agent's start)."""

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
from tests.deploy.manifests import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
TEMPLATE = (CHART / "templates" / "_otel.tpl").read_text()


def _errors(otel: dict[str, Any]) -> list[str]:
    values = copy.deepcopy(DEFAULTS)
    values["otel"].update(otel)
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(values)]


def test_enabled_needs_a_host() -> None:
    assert _errors({"enabled": True}) != []
    assert _errors({"enabled": True, "endpoint": {"host": "collector", "port": 4317}}) == []


@pytest.mark.parametrize(
    "otel",
    [
        {"protocol": "thrift"},
        {"endpoint": {"host": "c", "port": 70000}},
        {"endpoint": {"host": "c", "insecure": "yes"}},
        {"resourceAttributes": {"a": 1}},
        {"headers": {"x": "y"}},  # headers come from a Secret, never from values
    ],
)
def test_schema_rejects_broken_otel_values(otel: dict[str, Any]) -> None:
    assert _errors(otel) != []


def test_template_environment_names_real_settings(tmp_path: Path) -> None:
    """Every variable the template can set, with a value of the shape it renders, loads."""
    names = set(re.findall(r"- name: (GADGETWATCH_[A-Z_]+)", TEMPLATE))
    samples = {
        "GADGETWATCH_EXPORTERS__OTLP__ENABLED": "true",
        "GADGETWATCH_EXPORTERS__OTLP__HOST": "otel-collector.monitoring",
        "GADGETWATCH_EXPORTERS__OTLP__PORT": "4317",
        "GADGETWATCH_EXPORTERS__OTLP__INSECURE": "false",
        "GADGETWATCH_EXPORTERS__OTLP__PROTOCOL": "grpc",
        "GADGETWATCH_EXPORTERS__OTLP__HEADERS_DIR": "/etc/gadgetwatch-otel/headers",
        "GADGETWATCH_EXPORTERS__OTLP__CA_FILE": "/etc/gadgetwatch-otel/ca/ca.crt",
        "GADGETWATCH_EXPORTERS__OTLP__RESOURCE_ATTRIBUTES": json.dumps(
            {"deployment.environment.name": "prod"}
        ),
        "GADGETWATCH_EXPORTERS__OTLP__EXPORT_METRICS": "true",
        "GADGETWATCH_DEBUG_ENDPOINTS": "1",
        "GADGETWATCH_DEBUG__ADDRESS": "127.0.0.1:6060",
    }
    assert names == set(samples)
    settings = load_settings(environ=samples)
    otlp = settings.exporters.otlp
    assert otlp.enabled
    assert otlp.host == "otel-collector.monitoring"
    assert otlp.port == 4317
    assert not otlp.insecure
    assert str(otlp.headers_dir) == "/etc/gadgetwatch-otel/headers"
    assert otlp.resource_attributes == {"deployment.environment.name": "prod"}
    assert otlp.export_metrics
    assert settings.debug.enabled
    assert settings.debug.address == "127.0.0.1:6060"


def test_mount_paths_match_the_environment() -> None:
    assert "mountPath: /etc/gadgetwatch-otel/headers" in TEMPLATE
    assert "mountPath: /etc/gadgetwatch-otel/ca" in TEMPLATE
    assert "path: ca.crt" in TEMPLATE
