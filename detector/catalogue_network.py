"""gadgetwatch's own network rules (R21xx): lateral movement and two classic next steps.

The predecessors' R0011 ignores private destinations, because pod and Service addresses churn:
a compromised pod could reach the kubelet, another namespace's database or any Service
without an alert. These rules close that gap without comparing addresses that churn:

- R2100 (anomaly) compares the *identity* of an in-cluster peer (`profiler.identity.peer_key`:
  the peer pod's top-level workload, the Service, or, where IG names nothing, the address)
  and the port with the identities the completed profile connected to;
- R2101 (signature) flags the cloud instance-metadata and credential endpoints, the usual
  step from a pod to the node's cloud identity;
- R2102 (signature) flags a connection to the kubelet's API port on an address that is not a
  pod or Service, i.e. a node.

With a process-aware profile, R2100 also alerts when the peer and port are known but the
acting executable never connected there while learning (`detector.intruders`).

Legitimate users of R2101 and R2102 (a cloud controller, metrics-server) are allowed by the
rules' parameters `allowedWorkloads` (``namespace/Kind/name`` patterns) and `allowedPodLabels`
(``key=value``), decided once per container when its plan is compiled, not per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from detector.addresses import (
    METADATA_ADDRESSES,
    METADATA_NAMES,
    canonical,
    is_link_local,
    is_loopback,
    is_private,
)
from detector.alerts import RuleId, Severity, safe_text
from detector.intruders import intruder, known_field, learned, who, who_key
from detector.rules import (
    AllowKind,
    Check,
    Finding,
    ParamKind,
    ParamSpec,
    ProfileDependency,
    Rule,
    RuleEnv,
    Subject,
)
from gadgetclient.events import DnsEvent, Event, EventKind, TcpEvent, TcpEventType
from profiler.identity import ADDRESS_KIND, peer_key
from profiler.readmodel import ProfileView

#: Bound of attacker strings inside a one-line message; the event fields carry more.
MSG = 256

#: kubelet's authenticated API port and its legacy read-only port.
KUBELET_PORTS: tuple[int, ...] = (10250, 10255)

#: IG endpoint kinds that name a Kubernetes object.
_NAMED = ("pod", "svc")


def _s(text: str) -> str:
    return safe_text(text, limit=MSG)


def allowed_workload(params: Mapping[str, Any], env: RuleEnv) -> bool:
    """Whether the container's workload matches `allowedWorkloads` or `allowedPodLabels`."""
    workload = env.workload
    if workload is not None:
        for pattern in params["allowedWorkloads"]:
            ns, kind, name = pattern.split("/")
            if (
                fnmatchcase(workload.namespace, ns)
                and fnmatchcase(workload.owner_kind, kind)
                and fnmatchcase(workload.owner_name, name)
            ):
                return True
    labels = {f"{k}={v}" for k, v in env.pod_labels}
    return any(label in labels for label in params["allowedPodLabels"])


def _never(event: Event, profile: ProfileView | None) -> Finding | None:
    return None


def _in_cluster_peer(params: Mapping[str, Any], env: RuleEnv) -> Check:
    ignore_unnamed = params["ignoreUnnamedPeers"]

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT:
            return None
        peer = event.dst_peer
        addr = event.dst_addr
        # Unnamed: in-cluster only if private; loopback is the pod itself; link-local is the
        # node's own services and the metadata endpoint (R2101), not a cluster peer.
        if not (peer.kind in _NAMED and peer.name) and (
            ignore_unnamed or not is_private(addr) or is_loopback(addr) or is_link_local(addr)
        ):
            return None
        key = peer_key(peer, addr)
        port = event.dst_port
        target = key.display() if key.kind == ADDRESS_KIND else f"{key.display()} ({addr})"
        identity = {
            "peerIdentity": {
                "kind": safe_text(key.kind, limit=32),
                "namespace": safe_text(key.namespace, limit=64),
                "name": _s(key.name),
            }
        }
        if profile is not None and profile.allows_peer(key, port):
            if not profile.process_aware:
                return None
            known = profile.peer_sources(key, port)
            actor = intruder(known, event, env)
            if actor is None or known is None:
                return None
            return Finding(
                message=f"Unexpected in-cluster connection to {_s(target)} port {port} by "
                f"{who(actor)} (pid {event.process.pid}), which did not connect there while "
                f"learning (learned: {learned(known)})",
                key=(key.kind, key.namespace, key.name, port, "process", who_key(actor)),
                subjects=(Subject(AllowKind.ADDRESS, canonical(addr), port),),
                fields={**identity, "knownProcesses": known_field(known)},
            )
        return Finding(
            message=f"Unexpected in-cluster connection to {_s(target)} port {port} by "
            f"{_s(event.process.comm)} (pid {event.process.pid})",
            key=(key.kind, key.namespace, key.name, port),
            subjects=(Subject(AllowKind.ADDRESS, canonical(addr), port),),
            fields=identity,
        )

    return check


