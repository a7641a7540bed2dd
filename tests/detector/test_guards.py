"""RuntimeGuard (R3000) and process-scoped exceptions: who acted decides.

The acting process of an open, a connection or a DNS query is known only by its `comm`
unless the detector saw the exec that started the pid; these tests drive both cases, the
fail-closed default for a path pattern without a known executable, hostile fields, the
shipped example guards (loaded by the agent and accepted by the API server's schema), and
the parse errors that must never narrow a guard silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from detector.rules import default_catalogue
from detector.ruleset import load_files
from gadgetclient.events import DnsEvent, Event, ExecEvent, OpenEvent, Process, TcpEvent
from profiler.readmodel import ProfileStatus
from tests.detector.builders import (
    DB,
    SEC,
    T0,
    WEB,
    WEB_KEY,
    binding_yaml,
    dns_ev,
    make_detector,
    ruleset,
    tcp_ev,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles
from tests.standins.fixtures import KubeApi

REPO = Path(__file__).resolve().parents[2]
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"

GUARD = """\
apiVersion: gadgetwatch.io/v1
kind: RuntimeGuard
metadata: {name: token, namespace: shop}
spec:
  reason: only cat reads the token
  resources:
  - paths: [/run/secrets/kubernetes.io/serviceaccount]
    fromSource: [{path: /bin/cat}]
"""


def started(exe: str, pid: int, *, t: int = 0, parent: str = "/bin/sh", ppid: int = 1) -> ExecEvent:
    name = exe.rsplit("/", 1)[-1][:15]
    return ExecEvent(
        timestamp_ns=T0 + t,
        container=WEB,
        process=Process(pid=pid, comm=name, ppid=ppid, pcomm=parent.rsplit("/", 1)[-1]),
        path=exe,
        args=(name,),
        parent_exe=parent,
    )


def opened(path: str, pid: int, comm: str, *, t: int = 0, ppid: int = 1) -> OpenEvent:
    return OpenEvent(
        timestamp_ns=T0 + t,
        container=WEB,
        process=Process(pid=pid, comm=comm, ppid=ppid, pcomm="sh"),
        path=path,
        flags=("O_RDONLY",),
    )


def alerts_of(detector: Any, events: list[Event]) -> list[tuple[str, str]]:
    return [(a.rule.id, a.event.get("actor", "")) for a in detector.evaluate(events)]


def test_only_the_allowed_executable_reads_the_token_without_an_alert() -> None:
    # No binding at all and no profile: the guard alone alerts.
    d = make_detector(binding_yaml("R0001") + "---\n" + GUARD)
    events: list[Event] = [
        started("/bin/cat", 10),
        opened(TOKEN, 10, "cat", t=1),
        started("/bin/dash", 11, t=2),
        opened(TOKEN, 11, "dash", t=3),
        opened(TOKEN, 11, "dash", t=4),  # the same process again: deduplicated
    ]
    found = d.evaluate(events)
    assert [(a.rule.id, a.event["actor"]) for a in found] == [("R3000", "/bin/dash")]
    alert = found[0]
    assert alert.rule.severity.label == "high"
    assert "guard shop/token allows /bin/cat" in alert.message
    assert d.stats.alerts["R3000"] == 1


def test_a_renamed_binary_is_not_the_allowed_one() -> None:
    """`comm` is chosen by the process: a copy of sh named cat is still /tmp/cat."""
    d = make_detector(GUARD)
    assert alerts_of(d, [started("/tmp/cat", 12), opened(TOKEN, 12, "cat", t=1)]) == [
        ("R3000", "/tmp/cat")
    ]


def test_unknown_executable_fails_closed_for_a_path_entry() -> None:
    """No exec seen for the pid (trace_exec off, process older than the agent): a path entry
    cannot be matched, so the guard alerts rather than trusting `comm`."""
    d = make_detector(GUARD)
    assert alerts_of(d, [opened(TOKEN, 13, "cat")]) == [("R3000", "cat")]


def test_a_bare_name_matches_comm_when_the_executable_is_unknown() -> None:
    d = make_detector(GUARD.replace("{path: /bin/cat}", "{path: cat}"))
    assert alerts_of(d, [opened(TOKEN, 13, "cat"), opened(TOKEN, 14, "sh", t=1)]) == [
        ("R3000", "sh")
    ]


def test_parent_narrows_the_allowed_process() -> None:
    guard = GUARD.replace("{path: /bin/cat}", "{path: /bin/cat, parent: /usr/bin/probe}")
    d = make_detector(guard)
    events: list[Event] = [
        started("/usr/bin/probe", 20),
        started("/bin/cat", 21, t=1, parent="/usr/bin/probe", ppid=20),
        opened(TOKEN, 21, "cat", t=2, ppid=20),
        started("/bin/cat", 22, t=3, parent="/bin/sh", ppid=5),
        opened(TOKEN, 22, "cat", t=4, ppid=5),
    ]
    found = d.evaluate(events)
    assert [a.rule.id for a in found] == ["R3000"]
    assert found[0].process.pid == 22


def test_guards_alert_while_learning_and_whatever_the_profile_holds() -> None:
    profiles = MemoryProfiles()
    key = WEB_KEY
    profiles.add(MemoryProfile(key, status=ProfileStatus.LEARNING))
    d = make_detector(GUARD, profiles=profiles)
    assert alerts_of(d, [opened(TOKEN, 30, "sh")]) == [("R3000", "sh")]
    # Completed, with the token in the profile: the guard still alerts for another process.
    profiles.add(MemoryProfile(key, opens={TOKEN: {"O_RDONLY"}}))
    assert alerts_of(d, [opened(TOKEN, 31, "python3", t=3600 * SEC)]) == [("R3000", "python3")]


def test_scope_namespace_and_workloads() -> None:
    d = make_detector(GUARD)
    other = OpenEvent(
        timestamp_ns=T0,
        container=DB,
        process=Process(pid=5, comm="sh"),
        path=TOKEN,
        flags=("O_RDONLY",),
    )
    assert d.evaluate([other]) == []  # the guard lives in shop; db runs in data
    scoped = GUARD.replace("spec:\n", "spec:\n  workloads: [{kind: Deployment, name: other}]\n")
    assert make_detector(scoped).evaluate([opened(TOKEN, 5, "sh")]) == []


def test_exec_guard_names_who_may_run_the_executable() -> None:
    guard = """\
