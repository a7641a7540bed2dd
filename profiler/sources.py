"""Process-aware profiles: keeping each entry's process set right while entries change shape.

A process-aware profile records, per open path, DNS name and egress entry, the executables that
reached it while learning (`Entries.open_procs`, `dns_procs`, `egress_procs`; see
`profiler.profiles`). Entries are not fixed: collapse folds many paths of a directory into
``⋯``, file generalisation folds numbered names into ``name.⟨n⟩``, and DNS generalisation folds
generated names into ``*.<parent>``. `regroup_opens` and `regroup_dns` give the folded entry the
union of the process sets of everything folded into it (any-process when one of them was), so
collapsing never narrows who may reach a path, and never widens it beyond what was seen.

`bound` applies the per-entry bound (`maxProcessesPerEntry`) to a whole profile: past it an
entry becomes any-process. The learner calls it where profiles are finalised (collapse on
completion and before every write), so merged replicas, each under the bound, cannot exceed it
together in the stored object.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping
from typing import TypeVar

from profiler.collapsing import is_pattern, segments_match
from profiler.generalizing import DNS_WILDCARD_PREFIX
from profiler.profiles import ANY_PROCESS, ANY_PROCESS_SET, Entries, union_processes

K = TypeVar("K", bound=Hashable)

#: Reason counted when an entry became any-process because of the bound.
OVERFLOW = "overflow"
#: Reason counted when an entry became any-process because an executable was unknown.
UNKNOWN = "unknown_executable"


def regroup(
    old_keys: Collection[K],
    processes: Mapping[K, frozenset[str]],
    new_keys: Collection[K],
    target: Callable[[K], K | None],
) -> dict[K, frozenset[str]]:
    """Process sets for `new_keys`, from those of `old_keys` (an old key not in `new_keys` goes
    to `target(key)`, the entry it was folded into). An old key without a set makes its new
    entry any-process (absent). Keys of the result are `new_keys`' own objects where they are
    equal (collapse builds new strings: keeping the old ones would hold both copies)."""
    out: dict[K, frozenset[str]] = {}
    unscoped: set[K] = set()
    for key in new_keys:
        if key in old_keys:
            known = processes.get(key)
            if known is None:
                unscoped.add(key)
            else:
                out[key] = known
    for key in old_keys:
        if key in new_keys:
            continue
        dest = target(key)
        if dest is None:
            continue
        known = processes.get(key)
        if known is None:
            unscoped.add(dest)
        else:
            out[dest] = union_processes(out.get(dest), known)
    for key in unscoped:
        out.pop(key, None)
    return out


def regroup_opens(
    old: Mapping[str, frozenset[str]],
    processes: Mapping[str, frozenset[str]],
    new: Mapping[str, frozenset[str]],
) -> dict[str, frozenset[str]]:
    """`processes` of the open paths `old`, regrouped onto the collapsed paths `new`."""
    patterns = [(tuple(k.split("/")), k) for k in new if is_pattern(k)]

    def folded_into(path: str) -> str | None:
        parts = path.split("/")
        for pattern, key in patterns:
            if segments_match(pattern, parts):
                return key
        return None

    return regroup(old, processes, new, folded_into)


def regroup_dns(
    old: Mapping[str, frozenset[str]],
    processes: Mapping[str, frozenset[str]],
    new: Mapping[str, frozenset[str]],
) -> dict[str, frozenset[str]]:
    """`processes` of the DNS names `old`, regrouped onto the generalised names `new`."""

    def folded_into(name: str) -> str | None:
        wildcard = DNS_WILDCARD_PREFIX + name.partition(".")[2]
        return wildcard if wildcard in new else None

    return regroup(old, processes, new, folded_into)


def bound(entries: Entries, limit: int, counts: Counter[str] | None = None) -> None:
    """Turn every process set with more than `limit` executables into any-process, in place
    (`counts[OVERFLOW]` grows by the entries turned)."""
    _bound_section(entries.open_procs, limit, counts)
    _bound_section(entries.dns_procs, limit, counts)
    _bound_section(entries.egress_procs, limit, counts)


def _bound_section(
    section: dict[K, frozenset[str]], limit: int, counts: Counter[str] | None
) -> None:
    over = [k for k, v in section.items() if len(v) > limit and ANY_PROCESS not in v]
    for key in over:
        section[key] = ANY_PROCESS_SET
    if counts is not None and over:
        counts[OVERFLOW] += len(over)
