"""Merging profiles: a set union, so replicas on many nodes can write one profile safely.

`merge_entries` and `merged` are **idempotent** (merging a profile into itself changes nothing)
and **commutative** (the order in which agents' deltas land does not matter), which is what makes
optimistic concurrency with re-read-and-re-merge lose nothing: whatever interleaving of writers
the store sees, the final object is the union of every delta.

Lifecycle metadata merges the same way, as a join on a small lattice:

- a higher ``series`` (a rollout reopened learning) wins the lifecycle fields outright;
- within one series: the earliest learning start, the longest period, ``partial`` only if every
  side was partial (one instance observed from its start means start-up behaviour was seen),
  and status ranked too-large > finished (completed/partial) > learning;
- user ownership is sticky; provenance sets (digests, revisions, uids, mounts) are unions.

Process sets (process-aware profiles) merge as a union per entry, with "any process" absorbing:
an entry that one side holds without a set (learned with the option off, or an old profile)
stays any-process, whichever side is merged into which. Merging never applies the bound on
executables per entry: the learner applies it where its setting is (`Learner._finalize`), so
merge stays a plain join.

`subtract` computes what one profile has that another lacks: the delta for diffs and tests.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from typing import TypeVar

from profiler.profiles import (
    Entries,
    ManagedBy,
    Profile,
    ProfileMeta,
    intern_set,
    union_processes,
)
from profiler.status import ProfileStatus

K = TypeVar("K", bound=Hashable)

_RANK = {
    ProfileStatus.LEARNING: 0,
    ProfileStatus.COMPLETED: 1,
    ProfileStatus.PARTIAL: 1,
    ProfileStatus.TOO_LARGE: 2,
}


def merge_entries(into: Entries, other: Entries) -> None:
    """Union `other` into `into`, in place."""
    # Process sets first: "held without a set" is judged on both sides before the entry
    # sections are unioned.
    if other.open_procs or into.open_procs:
        merge_processes(into.opens, into.open_procs, other.opens, other.open_procs)
    if other.dns_procs or into.dns_procs:
        merge_processes(into.dns, into.dns_procs, other.dns, other.dns_procs)
    if other.egress_procs or into.egress_procs:
        merge_processes(into.egress, into.egress_procs, other.egress, other.egress_procs)
    for path, arg_sets in other.execs.items():
        known = into.execs.get(path)
        into.execs[path] = arg_sets if known is None else intern_set(known | arg_sets)
    for path, flags in other.opens.items():
        known_flags = into.opens.get(path)
        into.opens[path] = flags if known_flags is None else intern_set(known_flags | flags)
    for name, addresses in other.dns.items():
        known_addresses = into.dns.get(name)
        into.dns[name] = (
            addresses if known_addresses is None else intern_set(known_addresses | addresses)
        )
    into.ingress |= other.ingress
    into.egress |= other.egress
    into.capabilities |= other.capabilities
    into.syscalls |= other.syscalls
    for rule_id, processes in other.rule_policies.items():
        into.add_rule_policy(rule_id, processes)


def merge_processes(
    into_keys: Collection[K],
    into: dict[K, frozenset[str]],
    other_keys: Collection[K],
    other: Mapping[K, frozenset[str]],
) -> None:
    """Union `other`'s process sets into `into`; an entry one side holds without a set is
    any-process in the result (commutative and idempotent, like the rest of the merge)."""
    for key, processes in other.items():
        if key in into_keys and key not in into:
            continue  # `into` says any process
        into[key] = union_processes(into.get(key), processes)
    for key in other_keys:
        if key not in other and key in into:
            del into[key]  # `other` says any process


def merge_meta(a: ProfileMeta, b: ProfileMeta) -> ProfileMeta:
    """The join of two metadata records (commutative, idempotent)."""
    out = ProfileMeta(
        image_digests=a.image_digests | b.image_digests,
        revisions=a.revisions | b.revisions,
        images=a.images | b.images,
        uids=a.uids | b.uids,
        volume_mounts=a.volume_mounts | b.volume_mounts,
        labels=_merge_labels(a.labels, b.labels),
        updated_ns=max(a.updated_ns, b.updated_ns),
        managed_by=(
            ManagedBy.USER if ManagedBy.USER in (a.managed_by, b.managed_by) else ManagedBy.LEARNED
        ),
    )
    if a.series != b.series:
        win = a if a.series > b.series else b
        out.series = win.series
        out.status, out.reason, out.partial = win.status, win.reason, win.partial
        out.learning_start_ns = win.learning_start_ns
        out.learning_period_ns = win.learning_period_ns
        return out
    out.series = a.series
    starts = [s for s in (a.learning_start_ns, b.learning_start_ns) if s > 0]
    out.learning_start_ns = min(starts) if starts else 0
    out.learning_period_ns = max(a.learning_period_ns, b.learning_period_ns)
    out.partial = a.partial and b.partial
    rank_a, rank_b = _RANK[a.status], _RANK[b.status]
    if rank_a != rank_b:
        win = a if rank_a > rank_b else b
        out.status, out.reason = win.status, win.reason
    else:
        out.status = a.status
        out.reason = max(a.reason, b.reason)
    if _RANK[out.status] == 1:
        out.status = ProfileStatus.PARTIAL if out.partial else ProfileStatus.COMPLETED
    return out


def _merge_labels(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    out = dict(a)
    for key, value in b.items():
        mine = out.get(key)
        # Conflicting values: the larger wins, so the result does not depend on the order.
        out[key] = value if mine is None else max(mine, value)
    return out


def merged(a: Profile, b: Profile) -> Profile:
    """A new profile, the union of `a` and `b` (same key). Keeps `a`'s resourceVersion."""
    entries = a.entries.copy()
    merge_entries(entries, b.entries)
    return Profile(
        key=a.key,
        meta=merge_meta(a.meta, b.meta),
        entries=entries,
        resource_version=a.resource_version,
    )