apiVersion: gadgetwatch.io/v1
kind: RuntimeGuard
metadata: {name: kubectl}
spec:
  severity: critical
  resources:
  - execs: [/usr/bin/kubectl]
    fromSource: [{path: /usr/local/bin/deployer}]
"""
    d = make_detector(guard)
    events: list[Event] = [
        started("/usr/bin/kubectl", 40, parent="/usr/local/bin/deployer"),
        started("/usr/bin/kubectl", 41, t=1, parent="/bin/bash"),
    ]
    found = d.evaluate(events)
    assert [(a.rule.id, a.rule.severity.label, a.event["actor"]) for a in found] == [
        ("R3000", "critical", "/bin/bash")
    ]


def test_address_and_domain_guards() -> None:
    guard = """\
apiVersion: gadgetwatch.io/v1
kind: RuntimeGuard
metadata: {name: imds}
spec:
  resources:
  - addresses: [{address: 169.254.169.254, ports: [80]}]
    domains: ["*.internal"]
    fromSource: [{path: /usr/bin/aws}]
"""
    # R2101 (metadata endpoint, per workload) bound out: only the guard speaks here.
    d = make_detector(binding_yaml("R0001") + "---\n" + guard)
    events: list[Event] = [
        started("/usr/bin/aws", 50),
        tcp_ev("169.254.169.254", 80, comm="aws"),
        started("/usr/bin/curl", 51, t=1),
        tcp_ev("169.254.169.254", 443, t=2, comm="curl"),  # another port: not guarded
        tcp_ev("169.254.169.254", 80, t=3, comm="curl"),
        dns_ev("metadata.google.internal", t=4, comm="curl"),
    ]
    # tcp_ev/dns_ev use pid 100: give it the exec it would have had.
    events.insert(0, started("/usr/bin/curl", 100))
    found = d.evaluate(events)
    assert [(a.rule.id, a.event["actor"]) for a in found] == [
        ("R3000", "/usr/bin/curl"),
        ("R3000", "/usr/bin/curl"),
    ]
    assert isinstance(events[-1], DnsEvent)
    assert isinstance(events[-2], TcpEvent)
    assert {a.event["guard"] for a in found} == {"imds"}


def test_hostile_actor_and_path_reach_the_message_escaped() -> None:
    d = make_detector(GUARD)
    evil_exe = "/tmp/\n{evil}\x1b[2J"
    found = d.evaluate([started(evil_exe, 60), opened(TOKEN, 60, "x", t=1)])
    (alert,) = found
    for ch in "\n\x1b":
        assert ch not in alert.message
        assert ch not in alert.event["actor"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("resources: []", "spec.resources: error: is required"),
        ("resources: [{paths: [relative]}]", "must be an absolute path"),
        ("resources: [{paths: [/etc/x], fromSource: [cat]}]", "must be a mapping {path, parent}"),
        ("resources: [{paths: [/etc/x], fromSource: [{exe: /bin/cat}]}]", "unknown fields"),
        ("resources: [{fromSource: []}]", "guards nothing"),
        ("resources: [{paths: [/etc/x], color: red}]", "unknown fields ['color']"),
        ("severity: HIGHEST\n  resources: [{paths: [/etc/x]}]", "unknown severity"),
        ("resources: [{addresses: [not-an-ip]}]", "entry ignored"),
    ],
)
def test_broken_guards_are_refused_not_narrowed(spec: str, error: str) -> None:
    head = "apiVersion: gadgetwatch.io/v1\nkind: RuntimeGuard\nmetadata: {name: g}\n"
    text = f"{head}spec:\n  {spec}\n"
    loaded = ruleset(text)
    assert loaded.guards == ()
    assert any(error in str(p) for p in loaded.problems), [str(p) for p in loaded.problems]


def test_a_binding_cannot_bind_the_guard_rule() -> None:
    loaded = ruleset(binding_yaml("R3000", "R0001"))
    (binding,) = loaded.bindings
    assert [r.rule.id for r in binding.rules] == ["R0001"]
    assert any("switched on by RuntimeGuard" in str(p) for p in loaded.problems)
    assert default_catalogue().lookup("R3000") is not None  # exceptions may name it


# -- process-scoped exceptions -----------------------------------------------------------------

EXCEPTION = """\
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata: {name: cat-may, namespace: shop}
spec:
  rules: [R3000]
  allow:
    paths: [/var/run/secrets/kubernetes.io/serviceaccount/token]
    fromSource: [{path: /usr/bin/python3*}]
