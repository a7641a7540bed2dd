"""`RuntimeAlertException` (gadgetwatch.io/v1): user-owned allow-lists that survive releases.

Learned profiles are machine-owned and relearned; human decisions ("this workload may call
api.stripe.com", "silence R0002 in the batch namespace") live here, apart from them, so a
rollout or a relearning never throws them away (the predecessors' users were told to edit
short-lived profiles). Every anomaly alert's fix suggestion is a ready-to-apply instance of
this resource (`detector.alerting.exception_snippet`).

::

    apiVersion: gadgetwatch.io/v1
    kind: RuntimeAlertException
    metadata: {name: web-allow-stripe, namespace: shop}   # namespace limits the scope
    spec:
      reason: "payment provider"                  # free text, shown in reviews
      namespaceSelector: {...}                    # optional LabelSelector
      podSelector: {...}                          # optional LabelSelector
      workloads:                                  # optional; any entry may match
      - {kind: Deployment, name: web, containers: [app]}
      rules: [R0005]                              # optional: allow only for these rules
      allow:
        execs: [/usr/bin/curl, /opt/tools/*]      # exact, dir/ prefix, or glob
        paths: [/var/cache/app]                   # directory prefix or glob
        domains: [api.stripe.com, "*.stripe.com"] # exact, or any sub-domain
        addresses: [10.0.0.0/8, {address: 203.0.113.7, ports: [443]}]
        syscalls: [ptrace]
        capabilities: [CAP_NET_RAW]
        fromSource: [{path: /usr/bin/curl, parent: /bin/sh}]   # optional: only these processes
      silenceRules: [R0002]                       # never alert these rules in the scope

`allow.fromSource` (see `detector.processes`) narrows the whole allow-list to the processes it
names: the finding is suppressed only when the acting process matches an entry. Without it,
an allow-list applies to every process of the workload, as before.

Scope: a resource with `metadata.namespace` applies only to pods of that namespace (a team
can only quiet its own alerts); one without (file form) applies cluster-wide. Selectors and
workloads narrow it further. Exceptions are consulted only when a rule has found something,
so they cost nothing on the per-event path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from detector.loading import DocContext, Document, Path
from detector.paths import PathSet
from detector.processes import SourceSet, parse_from_source
from detector.rules import Actor, AllowKind, Catalogue, Subject
from detector.selectors import LabelSelector, parse_selector
from profiler.identity import WorkloadKey

API_VERSION = "gadgetwatch.io/v1"
KIND = "RuntimeAlertException"

#: The workload kinds an exception's `spec.workloads[].kind` may name: the top-level owners
#: `profiler.identity.workload_key` produces for built-in controllers, and `Host` for plain
#: containers. The CRD's enum (deploy/crds/runtimealertexceptions.gadgetwatch.io.yaml) must list
#: exactly these, in this order; a test holds them together. A pod owned by a custom controller
#: is matched by name with `kind` left out.
WORKLOAD_KINDS: tuple[str, ...] = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "Pod",
    "Host",
)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    name: str
    kind: str = ""
    containers: frozenset[str] = frozenset()

    def matches(self, key: WorkloadKey) -> bool:
        if self.kind and self.kind.casefold() != key.owner_kind.casefold():
            return False
        if self.name != key.owner_name:
            return False
        return not self.containers or key.container in self.containers


class Scoped(Protocol):
    """What exceptions and guards share: where they apply (namespace, selectors, workloads)."""

    @property
    def namespace(self) -> str: ...
    @property
    def namespace_selector(self) -> LabelSelector: ...
    @property
    def pod_selector(self) -> LabelSelector: ...
    @property
    def workloads(self) -> tuple[WorkloadRef, ...]: ...


def scope_matches(
    scope: Scoped,
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
    workload: WorkloadKey,
) -> bool:
    """Whether a container of `workload` in `namespace` is in `scope`: the namespace (when the
    resource is namespaced), both selectors, and one of the listed workloads (none: all)."""
    if scope.namespace and scope.namespace != namespace:
        return False
    if not scope.namespace_selector.matches(namespace_labels):
        return False
    if not scope.pod_selector.matches(pod_labels):
        return False
    return not scope.workloads or any(w.matches(workload) for w in scope.workloads)


@dataclass(frozen=True, slots=True)
class AddressRule:
    network: IpNetwork
    ports: frozenset[int] = frozenset()


@dataclass(frozen=True)
class RuntimeAlertException:
    name: str
    namespace: str
    source: str
    reason: str
    namespace_selector: LabelSelector
    pod_selector: LabelSelector
    workloads: tuple[WorkloadRef, ...]
    #: Rule ids the allow-list applies to; empty: all rules.
    rules: frozenset[str]
    silence_rules: frozenset[str]
    execs: PathSet
    paths: PathSet
    domains: frozenset[str]
    #: "*.example.com" entries, stored as ".example.com"
    domain_suffixes: tuple[str, ...]
    addresses: tuple[AddressRule, ...]
    syscalls: frozenset[str]
    capabilities: frozenset[str]
    #: The processes the allow-list is for; empty: every process of the workload.
    from_source: SourceSet = field(default_factory=SourceSet)

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

    def allows(self, subject: Subject, rule_id: str, actor: Actor | None = None) -> bool:
        if self.rules and rule_id not in self.rules:
            return False
        if self.from_source and (actor is None or not self.from_source.matches(actor)):
            return False
        kind, value = subject.kind, subject.value
        if kind is AllowKind.EXEC:
            return self.execs.matches(value)
        if kind is AllowKind.PATH:
            return self.paths.matches(value)
        if kind is AllowKind.DOMAIN:
            name = value.rstrip(".").lower()
            return name in self.domains or name.endswith(self.domain_suffixes)
        if kind is AllowKind.SYSCALL:
            return value in self.syscalls
        if kind is AllowKind.CAPABILITY:
            return normalize_capability(value) in self.capabilities
        return _address_allowed(self.addresses, value, subject.port)


def _address_allowed(rules: tuple[AddressRule, ...], value: str, port: int) -> bool:
    if not rules:
        return False
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(ip in r.network and (not r.ports or port in r.ports) for r in rules)


def normalize_capability(name: str) -> str:
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


class Allowance:
    """The exceptions in force for one scope (workload container in its namespace)."""

    __slots__ = ("exceptions", "silenced")

    def __init__(self, exceptions: Iterable[RuntimeAlertException]) -> None:
        self.exceptions = tuple(exceptions)
        self.silenced = frozenset(r for e in self.exceptions for r in e.silence_rules)

    def suppresses(
        self, rule_id: str, subjects: tuple[Subject, ...], actor: Actor | None = None
    ) -> bool:
        """True when the rule is silenced here or every subject is allowed for it (to the
        acting process, for process-scoped exceptions; `actor` None: unknown, they never
        match)."""
        if rule_id in self.silenced:
            return True
        if not self.exceptions or not subjects:
            return False
        return all(any(e.allows(s, rule_id, actor) for e in self.exceptions) for s in subjects)

    @property
    def process_scoped(self) -> bool:
        """Whether any exception here needs the acting process (looked up only then)."""
        return any(e.from_source for e in self.exceptions)


NO_ALLOWANCE = Allowance(())

_SPEC_KEYS = (
    "reason",
    "namespaceSelector",
    "podSelector",
    "workloads",
    "rules",
    "allow",
    "silenceRules",
)


def parse_exception(
    doc: Document, *, ctx: DocContext, catalogue: Catalogue
) -> RuntimeAlertException | None:
    """The exception, or None when its scope is broken (never widen a scope by guessing)."""
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        ctx.error(("metadata", "name"), "is required")
        return None
    spec = data.get("spec")
    if not isinstance(spec, dict):
        ctx.error(("spec",), "is required (a mapping with allow and/or silenceRules)")
        return None
    for key in spec:
        if key not in _SPEC_KEYS:
            ctx.warning(("spec", key), f"unknown field, ignored (known: {', '.join(_SPEC_KEYS)})")
    ns_sel = parse_selector(
        spec.get("namespaceSelector"), ctx=ctx, path=("spec", "namespaceSelector")
    )
    pod_sel = parse_selector(spec.get("podSelector"), ctx=ctx, path=("spec", "podSelector"))
    workloads = _parse_workloads(spec.get("workloads"), ctx=ctx, path=("spec", "workloads"))
    if ns_sel is None or pod_sel is None or workloads is None:
        return None
    rules = _rule_ids(spec.get("rules"), ctx=ctx, path=("spec", "rules"), catalogue=catalogue)
    silence = _rule_ids(
        spec.get("silenceRules"), ctx=ctx, path=("spec", "silenceRules"), catalogue=catalogue
    )
    allow = spec.get("allow") or {}
    if not isinstance(allow, dict):
        ctx.error(("spec", "allow"), "must be a mapping")
        allow = {}
    known = {k.value for k in AllowKind}
    for key in allow:
        if key not in known and key != "fromSource":
            ctx.error(("spec", "allow", key), f"unknown kind (known: {', '.join(sorted(known))})")

    def strings(kind: AllowKind) -> list[str]:
        return _strings(allow.get(kind.value), ctx=ctx, path=("spec", "allow", kind.value))

    domains = [d.rstrip(".").lower() for d in strings(AllowKind.DOMAIN)]
    addresses = _parse_addresses(
        allow.get(AllowKind.ADDRESS.value), ctx=ctx, path=("spec", "allow", "addresses")
    )
    from_source = parse_from_source(
        allow.get("fromSource"), ctx=ctx, path=("spec", "allow", "fromSource")
    )
    if from_source is None:
        return None  # dropping the process scope would widen the allowance
    exc = RuntimeAlertException(
        name=name,
        namespace=str(meta.get("namespace") or ""),
        source=doc.source,
        reason=str(spec.get("reason") or ""),
        namespace_selector=ns_sel,
        pod_selector=pod_sel,
        workloads=workloads,
        rules=rules,
        silence_rules=silence,
        execs=PathSet(strings(AllowKind.EXEC), prefixes=False),
        paths=PathSet(strings(AllowKind.PATH)),
        domains=frozenset(d for d in domains if not d.startswith("*.")),
        domain_suffixes=tuple(d[1:] for d in domains if d.startswith("*.")),
        addresses=addresses,
        syscalls=frozenset(s.lower() for s in strings(AllowKind.SYSCALL)),
        capabilities=frozenset(normalize_capability(c) for c in strings(AllowKind.CAPABILITY)),
        from_source=from_source,
    )
    if not silence and not any(allow.get(k) for k in known):
        ctx.warning(("spec",), "allows nothing and silences nothing")
    return exc


def _strings(raw: Any, *, ctx: DocContext, path: Path) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.error(path, "must be a list of strings")
        return []
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str) and item:
            out.append(item)
        else:
            ctx.error((*path, i), f"must be a non-empty string, got {item!r}; entry ignored")
    return out


def _rule_ids(raw: Any, *, ctx: DocContext, path: Path, catalogue: Catalogue) -> frozenset[str]:
    ids = set()
    for i, ref in enumerate(_strings(raw, ctx=ctx, path=path)):
        entry = catalogue.lookup(ref)
        if entry is None:
            ctx.error((*path, i), f"unknown rule {ref!r}; see `gadgetwatch rules list`")
        else:
            ids.add(str(entry.id))
    return frozenset(ids)


def _parse_workloads(raw: Any, *, ctx: DocContext, path: Path) -> tuple[WorkloadRef, ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, "must be a list of {kind, name, containers}")
        return None
    out = []
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            ctx.error((*path, i, "name"), "is required (the workload's name)")
            return None
        containers = item.get("containers") or []
        if not isinstance(containers, list) or not all(isinstance(c, str) for c in containers):
            ctx.error((*path, i, "containers"), "must be a list of container names")
            return None
        kind = item.get("kind")
        if kind is not None and kind not in WORKLOAD_KINDS:
            # Never ignored: a reference that matches nothing would silently allow nothing,
            # and dropping it would widen the scope.
            hint = [k for k in WORKLOAD_KINDS if k.casefold() == str(kind).casefold()]
            ctx.error(
                (*path, i, "kind"),
                f"unknown workload kind {kind!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; valid: {', '.join(WORKLOAD_KINDS)} (leave it out to match any kind)",
            )
            return None
        out.append(WorkloadRef(name, str(kind or ""), frozenset(containers)))
    return tuple(out)


def _parse_addresses(raw: Any, *, ctx: DocContext, path: Path) -> tuple[AddressRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, "must be a list of CIDRs or {address, ports}")
        return ()
    out = []
    for i, item in enumerate(raw):
        ports_raw: Any = []
        text: Any = item if isinstance(item, str) else None
        if isinstance(item, dict):
            text, ports_raw = item.get("address"), item.get("ports") or []
        try:
            if not isinstance(text, str):
                raise ValueError("needs an address (IP or CIDR)")
            network = ipaddress.ip_network(text, strict=False)
            if not isinstance(ports_raw, list) or not all(
                isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports_raw
            ):
                raise ValueError("ports must be a list of integers 1-65535")
        except ValueError as exc:
            ctx.error((*path, i), f"{exc}; entry ignored")
            continue
        out.append(AddressRule(network, frozenset(ports_raw)))
    return tuple(out)
