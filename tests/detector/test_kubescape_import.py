"""Kubescape node-agent `Rules` resources: converted into RuntimeRules, loaded, evaluated.

tests/data/detector/kubescape_rules.yaml is a `Rules` document in node-agent's format with
rules on every event type gadgetwatch receives and rules it cannot evaluate. The tests check
which are converted and why the others are not, that the converted expressions evaluate on
gadgetwatch's events with node-agent's field and helper names, and the CLI (`rules import`,
its output loading back, `rules list --rules`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from detector import bindings, kubescape_rules
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import default_catalogue
from detector.ruleset import load_files, load_text
from detector.stats import DetectorStats
from gadgetclient.events import TcpEventType
from gadgetwatch.cli import main
from tests.detector.builders import WEB_KEY, PodMeta, exec_ev, sys_ev, tcp_ev
from tests.detector.profiles import MemoryProfile, MemoryProfiles

SAMPLE = Path(__file__).parent.parent / "data" / "detector" / "kubescape_rules.yaml"


def test_convertible_rules_are_converted_and_the_others_named_with_the_reason() -> None:
    converted, skipped = kubescape_rules.convert(yaml.safe_load(SAMPLE.read_text()))
    assert [c["spec"]["id"] for c in converted] == [
        "KS-R0001",
        "KS-R0003",
        "KS-R0004",
        "KS-R0005",
        "KS-R0007",
        "KS-R1000",
    ]
    reasons = {s.id: s.reason for s in skipped}
    assert set(reasons) == {"R0002", "R0009", "R1007", "R1011", "R1001"}
    assert "enabled: false" in reasons["R0002"]
    assert "event type 'bpf'" in reasons["R0009"]
    assert "event type 'randomx'" in reasons["R1007"]
    assert "disabled in the source" in reasons["R1011"]
    assert "event.pupperlayer" in reasons["R1001"]
    by_id = {c["spec"]["id"]: c["spec"] for c in converted}
    assert by_id["KS-R0001"]["profileDependency"] == "required"
    assert by_id["KS-R1000"]["profileDependency"] == "none"
    assert by_id["KS-R1000"]["severity"] == "high"  # node-agent's 8
    assert set(by_id["KS-R0007"]["match"]) == {"exec", "tcp"}
    assert 'event.type == "connect"' in by_id["KS-R0007"]["match"]["tcp"]


def test_a_helper_with_io_is_refused() -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    for entry in doc["spec"]["rules"]:
        entry["enabled"] = True
    _, skipped = kubescape_rules.convert(doc)
    reasons = {s.id: s.reason for s in skipped}
    assert "process.get_ld_hook_var" in reasons["R1011"]
    assert "/proc" in reasons["R1011"]


def _detector(profiles: MemoryProfiles) -> Detector:
    catalogue = default_catalogue()
    loaded = load_files([SAMPLE], catalogue=catalogue)
    assert loaded.errors == ()
    assert len([p for p in loaded.problems if "not imported" in p.message]) == 5
    binding = (
        f"apiVersion: {bindings.API_VERSION}\nkind: RuntimeRuleAlertBinding\n"
        "metadata: {name: ks}\n"
        "spec:\n  rules:\n  - ruleTags: [anomaly, signature, dns, exec]\n"
    )
    extended = catalogue.extended(loaded.rules)
    bound = load_text(binding, source="b.yaml", catalogue=extended)
    return Detector(
        settings=DetectorSettings(api_server_addresses=("10.96.0.1",)),
        profiles=profiles,
        pod_metadata=PodMeta(),
        stats=DetectorStats(),
        rules=type(loaded)(bindings=bound.bindings, problems=loaded.problems, rules=loaded.rules),
        catalogue=catalogue,
    )


def test_loaded_rules_evaluate_with_node_agent_field_and_helper_names() -> None:
    profiles = MemoryProfiles()
    profiles.add(MemoryProfile(WEB_KEY, execs={"/usr/bin/python3": []}, syscalls={"read"}))
    d = _detector(profiles)
    alerts = d.evaluate(
        [
            exec_ev("/usr/bin/python3", "python3", comm="python3"),
            exec_ev("/usr/bin/curl", comm="curl", pid=42),
            exec_ev("/dev/shm/x", comm="x"),
            sys_ev("read", "ptrace"),
            tcp_ev("10.96.0.1", 443, comm="curl"),
            tcp_ev("10.96.0.1", 443, type=TcpEventType.ACCEPT),
        ]
    )
    assert d.stats.errors == {}
    got = [(str(a.rule.id), a.message) for a in alerts if a.rule.id.startswith("KS-")]
    assert ("KS-R0001", "Unexpected process launched: curl with PID 42") in got
    assert ("KS-R0003", "Unexpected syscall: ptrace") in got
    assert ("KS-R0007", "Kubernetes API used by curl") in got
    assert any(r == "KS-R1000" and "/dev/shm/x" in m for r, m in got)
    assert not any(m.endswith("python3 with PID 100") for _, m in got)
    assert [r for r, _ in got].count("KS-R0007") == 1  # the accept is not OUTGOING


def test_rules_import_prints_loadable_runtime_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "import", str(SAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert "imported 6 rule(s), left out 5" in err
    assert "not imported: R1007 (Crypto miner launched): event type 'randomx'" in err
    target = tmp_path / "imported.yaml"
    target.write_text(out)
    loaded = load_files([target], catalogue=default_catalogue())
    assert loaded.problems == ()
    assert len(loaded.rules) == 6
    assert main(["rules", "list", "--rules", str(target), "KS-R0005", "-o", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["language"] == "cel"
    assert listed["source"] == str(target)


def test_rules_import_of_a_file_without_rules_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "binding.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert main(["rules", "import", str(other)]) == 2
    assert "no Kubescape Rules document" in capsys.readouterr().err
