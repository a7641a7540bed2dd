"""Bindings: selectors, parameters, severity override, merging, precise load problems."""

from __future__ import annotations

from detector.bindings import API_VERSION as BINDING_API
from detector.bindings import LEGACY_API_VERSION as LEGACY_BINDING_API
from detector.loading import Level
from gadgetclient.events import Container, ContainerId
from tests.detector.builders import (
    DB,
    WEB,
    WEB_KEY,
    binding_yaml,
    exec_ev,
    make_detector,
    open_ev,
    ruleset,
    run,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles

TWO_BINDINGS = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: shop-only}}
spec:
  namespaceSelector:
    matchLabels: {{kubernetes.io/metadata.name: shop}}
  podSelector:
    matchExpressions:
    - {{key: app, operator: In, values: [web, api]}}
    - {{key: tier, operator: DoesNotExist}}
  rules:
  - ruleName: exec from MALICIOUS source
    severity: critical
---
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: not-shop}}
spec:
  namespaceSelector:
    matchExpressions:
    - {{key: kubernetes.io/metadata.name, operator: NotIn, values: [shop]}}
  rules:
  - ruleTags: [fileless]
"""


def test_selectors_bind_rules_per_namespace_and_pod_labels() -> None:
    d = make_detector(TWO_BINDINGS)
    events = [
        exec_ev("/dev/shm/a"),  # shop/web: R1000 bound, severity overridden
        exec_ev("/proc/self/fd/3"),  # shop/web: R1005 not bound here
        exec_ev("/dev/shm/a", c=DB),  # data/db: R1000 not bound
        exec_ev("/proc/self/fd/3", c=DB),  # data/db: R1005 via tag
    ]
    assert run(d, events) == [("R1000", "critical", 1), ("R1005", "high", 1)]


def test_exists_and_does_not_exist() -> None:
    tiered = Container(
        namespace="shop",
        pod="web-x",
        container="app",
        container_id=ContainerId("c3"),
        owner_kind="Pod",
        owner_name="web-x",
        pod_labels=(("app", "web"), ("tier", "front")),
    )
    d = make_detector(TWO_BINDINGS)
    assert run(d, [exec_ev("/dev/shm/a", c=tiered)]) == []


def test_more_specific_binding_overrides_parameters_and_severity_rule_runs_once() -> None:
    text = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: zz-everyone}}
spec:
  rules:
  - ruleID: R0002
    parameters: {{ignorePrefixes: [/etc]}}
---
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: aa-shop}}
spec:
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: shop}}}}
  rules:
  - ruleID: R0002
    severity: HIGH
    parameters: {{ignorePrefixes: [/var]}}
"""
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY)])
    d = make_detector(text, profiles=profiles)
    # shop: the specific binding's /var wins over /etc; one alert per finding, not two.
    assert run(d, [open_ev("/var/x"), open_ev("/etc/x")]) == [("R0002", "high", 1)]


def test_invalid_binding_is_reported_precisely_and_others_keep_working() -> None:
    text = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: broken}}
spec:
  podSelector:
    matchExpressions:
    - {{key: app, operator: Near, values: [web]}}
  rules:
  - ruleID: R1000
---
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: partly-broken}}
spec:
  rules:
  - ruleName: No such rule
  - ruleID: R1000
    ruleName: Exec from malicious source
  - ruleID: R1005
    severity: extreme
    parameters: {{nonsense: 1}}
  - ruleName: XMR Crypto Mining Detection
  - ruleName: Port forward
  - ruleID: R1000
    parameters: {{paths: not-a-list}}
