"""Event builders and a detector factory for the detector tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detector.bindings import API_VERSION as BINDING_API
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import default_catalogue
from detector.ruleset import RuleSet, load_text
from detector.stats import DetectorStats
from gadgetclient.events import (
    CapabilityEvent,
    Container,
    ContainerId,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    PeerIdentity,
    Process,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from profiler.identity import WorkloadKey
from tests.detector.profiles import MemoryProfiles

SEC = 1_000_000_000
T0 = 1_767_225_600 * SEC  # 2026-01-01T00:00:00Z

WEB = Container(
    node="node-1",
    namespace="shop",
    pod="web-5d4f9-abcde",
    container="app",
    container_id=ContainerId("c0ffee01"),
    image="registry.example/web:1.2",
    owner_kind="ReplicaSet",
    owner_name="web-5d4f9",
    pod_labels=(("app", "web"), ("pod-template-hash", "5d4f9")),
)
WEB_KEY = WorkloadKey("shop", "Deployment", "web", "app")

DB = Container(
    node="node-1",
    namespace="data",
    pod="db-0",
    container="postgres",
    container_id=ContainerId("c0ffee02"),
    image="postgres:16",
    owner_kind="StatefulSet",
    owner_name="db",
    pod_labels=(("app", "db"),),
)
DB_KEY = WorkloadKey("data", "StatefulSet", "db", "postgres")


class PodMeta:
    """Test `PodMetadata`: owners resolve like the pod cache would; mounts per container."""

    def __init__(
        self,
        mounts: Mapping[str, Sequence[str]] | None = None,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        pod_ips: Mapping[str, str] | None = None,
    ) -> None:
        self.mounts = dict(mounts or {})
        self.pod_labels = dict(labels or {})
        self.pod_ips = dict(pod_ips or {})

    def top_owner(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        if kind == "ReplicaSet":
            return "Deployment", name.rsplit("-", 1)[0]
        return kind, name

    def annotations(self, namespace: str, pod: str) -> Mapping[str, str]:
        return {}

    def labels(self, namespace: str, pod: str) -> Mapping[str, str]:
        return self.pod_labels.get(pod, {})

    def volume_mounts(self, namespace: str, pod: str, container: str) -> Sequence[str]:
        return self.mounts.get(container, ())

    def pod_ip(self, namespace: str, pod: str) -> str:
        return self.pod_ips.get(pod, "")


def proc(comm: str = "app", pid: int = 100, **kw: Any) -> Process:
    return Process(pid=pid, comm=comm, ppid=kw.pop("ppid", 1), pcomm=kw.pop("pcomm", "init"), **kw)


def exec_ev(path: str, *args: str, t: int = 0, c: Container = WEB, **kw: Any) -> ExecEvent:
    comm = kw.pop("comm", path.rsplit("/", 1)[-1][:15])
    return ExecEvent(
        timestamp_ns=T0 + t,
        container=c,
        process=proc(comm, kw.pop("pid", 100)),
        path=path,
        args=(path, *args),
        **kw,
    )


def open_ev(path: str, *flags: str, t: int = 0, c: Container = WEB, comm: str = "app") -> OpenEvent:
    return OpenEvent(
        timestamp_ns=T0 + t,
        container=c,
        process=proc(comm),
        path=path,
        flags=flags or ("O_RDONLY",),
    )


def tcp_ev(
    addr: str,
    port: int,
    *,
    t: int = 0,
    c: Container = WEB,
    comm: str = "app",
    peer: PeerIdentity | None = None,
    type: TcpEventType = TcpEventType.CONNECT,
) -> TcpEvent:
    return TcpEvent(
        timestamp_ns=T0 + t,
        container=c,
        process=proc(comm),
        type=type,
        src_addr="10.0.0.5",
        src_port=40000,
        dst_addr=addr,
        dst_port=port,
        dst_peer=peer or PeerIdentity(),
    )


def dns_ev(name: str, *, t: int = 0, c: Container = WEB, comm: str = "app") -> DnsEvent:
    return DnsEvent(
        timestamp_ns=T0 + t,
        container=c,
        process=proc(comm),
        name=name,
        is_response=False,
        qtype="A",
    )


def cap_ev(cap: str, *, t: int = 0, c: Container = WEB, comm: str = "app") -> CapabilityEvent:
    return CapabilityEvent(
        timestamp_ns=T0 + t, container=c, process=proc(comm), capability=cap, syscall="SYS_SETUID"
    )


def sys_ev(*names: str, t: int = 0, c: Container = WEB) -> SyscallsEvent:
    return SyscallsEvent(
        timestamp_ns=T0 + t, container=c, process=Process(), syscalls=frozenset(names)
    )


def binding_yaml(*rules: str, name: str = "test", extra: str = "") -> str:
    lines = "\n".join(f"  - ruleID: {r}" for r in rules)
    return (
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\n"
        f"metadata: {{name: {name}}}\nspec:\n  rules:\n{lines}\n{extra}"
    )


def ruleset(text: str, source: str = "test.yaml") -> RuleSet:
    return load_text(text, source=source, catalogue=default_catalogue())


def make_detector(
    rules_yaml: str | None = None,
    *,
    profiles: MemoryProfiles | None = None,
    pod_meta: PodMeta | None = None,
    stats: DetectorStats | None = None,
    cluster_name: str = "",
    **settings: Any,
) -> Detector:
    return Detector(
        settings=DetectorSettings(**settings),
        profiles=profiles or MemoryProfiles(),
        pod_metadata=pod_meta or PodMeta(),
        stats=stats or DetectorStats(),
        rules=None if rules_yaml is None else ruleset(rules_yaml),
        cluster_name=cluster_name,
    )


def run(detector: Detector, events: Sequence[Event]) -> list[tuple[str, str, int]]:
    """(rule id, severity, count) per alert, in order."""
    return [(a.rule.id, a.rule.severity.label, a.dedup.count) for a in detector.evaluate(events)]
