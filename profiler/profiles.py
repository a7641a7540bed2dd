"""The application profile model: what one workload container normally does.

A `Profile` is the identity (`WorkloadKey`), lifecycle metadata (`ProfileMeta`) and grow-only
sets of observed behaviour (`Entries`):

- execs: executable path -> the argument lists seen with it;
- opens: path (after collapse) -> the union of open flags seen;
- ingress: (local port, protocol, peer address, peer identity) of accepted TCP connections;
- egress: (peer address, port, protocol, peer identity) of outgoing TCP connections;
- dns: queried name -> the addresses answered;
- capabilities: (capability, syscall) pairs;
- syscalls: names;
- rule_policies: rule id -> process names the user allows for that rule (Kubescape's per-rule
  ``rulePolicies``; ``*`` = the whole container). Learning never adds any: they come from
  imported or user-written profiles and are kept by every merge;
- open_procs, dns_procs, egress_procs (process-aware profiles, issue 18): per open path, DNS
  name and egress entry, the executables that reached it while learning. A key without a set
  means *any process* (the option was off, or the profile predates it: old profiles keep their
  meaning); a set holding `ANY_PROCESS` means any process too (more executables than the bound,
  or one whose exec was never seen). They are a separate dimension, not part of the entry's
  identity: seccomp and NetworkPolicy derivation, the entry cap and the counts ignore them.

The same `Entries` type holds a full profile and a *delta* (what was learned since the last
successful flush), so merging (`merging.py`) is one set union for both.

Memory: flag sets and argument-list sets are frozensets shared through a small intern table
(a handful of distinct flag combinations cover almost every open), so an open entry costs one
dict slot and its path string. Peer identities are IG's frozen `PeerIdentity` objects, hashable
and shared with the events that carried them.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import TypeVar

from gadgetclient.events import PeerIdentity
from profiler.identity import WorkloadKey
from profiler.status import ProfileStatus

#: One path segment (or one address) of any value. U+22EF, the character the predecessors'
#: collapsed profiles already use, so their users read it the same way.
WILDCARD = "⋯"

#: Peer of an ingress entry whose address collapsed: any address.
ANY_ADDRESS = "*"

#: A rule policy entry allowing every process of the container (``containerAllowed: true``).
ANY_PROCESS = "*"

#: The identity of an unresolved peer (IG said nothing about it).
NO_PEER = PeerIdentity()

Ingress = tuple[int, str, str, PeerIdentity]
"""(local port, protocol, peer address, peer identity)"""

Egress = tuple[str, int, str, PeerIdentity]
"""(peer address, port, protocol, peer identity)"""


class ManagedBy(enum.StrEnum):
    #: Learned by agents; merged, collapsed and finished by the lifecycle.
    LEARNED = "gadgetwatch"
    #: Imported or written by a person: learning never writes it.
    USER = "user"


#: Intern table for flag sets and argument-list sets. Bounded because the values come from
#: events: 4096 distinct combinations is far beyond what real programs use (a few dozen), and
#: past the bound values are simply not shared.
_INTERN_LIMIT = 4096
T = TypeVar("T")
_interned: dict[frozenset[object], frozenset[object]] = {}


def intern_set(values: frozenset[T]) -> frozenset[T]:
    """Share equal frozensets between profiles (saves ~200 bytes per open entry)."""
    found = _interned.get(values)
    if found is not None:
        return found  # type: ignore[return-value]
    if len(_interned) < _INTERN_LIMIT:
        _interned[values] = values
    return values


EMPTY: frozenset[str] = intern_set(frozenset())
#: The process set of an entry any process may reach (bound exceeded, unknown executable).
ANY_PROCESS_SET: frozenset[str] = intern_set(frozenset({ANY_PROCESS}))


def union_processes(known: frozenset[str] | None, more: frozenset[str]) -> frozenset[str]:
    """`known` ∪ `more`, where a set holding `ANY_PROCESS` absorbs everything (interned)."""
    if known is None or known is more:
        return more if ANY_PROCESS not in more else ANY_PROCESS_SET
    if ANY_PROCESS in known or ANY_PROCESS in more:
        return ANY_PROCESS_SET
    return intern_set(known | more)


def bounded_processes(processes: frozenset[str], limit: int) -> frozenset[str]:
    """The set, or `ANY_PROCESS_SET` when it holds more than `limit` executables."""
    return ANY_PROCESS_SET if len(processes) > limit else processes


@dataclass(slots=True)
class Entries:
    """Grow-only sets of behaviour. Mutable on purpose: the learner adds in place."""

    execs: dict[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)
    opens: dict[str, frozenset[str]] = field(default_factory=dict)
    ingress: set[Ingress] = field(default_factory=set)
    egress: set[Egress] = field(default_factory=set)
    dns: dict[str, frozenset[str]] = field(default_factory=dict)
    capabilities: set[tuple[str, str]] = field(default_factory=set)
    syscalls: set[str] = field(default_factory=set)
    rule_policies: dict[str, frozenset[str]] = field(default_factory=dict)
    open_procs: dict[str, frozenset[str]] = field(default_factory=dict)
    dns_procs: dict[str, frozenset[str]] = field(default_factory=dict)
    egress_procs: dict[Egress, frozenset[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Entries per section; an exec or DNS name with several values counts each value."""
        return {
            "execs": sum(max(1, len(a)) for a in self.execs.values()),
            "opens": len(self.opens),
            "ingress": len(self.ingress),
            "egress": len(self.egress),
            "dns": len(self.dns),
            "capabilities": len(self.capabilities),
            "syscalls": len(self.syscalls),
        }

    def total(self) -> int:
        return sum(self.counts().values())

    def is_empty(self) -> bool:
        return not (
            self.execs
            or self.opens
            or self.ingress
            or self.egress
            or self.dns
            or self.capabilities
            or self.syscalls
            or self.rule_policies
            or self.open_procs
            or self.dns_procs
            or self.egress_procs
        )

    def process_aware(self) -> bool:
        """Some entry carries a process set."""
        return bool(self.open_procs or self.dns_procs or self.egress_procs)

    def copy(self) -> Entries:
        return Entries(
            execs=dict(self.execs),
            opens=dict(self.opens),
            ingress=set(self.ingress),
            egress=set(self.egress),
            dns=dict(self.dns),
            capabilities=set(self.capabilities),
            syscalls=set(self.syscalls),
            rule_policies=dict(self.rule_policies),
            open_procs=dict(self.open_procs),
            dns_procs=dict(self.dns_procs),
            egress_procs=dict(self.egress_procs),
        )

    # -- adding (the learner's hot path calls these only after a membership miss) -------------

    def add_exec(self, path: str, args: tuple[str, ...]) -> None:
        known = self.execs.get(path)
        self.execs[path] = intern_set(known | {args} if known is not None else frozenset((args,)))

    def add_open(self, path: str, flags: frozenset[str] | tuple[str, ...]) -> None:
        known = self.opens.get(path)
        self.opens[path] = intern_set(known.union(flags) if known is not None else frozenset(flags))

    def add_rule_policy(self, rule_id: str, processes: frozenset[str]) -> None:
        known = self.rule_policies.get(rule_id)
        self.rule_policies[rule_id] = intern_set(
            known | processes if known is not None else processes
        )

    def add_dns(self, name: str, addresses: tuple[str, ...] | frozenset[str]) -> None:
        known = self.dns.get(name)
        self.dns[name] = intern_set(
            known.union(addresses) if known is not None else frozenset(addresses)
        )