"""
    rs = ruleset(text, source="b.yaml")
    problems = [str(p) for p in rs.problems]
    assert problems == [
        "b.yaml:7: RuntimeRuleAlertBinding broken: spec.podSelector.matchExpressions[0].operator:"
        " error: unknown operator 'Near' (valid: In, NotIn, Exists, DoesNotExist)",
        "b.yaml:16: RuntimeRuleAlertBinding partly-broken: spec.rules[0].ruleName: error: "
        "unknown rule 'No such rule'; see `gadgetwatch rules list`",
        "b.yaml:17: RuntimeRuleAlertBinding partly-broken: spec.rules[1]: error: needs exactly "
        "one of ruleName, ruleID, ruleTags (got ruleName and ruleID)",
        "b.yaml:20: RuntimeRuleAlertBinding partly-broken: spec.rules[2].severity: error: "
        "unknown severity 'extreme'; valid: info, low, medium, high, critical; the rule keeps "
        "its own severity",
        "b.yaml:21: RuntimeRuleAlertBinding partly-broken: spec.rules[2].parameters.nonsense: "
        "warning: unknown parameter for R1005 (known: none), ignored",
        "b.yaml:22: RuntimeRuleAlertBinding partly-broken: spec.rules[3].ruleName: warning: "
        "rule R1007 (XMR Crypto Mining Detection) is unavailable: needs a RandomX instruction "
        "tracer; IG's trace_exec/open/tcp/dns/capabilities and advise_seccomp gadgets do not "
        "observe it (R1008 and R1009 cover miners by domain and port)",
        "b.yaml:23: RuntimeRuleAlertBinding partly-broken: spec.rules[4].ruleName: warning: "
        "rule R2001 (Port forward to pod) is unavailable: an API-server event "
        "(PodPortForwardOptions admission), not a node event; use Kubernetes audit logs",
        "b.yaml:25: RuntimeRuleAlertBinding partly-broken: spec.rules[5].parameters.paths: "
        "error: must be a list, got str; the default is used",
    ]
    assert [b.name for b in rs.bindings] == ["partly-broken"]
    d = make_detector(text)
    assert d.stats.load_errors == {"initial": 5}
    assert d.stats.load_warnings == {"initial": 3}
    # The surviving entries work: R1005 at its own severity, R1000 with default paths.
    assert run(d, [exec_ev("/proc/self/fd/3"), exec_ev("/dev/shm/x")]) == [
        ("R1005", "high", 1),
        ("R1000", "high", 1),
    ]


def test_yaml_syntax_error_keeps_earlier_documents() -> None:
    text = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: ok}}
spec: {{rules: [{{ruleID: R1000}}]}}
---
spec: [unclosed
"""
    rs = ruleset(text, source="f.yaml")
    assert [b.name for b in rs.bindings] == ["ok"]
    assert len(rs.problems) == 1
    assert str(rs.problems[0]).startswith("f.yaml:7: error: invalid YAML")


def test_node_agent_and_kubecop_rule_names_resolve() -> None:
    text = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: node-agent-style}}
spec:
  rules:
  - ruleName: Process executed from malicious source
  - ruleName: Files Access Anomalies in container
  - ruleName: Crypto miner launched
"""
    rs = ruleset(text)
    assert [r.rule.id for r in rs.bindings[0].rules] == ["R1000", "R0002"]
    assert [p.level.value for p in rs.problems] == ["warning"]


def test_no_binding_means_builtin_default_binding_unless_disabled() -> None:
    assert run(make_detector(None), [exec_ev("/dev/shm/x")]) == [("R1000", "high", 1)]
    off = make_detector(None, builtin_default_binding=False)
    assert run(off, [exec_ev("/dev/shm/x")]) == []


def test_rules_replaced_at_runtime_per_source() -> None:
    d = make_detector(None, builtin_default_binding=False)
    d.update_rules(
        "file",
        ruleset(f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: a}}
spec: {{rules: [{{ruleID: R1000}}]}}
"""),
    )
    assert run(d, [exec_ev("/dev/shm/x", t=1)]) == [("R1000", "high", 1)]
    d.update_rules(
        "file",
        ruleset(f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: a}}
spec: {{rules: [{{ruleID: R1005}}]}}
"""),
    )
    assert run(d, [exec_ev("/dev/shm/y", t=2), exec_ev("/dev/fd/3", t=2)]) == [("R1005", "high", 1)]


def test_labels_from_pod_metadata_when_ig_sent_none() -> None:
    from tests.detector.builders import PodMeta

    bare = Container(
        namespace="shop",
        pod="p1",
        container="app",
        container_id=ContainerId("c9"),
        owner_kind="Pod",
        owner_name="p1",
    )
    d = make_detector(TWO_BINDINGS, pod_meta=PodMeta(labels={"p1": {"app": "api"}}))
    assert run(d, [exec_ev("/dev/shm/a", c=bare)]) == [("R1000", "critical", 1)]
    assert WEB.namespace == "shop"


def test_kubecop_bindings_in_their_group_are_read_as_they_are() -> None:
    """Their schema is a subset of ours: a `kubescape.io/v1` binding file applies unchanged;
    any other apiVersion is a warning located at the field."""
    text = binding_yaml("R0001", name="theirs")
    legacy = ruleset(text.replace(BINDING_API, LEGACY_BINDING_API))
    assert [b.name for b in legacy.bindings] == ["theirs"]
    assert legacy.problems == ()
    other = ruleset(text.replace(BINDING_API, "example.com/v1"))
    assert [b.name for b in other.bindings] == ["theirs"]
    assert [(p.level, p.field) for p in other.problems] == [(Level.WARNING, "apiVersion")]
