"""Event builders and fixtures shared by the profiler tests (no mocks: real stores, real files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from gadgetclient.events import (
    CapabilityEvent,
    Container,
    ContainerId,
    DnsEvent,
    ExecEvent,
    OpenEvent,
    PeerIdentity,
    Process,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from profiler.cache import ProfileCache
from profiler.config import ProfilerSettings
from profiler.learning import Learner
from profiler.stats import ProfilerStats
from profiler.store import ProfileStore

S = 1_000_000_000
T0 = 1_700_000_000 * S


def container(
    *,
    cid: str = "c1",
    pod: str = "web-5d4f-abcde",
    name: str = "nginx",
    namespace: str = "shop",
    owner: tuple[str, str] = ("ReplicaSet", "web-5d4f"),
    started: int = T0,
    digest: str = "sha256:aaa",
    template_hash: str = "5d4f",
    labels: Sequence[tuple[str, str]] = (("app", "web"),),
) -> Container:
    all_labels = tuple(sorted((*labels, ("pod-template-hash", template_hash))))
    return Container(
        node="n1",
        namespace=namespace,
        pod=pod,
        container=name,
        container_id=ContainerId(cid),
        image="registry.example/web:1.0",
        image_digest=digest,
        owner_kind=owner[0],
        owner_name=owner[1],
        pod_labels=all_labels,
        started_at_ns=started,
    )


PROC = Process(pid=42, comm="nginx", exe="/usr/sbin/nginx", uid=101)


def exec_(c: Container, ts: int, path: str, *args: str, uid: int = 101) -> ExecEvent:
    return ExecEvent(
        timestamp_ns=ts,
        container=c,
        process=Process(pid=42, uid=uid),
        path=path,
        args=(path, *args),
    )


def open_(c: Container, ts: int, path: str, *flags: str) -> OpenEvent:
    return OpenEvent(timestamp_ns=ts, container=c, process=PROC, path=path, flags=flags)


def connect(
    c: Container, ts: int, addr: str, port: int, peer: PeerIdentity | None = None
) -> TcpEvent:
    return TcpEvent(
        timestamp_ns=ts,
        container=c,
        process=PROC,
        type=TcpEventType.CONNECT,
        src_addr="10.0.0.5",
        src_port=40000,
        dst_addr=addr,
        dst_port=port,
        dst_peer=peer or PeerIdentity(),
    )


def accept(c: Container, ts: int, port: int, client: str) -> TcpEvent:
    return TcpEvent(
        timestamp_ns=ts,
        container=c,
        process=PROC,
        type=TcpEventType.ACCEPT,
        src_addr="10.0.0.5",
        src_port=port,
        dst_addr=client,
        dst_port=51000,
    )


def dns(c: Container, ts: int, name: str, *addresses: str) -> DnsEvent:
    return DnsEvent(
        timestamp_ns=ts,
        container=c,
        process=PROC,
        name=name,
        is_response=bool(addresses),
        addresses=addresses,
    )


def cap(c: Container, ts: int, capability: str, syscall: str) -> CapabilityEvent:
    return CapabilityEvent(
        timestamp_ns=ts, container=c, process=PROC, capability=capability, syscall=syscall
    )


def syscalls(c: Container, ts: int, *names: str) -> SyscallsEvent:
    return SyscallsEvent(timestamp_ns=ts, container=c, process=PROC, syscalls=frozenset(names))


class FakePods:
    """A `PodMetadata` with fixed answers: what `gadgetwatch.k8s.PodCache` would return."""

    def __init__(
        self,
        *,
        owners: Mapping[tuple[str, str], tuple[str, str]] | None = None,
        annotations: Mapping[str, Mapping[str, str]] | None = None,
        mounts: Sequence[str] = (),
        pod_ips: Mapping[str, str] | None = None,
    ) -> None:
        self._owners = dict(owners or {})
        self._annotations = dict(annotations or {})
        self._mounts = tuple(mounts)
        self._pod_ips = dict(pod_ips or {})

    def top_owner(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        return self._owners.get((kind, name), (kind, name))

    def annotations(self, namespace: str, pod: str) -> Mapping[str, str]:
        return self._annotations.get(pod, {})

    def labels(self, namespace: str, pod: str) -> Mapping[str, str]:
        return {}

    def volume_mounts(self, namespace: str, pod: str, container: str) -> Sequence[str]:
        return self._mounts

    def pod_ip(self, namespace: str, pod: str) -> str:
        return self._pod_ips.get(pod, "")


def settings(**overrides: Any) -> ProfilerSettings:
    base: dict[str, Any] = {"learning_period": timedelta(hours=1)}
    base.update(overrides)
    return ProfilerSettings(**base)


def learner(
    store: ProfileStore,
    *,
    cache: ProfileCache | None = None,
    pods: FakePods | None = None,
    attached_at_ns: int = 0,
    **overrides: Any,
) -> Learner:
    stats = ProfilerStats()
    return Learner(
        settings=settings(**overrides),
        store=store,
        cache=cache if cache is not None else ProfileCache(stats),
        pod_metadata=pods or FakePods(),
        stats=stats,
        attached_at_ns=attached_at_ns,
    )