def subtract(a: Entries, b: Entries) -> Entries:
    """Entries in `a` that `b` does not have (per exec argument list, per open flag)."""
    out = Entries()
    for path, arg_sets in a.execs.items():
        extra = arg_sets - b.execs.get(path, frozenset())
        if extra:
            out.execs[path] = extra
    for path, flags in a.opens.items():
        known = b.opens.get(path)
        if known is None:
            out.opens[path] = flags
        elif not flags <= known:
            out.opens[path] = flags - known
    for name, addresses in a.dns.items():
        known_addresses = b.dns.get(name)
        if known_addresses is None:
            out.dns[name] = addresses
        elif not addresses <= known_addresses:
            out.dns[name] = addresses - known_addresses
    out.ingress = a.ingress - b.ingress
    out.egress = a.egress - b.egress
    out.capabilities = a.capabilities - b.capabilities
    out.syscalls = a.syscalls - b.syscalls
    for rule_id, processes in a.rule_policies.items():
        allowed = processes - b.rule_policies.get(rule_id, frozenset())
        if allowed:
            out.rule_policies[rule_id] = allowed
    out.open_procs = _subtract_processes(a.open_procs, b.opens, b.open_procs)
    out.dns_procs = _subtract_processes(a.dns_procs, b.dns, b.dns_procs)
    out.egress_procs = _subtract_processes(a.egress_procs, b.egress, b.egress_procs)
    return out


def _subtract_processes(
    a: Mapping[K, frozenset[str]], b_keys: Collection[K], b: Mapping[K, frozenset[str]]
) -> dict[K, frozenset[str]]:
    """Executables `a` records per entry that `b` does not (an entry `b` holds without a set
    already allows every process, so nothing of `a`'s is extra there)."""
    out: dict[K, frozenset[str]] = {}
    for key, processes in a.items():
        if key in b_keys and key not in b:
            continue
        extra = processes - b.get(key, frozenset())
        if extra:
            out[key] = extra
    return out