"""


def test_process_scoped_exception_suppresses_only_for_its_process() -> None:
    d = make_detector(GUARD + "---\n" + EXCEPTION)
    events: list[Event] = [
        started("/usr/bin/python3.12", 70),
        opened(TOKEN, 70, "python3"),
        started("/bin/sh", 71, t=1),
        opened(TOKEN, 71, "sh", t=2),
    ]
    assert alerts_of(d, events) == [("R3000", "/bin/sh")]
    assert d.stats.suppressed[("R3000", "exception")] == 1


def test_exceptions_without_from_source_keep_their_meaning() -> None:
    wide = EXCEPTION.replace("    fromSource: [{path: /usr/bin/python3*}]\n", "")
    d = make_detector(GUARD + "---\n" + wide)
    assert alerts_of(d, [opened(TOKEN, 72, "sh"), opened(TOKEN, 73, "anything", t=1)]) == []


def test_anomaly_fix_suggestion_is_process_scoped_first_and_silences_only_that_process() -> None:
    profiles = MemoryProfiles()
    profiles.add(MemoryProfile(WEB_KEY, opens={"/app/main.py": {"O_RDONLY"}}))
    d = make_detector(binding_yaml("R0002"), profiles=profiles)
    (alert,) = d.evaluate([started("/usr/bin/pg_dump", 80), opened("/data/db.sql", 80, "pg_dump")])
    doc = yaml.safe_load(alert.fix_suggestion)
    assert doc["spec"]["allow"] == {
        "paths": ["/data/db.sql"],
        "fromSource": [{"path": "/usr/bin/pg_dump"}],
    }
    d.update_rules("fix", ruleset(alert.fix_suggestion))
    later = 7200 * SEC
    events: list[Event] = [
        opened("/data/db.sql", 80, "pg_dump", t=later),
        started("/usr/bin/curl", 81, t=later),
        opened("/data/db.sql", 81, "curl", t=later + 1),
    ]
    assert [a.process.comm for a in d.evaluate(events)] == ["curl"]


def test_shipped_example_guards_load_and_the_api_server_accepts_them(kube_api: KubeApi) -> None:
    loaded = load_files([REPO / "deploy" / "guards"], catalogue=default_catalogue())
    assert loaded.problems == ()
    assert {g.name for g in loaded.guards} == {
        "service-account-token",
        "etc-shadow",
        "container-runtime-sockets",
        "cloud-metadata",
    }
    api: Any = client.CustomObjectsApi(kube_api.api_client())
    client.CoreV1Api(kube_api.api_client()).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="shop"))
    )
    for path in sorted((REPO / "deploy" / "guards").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        stored = api.create_namespaced_custom_object(
            "gadgetwatch.io", "v1", "shop", "runtimeguards", doc, field_validation="Strict"
        )
        assert stored["spec"] == doc["spec"], path.name


def test_the_api_server_rejects_a_severity_the_agent_rejects(kube_api: KubeApi) -> None:
    doc = {
        "apiVersion": "gadgetwatch.io/v1",
        "kind": "RuntimeGuard",
        "metadata": {"name": "g", "namespace": "shop"},
        "spec": {"severity": "HIGHEST", "resources": [{"paths": ["/etc/x"]}]},
    }
    assert ruleset(yaml.safe_dump(doc)).guards == ()
    client.CoreV1Api(kube_api.api_client()).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="shop"))
    )
    api: Any = client.CustomObjectsApi(kube_api.api_client())
    with pytest.raises(client.ApiException) as err:
        api.create_namespaced_custom_object(
            "gadgetwatch.io", "v1", "shop", "runtimeguards", doc, field_validation="Strict"
        )
    assert err.value.status == 422
