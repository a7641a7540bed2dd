"""Shipped artifacts: the alert JSON Schema against real alerts (hostile strings included),
the CRDs against their examples, the default binding file, and the `rules` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from detector.alerts import MAX_TEXT
from detector.k8s_source import BINDINGS
from detector.rules import default_catalogue
from detector.ruleset import default_binding_document, load_files
from gadgetwatch.cli import build_parser
from tests.detector.builders import (
    SEC,
    WEB_KEY,
    binding_yaml,
    dns_ev,
    exec_ev,
    make_detector,
    open_ev,
    sys_ev,
    tcp_ev,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles


def main(argv: list[str]) -> int:
    """The CLI's handler without its logging set-up (which would capture pytest's streams)."""
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "alert.schema.json").read_text())
#: The other project's objects (kubecop), as tests/e2e/test_coexistence.py installs them.
KUBECOP_OBJECTS = ROOT / "tests" / "data" / "kubescape" / "kubecop-objects.yaml"


def all_rules_detector() -> Any:
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY)])
    return make_detector(None, profiles=profiles, per_rule_rate_limit=2)


def test_real_alerts_validate_against_the_schema() -> None:
    d = all_rules_detector()
    events = [
        exec_ev("/dev/shm/x", upper_layer=True),
        open_ev("/etc/shadow"),
        tcp_ev("45.33.32.156", 3333),
        dns_ev("pool.supportxmr.com"),
        sys_ev("unshare", "bpf", "init_module"),
        *[exec_ev(f"/dev/shm/y{i}", t=i) for i in range(4)],
    ]
    alerts = d.evaluate(events)
    assert {a.kind.value for a in alerts} == {"rule", "system"}
    assert len({a.rule.id for a in alerts}) >= 10
    for alert in alerts:
        jsonschema.validate(alert.to_dict(), SCHEMA)


def test_hostile_strings_are_bounded_and_escaped() -> None:
    d = all_rules_detector()
    evil = '/dev/shm/\n{"forged": true}\x1b[2J\r\u2028' + "A" * 100_000
    big_args = ["x" * 100_000, "-c", "a\nb", *(f"arg{i}" for i in range(200))]
    alerts = d.evaluate([exec_ev(evil, *big_args, t=SEC)])
    assert [a.rule.id for a in alerts] == ["R0001", "R1000"]
    alert = alerts[1]
    data = alert.to_dict()
    jsonschema.validate(data, SCHEMA)
    text = json.dumps(data["process"]) + data["message"] + json.dumps(data["event"])
    for ch in "\n\r\x1b\u2028":
        assert ch not in text
    assert "\\x0a" in data["message"]
    assert data["process"]["exe"].endswith("chars]")
    assert len(data["process"]["exe"]) <= MAX_TEXT + 40
    args = data["process"]["args"]
    assert sum(len(a) for a in args) <= 8192 + 64
    assert args[-1].startswith("…[")
    assert args[-1].endswith("more args]")
    assert len(json.dumps(data)) < 40_000
    # The fix suggestion is YAML: the value is long, so it became a prefix glob.
    fix = yaml.safe_load(alert.fix_suggestion)  # advice and snippet: one YAML document
    assert fix["spec"]["allow"]["execs"][0].endswith("*")


def test_default_binding_file_matches_the_code() -> None:
    shipped = yaml.safe_load((ROOT / "deploy/bindings/all-rules-all-pods.yaml").read_text())
    assert shipped == default_binding_document(default_catalogue())
    loaded = load_files([ROOT / "deploy/bindings"], catalogue=default_catalogue())
    assert loaded.problems == ()
    assert len(loaded.bindings[0].rules) == len(default_catalogue().rules)


def crd_schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def seed_bindings() -> list[Any]:
    docs = [
        doc
        for doc in yaml.safe_load_all(KUBECOP_OBJECTS.read_text())
        if doc and doc.get("kind") == "RuntimeRuleAlertBinding"
    ]
    assert docs, KUBECOP_OBJECTS
    return docs


def test_binding_crd_accepts_our_default_and_the_seeds_bindings() -> None:
    schema = crd_schema(ROOT / f"deploy/crds/{BINDINGS.crd_name}.yaml")
    examples = [default_binding_document(default_catalogue()), *seed_bindings()]
    examples.append(yaml.safe_load(binding_yaml("R0001") + "    severity: 8\n"))
    for doc in examples:
        jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"rules": [{"ruleID": "R0001", "ruleName": "x"}]}}, schema)


def test_exception_crd_accepts_the_documented_example_and_fix_snippets() -> None:
    schema = crd_schema(ROOT / "deploy/crds/runtimealertexceptions.gadgetwatch.io.yaml")
    example = (ROOT / "tests/data/detector/exception-example.yaml").read_text()
    jsonschema.validate(yaml.safe_load(example), schema)
    d = all_rules_detector()
    for alert in d.evaluate([exec_ev("/bin/nc"), tcp_ev("45.33.32.156", 4444)]):
        snippet = alert.fix_suggestion
        jsonschema.validate(yaml.safe_load(snippet), schema)
    checked = load_files(
        [ROOT / "tests/data/detector/exception-example.yaml"], catalogue=default_catalogue()
    )
    assert checked.problems == ()


def test_rules_list_json_includes_unavailable_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "-o", "json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    by_id = {r["id"]: r for r in rules}
    assert by_id["R0002"]["parameters"][0]["name"] == "ignoreMounts"
    assert by_id["R2000"]["available"] is False
    assert "API-server" in by_id["R2000"]["reason"]
    catalogue = default_catalogue()
    available = {r.id for r in (*catalogue.rules, *catalogue.resource_rules)}
    assert {r["id"] for r in rules if r["available"]} == available
    assert by_id["R3000"]["activatedBy"] == "RuntimeGuard"


def test_rules_check_reports_problems_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(binding_yaml("R0001"))
    assert main(["rules", "check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(binding_yaml("R0001", "R7777"))
    assert main(["rules", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    where = f"{bad}:7: RuntimeRuleAlertBinding test: spec.rules[1].ruleID"
    assert f"{where}: error: unknown rule 'R7777'" in out
