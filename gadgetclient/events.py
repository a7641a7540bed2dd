"""Typed events: what gadgetwatch consumes from Inspektor Gadget, independent of IG's wire format.

The generic decoder (`decoding.py`) turns each payload into the same dict that
`ig run <gadget> -o json` prints. `mapping.py` then maps those dicts to the frozen, slotted
dataclasses below, tolerating the differences between gadget versions. Nothing downstream of
this module sees protobuf or IG field names: the profiler and the detector only know these types.

Time is event time: ``timestamp_ns`` is IG's ``timestamp_raw`` (wall-clock nanoseconds since the
epoch, rewritten by IG's timestamp formatter), never the agent's clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, NewType

ContainerId = NewType("ContainerId", str)


class EventKind(enum.StrEnum):
    """The event types the profiler and the detector read. Rules are indexed by these."""

    EXEC = "exec"
    OPEN = "open"
    TCP = "tcp"
    DNS = "dns"
    CAPABILITY = "capability"
    SYSCALLS = "syscalls"


@dataclass(frozen=True, slots=True)
class Container:
    """Who the event belongs to: the Kubernetes and container-runtime identity IG enriched it with.

    Empty strings mean "IG did not know" (a host process, or a plain `ig daemon` without
    Kubernetes). ``owner_kind``/``owner_name`` are IG's ``k8s.owner``: the *top-level* owner.
    IG (`pkg/container-collection`, ``ownerReferenceEnrichment``) starts at the pod and follows
    the controller reference while its kind is one of Deployment, ReplicaSet, StatefulSet,
    DaemonSet, Job, CronJob, ReplicationController, so a Deployment's pod carries
    ``Deployment``, a CronJob's run ``CronJob``, and a bare ReplicaSet or Job itself. When a
    lookup on that walk fails (the gadget's RBAC, an unreachable API server) IG sends no owner
    at all. Captures from other producers may carry a direct owner; `profiler.identity`
    resolves every case to the same workload.
    """

    node: str = ""
    namespace: str = ""
    pod: str = ""
    container: str = ""
    container_id: ContainerId = ContainerId("")
    image: str = ""
    image_digest: str = ""
    owner_kind: str = ""
    owner_name: str = ""
    mntns_id: int = 0
    #: Pod labels as sorted (key, value) pairs (IG sends "k=v,k2=v2"); hashable on purpose.
    pod_labels: tuple[tuple[str, str], ...] = ()
    #: Container start, ns since the epoch (IG ``runtime.containerStartedAt``); 0 when unknown.
    started_at_ns: int = 0
    host_network: bool = False

    @property
    def key(self) -> ContainerId:
        """The routing key: per-container ordering is kept per this value."""
        if self.container_id:
            return self.container_id
        return ContainerId(f"{self.node}/{self.namespace}/{self.pod}/{self.container}")

    def labels(self) -> dict[str, str]:
        return dict(self.pod_labels)


@dataclass(frozen=True, slots=True)
class Process:
    """The process that caused the event. Fields a gadget does not report are empty or 0."""

    pid: int = 0
    tid: int = 0
    comm: str = ""
    exe: str = ""
    args: tuple[str, ...] = ()
    cwd: str = ""
    uid: int = 0
    gid: int = 0
    ppid: int = 0
    pcomm: str = ""


@dataclass(frozen=True, slots=True)
class ExecEvent:
    kind: ClassVar[EventKind] = EventKind.EXEC
    timestamp_ns: int
    container: Container
    process: Process
    #: The executed file (IG ``exepath``, which needs trace_exec's ``paths`` param); without
    #: it ``unresolved:<argv[0]>`` (`gadget_params.UNRESOLVED_PREFIX`), never a bare argv[0].
    path: str
    args: tuple[str, ...]
    cwd: str = ""
    error: str = ""
    #: True when the executable lives in the container's overlayfs upper layer (not in the image).
    upper_layer: bool = False
    parent_exe: str = ""
    tty: bool = False


@dataclass(frozen=True, slots=True)
class OpenEvent:
    kind: ClassVar[EventKind] = EventKind.OPEN
    timestamp_ns: int
    container: Container
    process: Process
    #: Resolved path (IG ``fpath`` with --paths) or the path as passed (``fname``), lexically
    #: normalised against the process's cwd (`gadgetclient.pathnorm`).
    path: str
    #: Open flags, e.g. ("O_RDONLY", "O_CLOEXEC").
    flags: tuple[str, ...]
    flags_raw: int = 0
    fd: int = 0
    error: str = ""
    mode: str = ""


class TcpEventType(enum.StrEnum):
    CONNECT = "connect"
    ACCEPT = "accept"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """IG's KubeIPResolver view of an endpoint: kind is "pod", "svc" or "raw" (or "")."""

    kind: str = ""
    name: str = ""
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TcpEvent:
    kind: ClassVar[EventKind] = EventKind.TCP
    timestamp_ns: int
    container: Container
    process: Process
    type: TcpEventType
    src_addr: str
    src_port: int
    dst_addr: str
    dst_port: int
    #: "TCP" always for trace_tcp; kept for the profile's (address, port, protocol) entries.
    proto: str = "TCP"
    ip_version: int = 4
    src_peer: PeerIdentity = field(default_factory=PeerIdentity)
    dst_peer: PeerIdentity = field(default_factory=PeerIdentity)
    error: str = ""


@dataclass(frozen=True, slots=True)
class DnsEvent:
    kind: ClassVar[EventKind] = EventKind.DNS
    timestamp_ns: int
    container: Container
    process: Process
    #: Query name without the trailing dot, lower-cased.
    name: str
    is_response: bool
    qtype: str = ""
    rcode: str = ""
    #: Answers of a response (A/AAAA), in IG's order.
    addresses: tuple[str, ...] = ()
    nameserver: str = ""
    dst_addr: str = ""
    dst_port: int = 0


@dataclass(frozen=True, slots=True)
class CapabilityEvent:
    kind: ClassVar[EventKind] = EventKind.CAPABILITY
    timestamp_ns: int
    container: Container
    process: Process
    #: e.g. "CAP_SYS_ADMIN"
    capability: str
    #: e.g. "SYS_MOUNT" (IG's formatter output, "SYS_" + upper-case name)
    syscall: str = ""
    capable: bool = True
    audit: int = 1


@dataclass(frozen=True, slots=True)
class SyscallsEvent:
    """advise_seccomp's per-container syscall set for one rolling window."""

    kind: ClassVar[EventKind] = EventKind.SYSCALLS
    timestamp_ns: int
    container: Container
    process: Process
    #: Lower-case syscall names, e.g. frozenset({"read", "write"}).
    syscalls: frozenset[str]
    window_start_ns: int = 0
    window_end_ns: int = 0


Event = ExecEvent | OpenEvent | TcpEvent | DnsEvent | CapabilityEvent | SyscallsEvent