@dataclass(slots=True)
class ProfileMeta:
    """Lifecycle and provenance. Times are event time, ns since the epoch."""

    #: Learning round: 1 for the first learning, +1 each time a rollout reopens learning.
    series: int = 1
    status: ProfileStatus = ProfileStatus.LEARNING
    #: Why the status is what it is ("learning period 24h elapsed", "entries 20001 > 20000").
    reason: str = ""
    #: True when every container of this series was already running when it was first seen.
    partial: bool = False
    learning_start_ns: int = 0
    learning_period_ns: int = 0
    managed_by: ManagedBy = ManagedBy.LEARNED
    image_digests: set[str] = field(default_factory=set)
    #: pod-template-hash / controller-revision-hash values seen.
    revisions: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    #: User ids processes ran as (evidence for runAsNonRoot advice).
    uids: set[int] = field(default_factory=set)
    #: Mount paths of the container's volumes (evidence for readOnlyRootFilesystem advice).
    volume_mounts: set[str] = field(default_factory=set)
    #: Stable pod labels (selectors for NetworkPolicy), revision labels already removed.
    labels: dict[str, str] = field(default_factory=dict)
    #: Last event time that changed the profile.
    updated_ns: int = 0

    @property
    def learning_end_ns(self) -> int:
        return self.learning_start_ns + self.learning_period_ns

    @property
    def finished(self) -> bool:
        return self.status is not ProfileStatus.LEARNING

    def copy(self) -> ProfileMeta:
        return ProfileMeta(
            series=self.series,
            status=self.status,
            reason=self.reason,
            partial=self.partial,
            learning_start_ns=self.learning_start_ns,
            learning_period_ns=self.learning_period_ns,
            managed_by=self.managed_by,
            image_digests=set(self.image_digests),
            revisions=set(self.revisions),
            images=set(self.images),
            uids=set(self.uids),
            volume_mounts=set(self.volume_mounts),
            labels=dict(self.labels),
            updated_ns=self.updated_ns,
        )


