"""Exceptions: scoped allow-lists and silenced rules, independent of profiles; fix snippets."""

from __future__ import annotations

import re

import yaml

from detector.bindings import API_VERSION as BINDING_API
from detector.evaluating import Detector
from detector.ruleset import RuleSet
from gadgetclient.events import Event
from profiler.readmodel import ProfileStatus
from tests.detector.builders import (
    DB,
    DB_KEY,
    WEB_KEY,
    dns_ev,
    exec_ev,
    make_detector,
    open_ev,
    ruleset,
    run,
    sys_ev,
    tcp_ev,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles

BINDING = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: all}}
spec:
  rules: [{{ruleID: R0001}}, {{ruleID: R0002}}, {{ruleID: R0003}}, {{ruleID: R0005}},
          {{ruleID: R0011}}, {{ruleID: R1000}}]
"""

EXCEPTIONS = """\
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {name: web-allowances, namespace: shop}
spec:
  reason: payment provider and tooling
  workloads: [{kind: Deployment, name: web, containers: [app]}]
  allow:
    execs: [/usr/bin/curl, /opt/tools/]
    paths: [/var/cache/app]
    domains: [api.stripe.com, "*.example.org"]
    addresses: [{address: 45.33.32.0/24, ports: [443]}]
    syscalls: [ptrace]
---
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {name: quiet-files}
spec:
  podSelector: {matchLabels: {app: db}}
  silenceRules: [Unexpected file access]
"""


def detector(profiles: MemoryProfiles) -> Detector:
    d = make_detector(BINDING, profiles=profiles)
    d.update_rules("exceptions", ruleset(EXCEPTIONS, source="exc.yaml"))
    return d


def both_profiles() -> MemoryProfiles:
    return MemoryProfiles([MemoryProfile(WEB_KEY), MemoryProfile(DB_KEY)])


def test_allowances_apply_in_scope_only() -> None:
    d = detector(both_profiles())
    events: list[Event] = [
        exec_ev("/usr/bin/curl"),  # allowed
        exec_ev("/opt/tools/bin/x"),  # allowed (dir/)
        exec_ev("/usr/bin/curlx"),  # not: exec entries are exact
        open_ev("/var/cache/app/1"),  # allowed
        dns_ev("api.stripe.com"),  # allowed
        dns_ev("a.b.example.org"),  # allowed by wildcard
        dns_ev("example.org"),  # not: *. means sub-domains
        tcp_ev("45.33.32.7", 443),  # allowed
        tcp_ev("45.33.32.7", 80),  # not: port
        sys_ev("ptrace"),  # allowed
        exec_ev("/usr/bin/curl", c=DB),  # other workload: not allowed
    ]
    assert run(d, events) == [
        ("R0001", "medium", 1),
        ("R0005", "low", 1),
        ("R0011", "medium", 1),
        ("R0001", "medium", 1),
    ]
    assert d.stats.suppressed[("R0001", "exception")] == 2
    assert d.stats.suppressed[("R0003", "exception")] == 1


def test_silenced_rule_and_signature_rules_respect_allowances() -> None:
    d = detector(both_profiles())
    assert run(d, [open_ev("/etc/x", c=DB), open_ev("/etc/x")]) == [("R0002", "low", 1)]
    assert d.stats.suppressed[("R0002", "exception")] == 1
    d.update_rules(
        "more",
        ruleset("""\
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {name: shm-tool, namespace: shop}
spec:
  rules: [R1000]
  allow: {execs: ["/dev/shm/known-*"]}
"""),
    )
    # R0001 is not covered (the exception names R1000 only); R1000 is, for known-* only.
    assert run(d, [exec_ev("/dev/shm/known-1", t=5), exec_ev("/dev/shm/evil", t=5)]) == [
        ("R0001", "medium", 1),
        ("R0001", "medium", 1),
        ("R1000", "high", 1),
    ]


def test_exceptions_survive_relearning() -> None:
    profiles = both_profiles()
    d = detector(profiles)
    assert run(d, [exec_ev("/usr/bin/curl")]) == []
    # The profile is relearned (new object, learning, then completed again, empty): the
    # exception, which is not part of the profile, still applies.
    profiles.add(MemoryProfile(WEB_KEY, status=ProfileStatus.LEARNING))
    assert run(d, [exec_ev("/usr/bin/curl", t=1)]) == []
    profiles.add(MemoryProfile(WEB_KEY, name="relearned"))
    assert run(d, [exec_ev("/usr/bin/curl", t=2), exec_ev("/bin/nc", t=2)]) == [
        ("R0001", "medium", 1)
    ]


def test_fix_suggestion_is_an_applicable_exception_that_silences_the_alert() -> None:
    d = make_detector(BINDING, profiles=both_profiles())
    hostile = "/tmp/x\n\x1b[31mfake-log-line"
    [alert] = d.evaluate([exec_ev(hostile)])
    fix = alert.fix_suggestion
    assert fix.startswith("# If this is expected behaviour")
    doc = yaml.safe_load(fix)
    assert doc["kind"] == "RuntimeAlertException"
    assert re.fullmatch(r"allow-web-r0001-[0-9a-f]{8}", doc["metadata"]["name"])
    assert doc["metadata"]["namespace"] == "shop"
    workload = {"kind": "Deployment", "name": "web", "containers": ["app"]}
    assert doc["spec"]["workloads"] == [workload]
    # Process-scoped first: the exec's actor is its parent (comm "init", no exec seen).
    assert doc["spec"]["allow"] == {"execs": [hostile], "fromSource": [{"path": "init"}]}
    # The workload-wide form follows as comments: uncommented, it is an exception too.
    wide_text = fix.split("# Or, for every process of the workload container (wider):\n")[1]
    wide = yaml.safe_load("".join(line[2:] + "\n" for line in wide_text.splitlines()))
    assert wide["spec"]["allow"] == {"execs": [hostile]}
    assert wide["metadata"]["name"] != doc["metadata"]["name"]
    # Applying the snippet verbatim silences exactly this finding.
    applied = ruleset(fix, source="fix.yaml")
    assert applied.problems == ()
    d.update_rules("fix", applied)
    assert run(d, [exec_ev(hostile, t=7200_000_000_000)]) == []
    assert run(d, [exec_ev("/bin/other", t=7200_000_000_000)]) == [("R0001", "medium", 1)]


def test_exception_problems_are_located() -> None:
    rs: RuleSet = ruleset(
        """\
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {name: bad}
spec:
  allow:
    domains: [ok.example]
    addresses: [not-an-ip, {address: 10.0.0.0/8, ports: [70000]}]
    files: [/x]
  silenceRules: [R9999]
""",
        source="e.yaml",
    )
    assert [str(p) for p in rs.problems] == [
        "e.yaml:9: RuntimeAlertException bad: spec.silenceRules[0]: error: unknown rule "
        "'R9999'; see `gadgetwatch rules list`",
        "e.yaml:8: RuntimeAlertException bad: spec.allow.files: error: unknown kind (known: "
        "addresses, capabilities, domains, execs, paths, syscalls)",
        "e.yaml:7: RuntimeAlertException bad: spec.allow.addresses[0]: error: 'not-an-ip' does "
        "not appear to be an IPv4 or IPv6 network; entry ignored",
        "e.yaml:7: RuntimeAlertException bad: spec.allow.addresses[1]: error: ports must be a "
        "list of integers 1-65535; entry ignored",
    ]
    assert len(rs.exceptions) == 1
