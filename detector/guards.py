"""`RuntimeGuard` (gadgetwatch.io/v1): "only these executables may touch that", no profile needed.

Profiles and exceptions are per workload: once any process of a container read the
service-account token while learning, every process may read it, an attacker's shell included.
A guard names sensitive resources and the processes allowed to reach them (KubeArmor's
"lenient whitelisting", `fromSource`); any other process reaching one raises R3000, whatever
the profile holds and also while the workload is still learning. It needs no binding: the
guard is itself the declaration (`Catalogue.resource_rules`)::

    apiVersion: gadgetwatch.io/v1
    kind: RuntimeGuard
    metadata: {name: sa-token, namespace: shop}   # namespace limits the scope
    spec:
      reason: "only the health probe reads the token"
      severity: high                              # optional (default: high)
      namespaceSelector: {...}                    # optional LabelSelector
      podSelector: {...}                          # optional LabelSelector
      workloads: [{kind: Deployment, name: web, containers: [app]}]   # optional
      resources:
      - paths: [/run/secrets/kubernetes.io/serviceaccount]   # directory: recursive
        fromSource: [{path: /bin/cat}]                        # who may; empty: nobody
      - execs: [/usr/bin/kubectl]                             # who may *run* it (the parent)
        fromSource: [{path: /usr/local/bin/deployer}]
      - domains: [metadata.google.internal]
        addresses: [{address: 169.254.169.254, ports: [80]}]
        fromSource: [{path: /usr/local/bin/agent, parent: /sbin/tini}]

Scope is an exception's (`detector.exceptions`): the namespace of a cluster resource, the
selectors and workload references. Who acted comes from `detector.processes` (IG reports the
executable on exec events only; the detector remembers it per pid). For an exec the actor is
the process that ran it, so an exec guard says which parents may start the executable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.alerts import RuleId, Severity, safe_text
from detector.catalogue_anomaly import open_path
from detector.exceptions import (
    AddressRule,
    WorkloadRef,
    _address_allowed,
    _parse_addresses,
    _parse_workloads,
    _strings,
    scope_matches,
)
from detector.loading import DocContext, Document
from detector.paths import PathSet
from detector.processes import SourceSet, describe, parse_from_source
from detector.rules import (
    Actor,
    AllowKind,
    Finding,
    ProfileDependency,
    Rule,
    RuleEnv,
    Subject,
)
from detector.selectors import LabelSelector, parse_selector
from gadgetclient.events import (
    DnsEvent,
    Event,
    EventKind,
    ExecEvent,
    OpenEvent,
    TcpEvent,
    TcpEventType,
)
from gadgetclient.processes import exec_path
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileView

API_VERSION = "gadgetwatch.io/v1"
KIND = "RuntimeGuard"
#: Outside the predecessors' catalogue (R0xxx, R1xxx, R2000-R2001) and gadgetwatch's R21xx.
GUARD_RULE_ID = RuleId("R3000")
MSG = 256
#: Kinds of events a guard can watch.
GUARD_KINDS = frozenset({EventKind.OPEN, EventKind.EXEC, EventKind.TCP, EventKind.DNS})

#: Peers whose guarded-or-not answer `GuardFilter` keeps per plan (cleared when full): far
#: above the distinct peers of one container, small enough to be negligible memory.
PEER_CACHE = 4096

ActorFn = Callable[[Event], Actor]
GuardCheck = Callable[[Event, ActorFn], tuple[Finding, Actor] | None]


def _unbound(params: Mapping[str, Any], env: RuleEnv) -> Any:
    """Never called: guards are compiled by `compile_guard`, not through a binding."""

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        return None

    return check


GUARD_RULE = Rule(
    id=GUARD_RULE_ID,
    name="Guarded resource reached by a process not allowed",
    description="A RuntimeGuard names a resource (file, executable, domain, address) and the "
    "executables allowed to reach it; another process reached it.",
    severity=Severity.HIGH,
    tags=("guard", "process", "allowlist"),
    mitre_tactic="TA0006",
    mitre_technique="T1552",
    profile=ProfileDependency.NONE,
    kinds=GUARD_KINDS,
    dedup_key=("guard", "resource", "process"),
    fix="If this process is legitimate, add it to the guard's fromSource; otherwise "
    "investigate the process that reached the guarded resource.",
    build=_unbound,
)


@dataclass(frozen=True, slots=True)
class GuardedResource:
    paths: PathSet
    execs: PathSet
    domains: frozenset[str]
    domain_suffixes: tuple[str, ...]
    addresses: tuple[AddressRule, ...]
    allowed: SourceSet
    #: Allowed sources as written, for the message.
    allowed_text: str
    #: The patterns as loaded (for `GuardFilter`).
    path_patterns: tuple[str, ...] = ()
    exec_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuntimeGuard:
    name: str
    namespace: str
    source: str
    reason: str
    severity: Severity
    namespace_selector: LabelSelector
    pod_selector: LabelSelector
    workloads: tuple[WorkloadRef, ...]
    resources: tuple[GuardedResource, ...]

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def in_scope(
        self,
        *,
        namespace: str,
        namespace_labels: Mapping[str, str],
        pod_labels: Mapping[str, str],
        workload: WorkloadKey,
    ) -> bool:
        return scope_matches(
            self,
            namespace=namespace,
            namespace_labels=namespace_labels,
            pod_labels=pod_labels,
            workload=workload,
        )

    @property
    def kinds(self) -> frozenset[EventKind]:
        kinds: set[EventKind] = set()
        for r in self.resources:
            if r.paths:
                kinds.add(EventKind.OPEN)
            if r.execs:
                kinds.add(EventKind.EXEC)
            if r.domains or r.domain_suffixes:
                kinds.add(EventKind.DNS)
            if r.addresses:
                kinds.add(EventKind.TCP)
        return frozenset(kinds)


def _s(text: str) -> str:
    return safe_text(text, limit=MSG)


def compile_guard(guard: RuntimeGuard) -> GuardCheck:
    """The per-event check of one guard: a finding and the actor, or None.

    The actor is looked up only once a resource matched (most events touch nothing guarded).
    """
    path_res = tuple(r for r in guard.resources if r.paths)
    exec_res = tuple(r for r in guard.resources if r.execs)
    dns_res = tuple(r for r in guard.resources if r.domains or r.domain_suffixes)
    tcp_res = tuple(r for r in guard.resources if r.addresses)

    def finding(
        event: Event,
        actor_of: ActorFn,
        hits: list[GuardedResource],
        what: str,
        subject: Subject,
    ) -> tuple[Finding, Actor] | None:
        actor = actor_of(event)
        if all(r.allowed.matches(actor) for r in hits):
            return None
        allowed = "; ".join(r.allowed_text for r in hits if not r.allowed.matches(actor))
        value = subject.value + (f":{subject.port}" if subject.port else "")
        who = describe(actor)
        return (
            Finding(
                message=f"Guarded {what} {_s(value)} reached by {_s(who)} "
                f"(pid {event.process.pid}; guard {_s(guard.label)} allows {_s(allowed)})",
                key=(guard.label, subject.kind.value, subject.value, subject.port, who),
                subjects=(subject,),
                fields={"guard": _s(guard.label), "actor": _s(who)},
            ),
            actor,
        )

    def check(event: Event, actor_of: ActorFn) -> tuple[Finding, Actor] | None:
        if isinstance(event, OpenEvent):
            if not path_res:
                return None
            path = open_path(event)
            hits = [r for r in path_res if r.paths.matches(path)]
            if not hits:
                return None
            return finding(event, actor_of, hits, "file", Subject(AllowKind.PATH, path))
        if isinstance(event, ExecEvent):
            if not exec_res:
                return None
            path = exec_path(event)
            hits = [r for r in exec_res if r.execs.matches(path)]
            if not hits:
                return None
            return finding(event, actor_of, hits, "executable", Subject(AllowKind.EXEC, path))
        if isinstance(event, DnsEvent):
            if not dns_res:
                return None
            name = event.name.rstrip(".").lower()
            hits = [r for r in dns_res if name in r.domains or name.endswith(r.domain_suffixes)]
            if not hits:
                return None
            return finding(event, actor_of, hits, "domain", Subject(AllowKind.DOMAIN, name))
        if isinstance(event, TcpEvent):
            if not tcp_res or event.type is not TcpEventType.CONNECT:
                return None
            addr, port = event.dst_addr, event.dst_port
            hits = [r for r in tcp_res if _address_allowed(r.addresses, addr, port)]
            if not hits:
                return None
            subject = Subject(AllowKind.ADDRESS, addr, port)
            return finding(event, actor_of, hits, "address", subject)
        return None

    return check


def _both_run_spellings(paths: list[str]) -> list[str]:
    """/var/run is a symlink to /run in every base image: a guard on one spelling covers the
    other (IG reports the path as the process spelled it)."""
    out = []
    for p in paths:
        out.append(p)
        if p.startswith("/var/run/"):
            out.append(p[len("/var") :])
        elif p.startswith("/run/"):
            out.append("/var" + p)
    return out


class GuardFilter:
    """Whether an event reaches *any* resource guarded in a plan: one combined look-up per
    event, so the per-guard checks (and the actor look-up) run only on a hit. Most events of
    a guarded container touch nothing guarded."""

    __slots__ = ("_addresses", "_domains", "_execs", "_paths", "_peers", "_suffixes")

    def __init__(self, guards: Sequence[RuntimeGuard]) -> None:
        resources = [r for g in guards for r in g.resources]
        self._paths = PathSet([p for r in resources for p in r.path_patterns])
        self._execs = PathSet([p for r in resources for p in r.exec_patterns], prefixes=False)
        self._domains = frozenset(d for r in resources for d in r.domains)
        self._suffixes = tuple(d for r in resources for d in r.domain_suffixes)
        self._addresses = tuple(a for r in resources for a in r.addresses)
        #: (address, port) -> guarded: parsing an address costs more than the rest of the
        #: check, and a container talks to few peers.
        self._peers: dict[tuple[str, int], bool] = {}

    def touches(self, event: Event) -> bool:
        kind = event.kind
        if kind is EventKind.OPEN:
            assert isinstance(event, OpenEvent)
            return bool(self._paths) and self._paths.matches(open_path(event))
        if kind is EventKind.TCP:
            assert isinstance(event, TcpEvent)
            if not self._addresses:
                return False
            peer = (event.dst_addr, event.dst_port)
            hit = self._peers.get(peer)
            if hit is None:
                if len(self._peers) >= PEER_CACHE:
                    self._peers.clear()
                hit = self._peers[peer] = _address_allowed(self._addresses, *peer)
            return hit
        if kind is EventKind.EXEC:
            assert isinstance(event, ExecEvent)
            return bool(self._execs) and self._execs.matches(exec_path(event))
        if kind is EventKind.DNS:
            assert isinstance(event, DnsEvent)
            name = event.name.rstrip(".").lower()
            return name in self._domains or (bool(self._suffixes) and name.endswith(self._suffixes))
        return False


_SPEC_KEYS = (
    "reason",
    "severity",
    "namespaceSelector",
    "podSelector",
    "workloads",
    "resources",
)
_RESOURCE_KEYS = ("paths", "execs", "domains", "addresses", "fromSource")


def parse_guard(doc: Document, *, ctx: DocContext) -> RuntimeGuard | None:
    """The guard, or None when any part is broken: a guard loaded with a resource or a source
    left out would guard less, or allow more, than its author wrote."""
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        ctx.error(("metadata", "name"), "is required")
        return None
    spec = data.get("spec")
    if not isinstance(spec, dict):
        ctx.error(("spec",), "is required (a mapping with resources)")
        return None
    for key in spec:
        if key not in _SPEC_KEYS:
            ctx.warning(("spec", key), f"unknown field, ignored (known: {', '.join(_SPEC_KEYS)})")
    severity = Severity.HIGH
    raw_severity = spec.get("severity")
    if raw_severity is not None:
        # The names only, as the CRD's enum: the agent and the API server reject alike.
        labels = {s.label: s for s in Severity}
        if raw_severity not in labels:
            ctx.error(
                ("spec", "severity"),
                f"unknown severity {raw_severity!r}; valid: {', '.join(labels)}",
            )
            return None
        severity = labels[raw_severity]
    ns_sel = parse_selector(
        spec.get("namespaceSelector"), ctx=ctx, path=("spec", "namespaceSelector")
    )
    pod_sel = parse_selector(spec.get("podSelector"), ctx=ctx, path=("spec", "podSelector"))
    workloads = _parse_workloads(spec.get("workloads"), ctx=ctx, path=("spec", "workloads"))
    if ns_sel is None or pod_sel is None or workloads is None:
        return None
    raw = spec.get("resources")
    if not isinstance(raw, list) or not raw:
        ctx.error(("spec", "resources"), "is required (a non-empty list)")
        return None
    resources = []
    for i, item in enumerate(raw):
        res = _parse_resource(item, ctx=ctx, path=("spec", "resources", i))
        if res is None:
            return None
        resources.append(res)
    return RuntimeGuard(
        name=name,
        namespace=str(meta.get("namespace") or ""),
        source=doc.source,
        reason=str(spec.get("reason") or ""),
        severity=severity,
        namespace_selector=ns_sel,
        pod_selector=pod_sel,
        workloads=workloads,
        resources=tuple(resources),
    )


def _parse_resource(
    item: Any, *, ctx: DocContext, path: tuple[str | int, ...]
) -> GuardedResource | None:
    if not isinstance(item, dict):
        ctx.error(path, "must be a mapping with paths/execs/domains/addresses and fromSource")
        return None
    unknown = [k for k in item if k not in _RESOURCE_KEYS]
    if unknown:
        ctx.error(path, f"unknown fields {sorted(unknown)} (known: {', '.join(_RESOURCE_KEYS)})")
        return None
    before = len(ctx.problems)
    paths = _strings(item.get("paths"), ctx=ctx, path=(*path, "paths"))
    execs = _strings(item.get("execs"), ctx=ctx, path=(*path, "execs"))
    raw_domains = _strings(item.get("domains"), ctx=ctx, path=(*path, "domains"))
    domains = [d.rstrip(".").lower() for d in raw_domains]
    addresses = _parse_addresses(item.get("addresses"), ctx=ctx, path=(*path, "addresses"))
    for label, values in (("paths", paths), ("execs", execs)):
        for j, p in enumerate(values):
            if not p.startswith("/"):
                ctx.error((*path, label, j), f"must be an absolute path, got {p!r}")
    if len(ctx.problems) != before:
        return None  # an entry that could not be read would guard less than written
    if not (paths or execs or domains or addresses):
        ctx.error(path, "guards nothing (give paths, execs, domains or addresses)")
        return None
    allowed = parse_from_source(item.get("fromSource"), ctx=ctx, path=(*path, "fromSource"))
    if allowed is None:
        return None
    both = _both_run_spellings(paths)
    return GuardedResource(
        path_patterns=tuple(both),
        exec_patterns=tuple(execs),
        paths=PathSet(both),
        execs=PathSet(execs),
        domains=frozenset(d for d in domains if not d.startswith("*.")),
        domain_suffixes=tuple(d[1:] for d in domains if d.startswith("*.")),
        addresses=addresses,
        allowed=allowed,
        allowed_text=", ".join(s.text for s in allowed.sources) or "no process",
    )