def _cloud_metadata(params: Mapping[str, Any], env: RuleEnv) -> Check:
    if allowed_workload(params, env):
        return _never
    addresses = frozenset(canonical(a) for a in params["addresses"])
    names = frozenset(n.lower().rstrip(".") for n in params["names"])

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        if isinstance(event, DnsEvent):
            name = event.name.lower().rstrip(".")
            if name not in names:
                return None
            return Finding(
                message=f"Cloud metadata service name resolved: {_s(name)} by "
                f"{_s(event.process.comm)} (pid {event.process.pid})",
                key=("dns", name),
                subjects=(Subject(AllowKind.DOMAIN, name),),
            )
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT:
            return None
        addr = canonical(event.dst_addr)
        if addr not in addresses:
            return None
        return Finding(
            message=f"Cloud metadata endpoint contacted: {_s(addr)}:{event.dst_port} by "
            f"{_s(event.process.comm)} (pid {event.process.pid})",
            key=("tcp", addr, event.dst_port),
            subjects=(Subject(AllowKind.ADDRESS, addr, event.dst_port),),
        )

    return check


def _kubelet_api(params: Mapping[str, Any], env: RuleEnv) -> Check:
    if allowed_workload(params, env):
        return _never
    ports = frozenset(params["ports"])

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT or event.dst_port not in ports:
            return None
        peer = event.dst_peer
        if peer.kind in _NAMED and peer.name:
            return None  # a pod or Service that happens to listen on that port
        addr = canonical(event.dst_addr)
        if is_loopback(addr):
            return None  # the container's own network namespace, not a node
        return Finding(
            message=f"Kubelet API contacted: {_s(addr)}:{event.dst_port} by "
            f"{_s(event.process.comm)} (pid {event.process.pid})",
            key=(addr, event.dst_port),
            subjects=(Subject(AllowKind.ADDRESS, addr, event.dst_port),),
        )

    return check


_ALLOW_PARAMS = (
    ParamSpec(
        "allowedWorkloads",
        ParamKind.WORKLOADS,
        (),
        "Workloads allowed to do this, as namespace/Kind/name (`*` globs within a segment), "
        "e.g. kube-system/Deployment/metrics-server.",
    ),
    ParamSpec(
        "allowedPodLabels",
        ParamKind.LABELS,
        (),
        "Pods carrying any of these key=value labels are allowed to do this.",
    ),
)

RULES: tuple[Rule, ...] = (
    Rule(
        id=RuleId("R2100"),
        name="Unexpected in-cluster connection",
        description="An outgoing TCP connection went to an in-cluster peer (a workload, a "
        "Service, or a private address IG could not name, such as a node) and port that the "
        "workload's profile never connected to. Peers are compared by identity, not address.",
        severity=Severity.MEDIUM,
        tags=("network", "lateral-movement", "whitelisted", "anomaly", "networkprofile"),
        mitre_tactic="TA0008",
        mitre_technique="T1210",
        profile=ProfileDependency.REQUIRED,
        kinds=frozenset({EventKind.TCP}),
        dedup_key=("peer kind", "peer namespace", "peer name", "dstPort"),
        fix="",
        build=_in_cluster_peer,
        parameters=(
            ParamSpec(
                "ignoreUnnamedPeers",
                ParamKind.BOOL,
                False,
                "Skip private destinations IG gave no pod or Service identity for (nodes, "
                "host-network pods, other hosts of the network); by default they are compared "
                "by address.",
            ),
        ),
    ),
    Rule(
        id=RuleId("R2101"),
        name="Cloud metadata endpoint contacted",
        description="A container connected to a cloud instance-metadata or credential "
        "endpoint (169.254.169.254, fd00:ec2::254, ECS/EKS credential agents, Alibaba "
        "100.100.100.200, Azure WireServer), also in IPv4-mapped and NAT64 form, or resolved "
        "a metadata service name.",
        severity=Severity.HIGH,
        tags=("network", "cloud", "credentials", "signature", "malicious"),
        mitre_tactic="TA0006",
        mitre_technique="T1552.005",
        profile=ProfileDependency.NONE,
        kinds=frozenset({EventKind.TCP, EventKind.DNS}),
        dedup_key=("tcp: dstAddr, dstPort", "dns: name"),
        fix="Block the metadata endpoint for pods (IMDSv2 with hop limit 1, a NetworkPolicy "
        "egress deny for 169.254.169.254/32, or the cloud's workload identity), and allow the "
        "workloads that need it with `allowedWorkloads`.",
        build=_cloud_metadata,
        parameters=(
            ParamSpec(
                "addresses",
                ParamKind.STRINGS,
                METADATA_ADDRESSES,
                "Metadata and credential endpoint addresses.",
            ),
            ParamSpec(
                "names",
                ParamKind.STRINGS,
                METADATA_NAMES,
                "Metadata service DNS names.",
            ),
            *_ALLOW_PARAMS,
        ),
    ),
    Rule(
        id=RuleId("R2102"),
        name="Kubelet API contacted",
        description="A container connected to the kubelet's API port on an address that is "
        "not a pod or Service (a node): the step from a pod to exec into every pod of the "
        "node, or to read their secrets.",
        severity=Severity.HIGH,
        tags=("network", "kubelet", "lateral-movement", "signature", "malicious"),
        mitre_tactic="TA0008",
        mitre_technique="T1210",
        profile=ProfileDependency.NONE,
        kinds=frozenset({EventKind.TCP}),
        dedup_key=("dstAddr", "dstPort"),
        fix="Workloads do not talk to kubelets; monitoring agents that must (metrics-server, "
        "node exporters) belong in `allowedWorkloads`. Restrict egress to node addresses with "
        "a NetworkPolicy.",
        build=_kubelet_api,
        parameters=(
            ParamSpec(
                "ports",
                ParamKind.PORTS,
                KUBELET_PORTS,
                "Kubelet ports (10250 API, 10255 legacy read-only).",
            ),
            *_ALLOW_PARAMS,
        ),
    ),
)