@dataclass(slots=True)
class Profile:
    key: WorkloadKey
    meta: ProfileMeta = field(default_factory=ProfileMeta)
    entries: Entries = field(default_factory=Entries)
    #: The store's version of the object this was read from ("" when not read from a store).
    resource_version: str = ""

    @property
    def name(self) -> str:
        return profile_name(self.key)

    def copy(self) -> Profile:
        return Profile(
            key=self.key,
            meta=self.meta.copy(),
            entries=self.entries.copy(),
            resource_version=self.resource_version,
        )


#: Labels that change with every rollout; never part of a selector or of identity.
REVISION_LABELS = frozenset(
    {"pod-template-hash", "controller-revision-hash", "pod-template-generation"}
)

_DNS1123_INVALID = re.compile(r"[^a-z0-9-]+")
#: DNS-1123 label length; also keeps the name usable as a label value.
_NAME_MAX = 63
#: Hex digits of the disambiguating hash: 8 (32 bits) makes a collision between two workload
#: containers of one namespace that share a 54-character prefix vanishingly unlikely.
_HASH_LEN = 8


def profile_name(key: WorkloadKey) -> str:
    """The predictable object name: ``<kind>-<owner>-<container>``, lower-case DNS-1123.

    When sanitizing changed the text or it is longer than 63 characters, a short hash of the
    exact identity is appended, so two identities never share a name.
    """
    raw = f"{key.owner_kind}-{key.owner_name}-{key.container}".lower()
    clean = _DNS1123_INVALID.sub("-", raw).strip("-")
    clean = re.sub(r"-{2,}", "-", clean)
    if clean == raw and len(clean) <= _NAME_MAX:
        return clean
    digest = hashlib.sha256(
        f"{key.owner_kind}\0{key.owner_name}\0{key.container}".encode("utf-8", "surrogatepass")
    ).hexdigest()[:_HASH_LEN]
    head = clean[: _NAME_MAX - _HASH_LEN - 1].rstrip("-") or "profile"
    return f"{head}-{digest}"


def peer_label(peer: PeerIdentity, address: str) -> str:
    """Human form of a peer: ``pod shop/db``, ``svc shop/db``, or the address."""
    if peer.kind in ("pod", "svc") and peer.name:
        return f"{peer.kind} {peer.namespace}/{peer.name}"
    return address
