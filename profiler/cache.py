"""`ProfileCache`: the concrete read model the detector asks (`ProfileReadModel`).

Data flow::

    Learner (on event time) ──publish──►┐
                                        ├─► join ─► CompiledProfile ─► Detector.get
    store watch / write results ─upsert─►┘

The learner publishes every lifecycle decision while it handles the event that caused it; the
store feed adds what other nodes wrote. Each change is compiled once, lazily, into a
`CompiledProfile` (a `ProfileView`) whose questions are dictionary and set lookups, so they can
sit on the per-event hot path. Compilation costs O(entries) per change (lifecycle transitions
and flushes, not events); reads cost O(1) for exact entries, plus a scan of the (few) wildcard
patterns with the same segment count on a miss.

Semantics of the questions (kept exact; the detector's anomaly rules rely on them):

- `allows_exec(path, args)`: the executable path (exact or matching a ``⋯`` pattern) was seen
  with exactly this argument list, or with an entry whose argument list is empty (an entry
  without arguments allows any arguments);
- `allows_exec_path(path)`: the executable path was seen, with any arguments;
- `allows_open(path, flags)`: after lexical normalisation and ``/proc/<pid>`` collapse the path
  matches an entry (exact or
  wildcard) and the union of the matching entries' flags contains every requested flag;
- `allows_syscall(name)`, `allows_capability(cap)`: the name was recorded (case as IG reports:
  syscalls lower-case, capabilities ``CAP_*``; a capability without the prefix is accepted);
- `allows_domain(name)`: the name (lower-cased, trailing dot removed) was queried, or a
  ``*.suffix`` entry covers it;
- `allows_egress(addr, port, proto)`: (address, port, protocol) was seen, or an entry with
  address ``*`` for that port and protocol exists;
- `allows_ingress(port, proto)`: a connection was accepted on that local port and protocol;
- `opened_under(directory)`: some recorded open path lies in the directory (answers are
  memoised per directory: rules ask about a handful of fixed directories);
- `rule_policy(rule_id)`: the process names the profile's per-rule policy allows.
- `allows_peer(peer, port)`: an outgoing connection went to a peer of this identity
  (`identity.peer_key`: workload, Service, or unnamed address) on this port, at any address.

Process-aware profiles add one question per resource, asked only once the resource is known:
`open_sources(path)`, `sources_under(directory)`, `domain_sources(name)`,
`egress_sources(addr, port, proto)` and `peer_sources(peer, port)` return the executables that
reached it while learning (the union over every entry that matches: exact, ``⋯`` or ``*.``
patterns), or None when any process may (an entry without a set, a set holding ``*``, or a
profile that records no processes at all: `process_aware` is False and every answer is None).

Protocols are compared upper-case. Only `status == completed` profiles should drive anomaly
rules; the view answers for any status and the detector decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import structlog

from gadgetclient.pathnorm import is_normal, normalise_path
from profiler.collapsing import PathMatcher, collapse_proc
from profiler.errors import ProfilerError
from profiler.identity import PeerKey, WorkloadKey, peer_key
from profiler.merging import merge_meta, merged
from profiler.profiles import ANY_ADDRESS, ANY_PROCESS, Egress, Profile
from profiler.readmodel import ProfileStatus
from profiler.stats import ProfilerStats

log = structlog.get_logger(__name__)


#: Directories whose `opened_under` answer is memoised per profile version: the rules ask
#: about the four service-account token directories; 64 leaves room without growing unbounded.
_UNDER_MEMO_MAX = 64


class CompiledProfile:
    """An immutable, lookup-optimized `ProfileView` of one stored profile version."""

    __slots__ = (
        "_caps",
        "_domain_suffixes",
        "_domains",
        "_egress",
        "_egress_addresses",
        "_egress_procs",
        "_execs",
        "_ingress",
        "_opens",
        "_peer_procs",
        "_peers",
        "_suffixes",
        "_syscalls",
        "_under",
        "process_aware",
        "profile",
    )

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        entries = profile.entries
        self._execs = PathMatcher(entries.execs)
        self._opens = PathMatcher(entries.opens)
        self._syscalls = frozenset(entries.syscalls)
        self._caps = frozenset(cap for cap, _ in entries.capabilities)
        self._domains = frozenset(entries.dns)
        self._domain_suffixes = tuple(n[1:] for n in entries.dns if n.startswith("*."))
        self._egress = frozenset((a, port, proto) for a, port, proto, _ in entries.egress)
        self._ingress = frozenset((port, proto) for port, proto, _, _ in entries.ingress)
        self._under: dict[str, bool] = {}
        self._suffixes: dict[str, bool] = {}
        self._egress_addresses = frozenset(a for a, _, _ in self._egress)
        self._peers = frozenset(
            (peer_key(peer, addr), port) for addr, port, _, peer in entries.egress
        )
        #: Some entry records its processes (process-aware profile).
        self.process_aware = entries.process_aware()
        self._egress_procs: dict[tuple[str, int, str], frozenset[str] | None] = {}
        self._peer_procs: dict[tuple[PeerKey, int], frozenset[str] | None] = {}
        if entries.egress_procs:
            procs = entries.egress_procs
            for e in entries.egress:
                addr, port, proto, peer = e
                _fold(self._egress_procs, (addr, port, proto), procs, e)
                _fold(self._peer_procs, (peer_key(peer, addr), port), procs, e)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def status(self) -> ProfileStatus:
        return self.profile.meta.status

    @property
    def key(self) -> WorkloadKey:
        return self.profile.key

    @property
    def reason(self) -> str:
        return self.profile.meta.reason

    def allows_exec(self, path: str, args: Sequence[str]) -> bool:
        arg_sets = self._execs.matching(path)
        if not arg_sets:
            return False
        wanted = tuple(args)
        return any(() in s or wanted in s for s in arg_sets)

    def allows_exec_path(self, path: str) -> bool:
        return bool(self._execs.matching(path))

    def allows_open(self, path: str, flags: Sequence[str]) -> bool:
        if not is_normal(path):
            path = normalise_path(path)
        return self._opens.covers(collapse_proc(path), flags)

    def opened_under(self, directory: str) -> bool:
        known = self._under.get(directory)
        if known is not None:
            return known
        prefix = directory.rstrip("/") + "/"
        found = any(p == directory or p.startswith(prefix) for p in self.profile.entries.opens)
        if len(self._under) < _UNDER_MEMO_MAX:
            self._under[directory] = found
        return found

    def opened_with_suffix(self, suffix: str) -> bool:
        known = self._suffixes.get(suffix)
        if known is not None:
            return known
        found = any(p.endswith(suffix) for p in self.profile.entries.opens)
        if len(self._suffixes) < _UNDER_MEMO_MAX:
            self._suffixes[suffix] = found
        return found

    def rule_policy(self, rule_id: str) -> frozenset[str] | None:
        return self.profile.entries.rule_policies.get(rule_id)

    def allows_syscall(self, name: str) -> bool:
        return name in self._syscalls

    def allows_capability(self, capability: str) -> bool:
        if capability in self._caps:
            return True
        return not capability.startswith("CAP_") and f"CAP_{capability.upper()}" in self._caps

    def allows_domain(self, name: str) -> bool:
        if name in self._domains:
            return True
        normal = name.lower().rstrip(".")
        if normal in self._domains:
            return True
        return any(normal.endswith(suffix) for suffix in self._domain_suffixes)

    def allows_egress(self, addr: str, port: int, proto: str) -> bool:
        proto = proto.upper()
        return (addr, port, proto) in self._egress or (ANY_ADDRESS, port, proto) in self._egress

    def egress_to(self, addr: str) -> bool:
        return addr in self._egress_addresses

    def allows_ingress(self, port: int, proto: str) -> bool:
        return (port, proto.upper()) in self._ingress

    def allows_peer(self, peer: PeerKey, port: int) -> bool:
        return (peer, port) in self._peers

    # -- process-aware questions: None means any process --------------------------------------

    def open_sources(self, path: str) -> frozenset[str] | None:
        procs = self.profile.entries.open_procs
        if not procs:
            return None
        if not is_normal(path):
            path = normalise_path(path)
        keys = self._opens.matching_keys(collapse_proc(path))
        return _join(procs.get(k) for k in keys) if keys else None

    def sources_under(self, directory: str) -> frozenset[str] | None:
        procs = self.profile.entries.open_procs
        if not procs:
            return None
        prefix = directory.rstrip("/") + "/"
        keys = [p for p in self.profile.entries.opens if p == directory or p.startswith(prefix)]
        return _join(procs.get(k) for k in keys) if keys else None

    def domain_sources(self, name: str) -> frozenset[str] | None:
        procs = self.profile.entries.dns_procs
        if not procs:
            return None
        normal = name.lower().rstrip(".")
        keys = {n for n in (name, normal) if n in self._domains}
        keys.update("*" + s for s in self._domain_suffixes if normal.endswith(s))
        return _join(procs.get(k) for k in keys) if keys else None

    def egress_sources(self, addr: str, port: int, proto: str) -> frozenset[str] | None:
        if not self._egress_procs:
            return None
        proto = proto.upper()
        keys = [k for k in ((addr, port, proto), (ANY_ADDRESS, port, proto)) if k in self._egress]
        return _join(self._egress_procs.get(k) for k in keys) if keys else None

    def peer_sources(self, peer: PeerKey, port: int) -> frozenset[str] | None:
        if not self._peer_procs or (peer, port) not in self._peers:
            return None
        return self._peer_procs.get((peer, port))


_K = TypeVar("_K", bound=Hashable)


def _fold(
    into: dict[_K, frozenset[str] | None],
    key: _K,
    procs: Mapping[Egress, frozenset[str]],
    entry: Egress,
) -> None:
    """Union the process set of `entry` into `into[key]`; None (any process) absorbs."""
    if key in into and into[key] is None:
        return
    known = procs.get(entry)
    if known is None or ANY_PROCESS in known:
        into[key] = None
        return
    mine = into.get(key)
    into[key] = known if mine is None else mine | known


def _join(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """The union of entries' process sets; None (any process) when one of them allows any."""
    out: frozenset[str] = frozenset()
    for known in sets:
        if known is None or ANY_PROCESS in known:
            return None
        out = out | known
    return out


class ProfileCache:
    """The single owner, on this node, of what each workload's profile allows right now.

    Two feeds, each with its own entry point, and one answer per key:

    - `publish(profile)`: the local learner's decisions (completed, partial, reopened for
      relearning, too-large, collapse), delivered synchronously while the learner handles the
      event that caused them, so the detector judges the very next event of the workload
      against them; no timer, store or replay speed sits between the two;
    - `upsert`/`remove` (the `ProfileSink` role): what the store holds, fed by its watch and by
      the learner's write results; this is how other nodes' entries arrive.

    The answer for a key is the *join* of the two (`merging.merged`: entries are a union,
    lifecycle metadata a lattice join in which a reopened series outranks an older one). A join
    does not depend on the order the feeds arrive in, so a store version that predates a local
    decision (a watch event still in flight, a directory rescan that read the file before the
    last write) can never undo it, and a later store version only adds to it. Views are compiled
    lazily, once per change, on the first lookup after it. All methods run on the event loop.
    """

    def __init__(self, stats: ProfilerStats | None = None) -> None:
        self.stats = stats if stats is not None else ProfilerStats()
        self._views: dict[WorkloadKey, CompiledProfile] = {}
        self._stored: dict[WorkloadKey, Profile] = {}
        self._local: dict[WorkloadKey, Profile] = {}
        #: Effective status per key, for the `by_status` gauge (kept without compiling).
        self._status: dict[WorkloadKey, ProfileStatus] = {}
        self._ready = asyncio.Event()

    # -- ProfileReadModel -------------------------------------------------------------------

    def get(self, key: WorkloadKey) -> CompiledProfile | None:
        view = self._views.get(key)
        if view is None and key in self._status:
            view = self._compile(key)
        return view

    # -- extras for the learner and the CLI ---------------------------------------------------

    def profile(self, key: WorkloadKey) -> Profile | None:
        view = self.get(key)
        return view.profile if view is not None else None

    def keys(self) -> Iterator[WorkloadKey]:
        return iter(list(self._status))

    def __len__(self) -> int:
        return len(self._status)

    async def wait_synced(self) -> None:
        """Return once the store's initial listing has been loaded."""
        await self._ready.wait()

    # -- the learner's feed -----------------------------------------------------------------

    def publish(self, profile: Profile) -> None:
        """The local learner decided `profile` (a copy it will not mutate): visible at once."""
        self._local[profile.key] = profile
        self._changed(profile.key)

    # -- ProfileSink: the store's feed ------------------------------------------------------

    def upsert(self, profile: Profile) -> None:
        old = self._stored.get(profile.key)
        if old is not None and _older(profile.resource_version, old.resource_version):
            # Two store feeds race here: the learner's own write result and the store's watch
            # (or the directory rescan). Only the newest stored version is kept; the join with
            # the local decisions below makes the race harmless for them anyway.
            return
        self._stored[profile.key] = profile
        self._changed(profile.key)

    def remove(self, key: WorkloadKey) -> None:
        """The stored object is gone. What this node's learner decided stays until it decides
        again (its next write recreates the object); without local state the key is gone."""
        if self._stored.pop(key, None) is None:
            return
        if key in self._local:
            self._changed(key)
            return
        self._views.pop(key, None)
        old = self._status.pop(key, None)
        if old is not None:
            self.stats.by_status[old.value] -= 1

    def invalid(self, error: ProfilerError) -> None:
        self.stats.errors[("cache", "invalid")] += 1
        log.error("profile ignored", object=error.obj, field=error.field, error=error.message)

    def synced(self) -> None:
        self._ready.set()

    # -- the join -----------------------------------------------------------------------------

    def _changed(self, key: WorkloadKey) -> None:
        self._views.pop(key, None)
        local, stored = self._local.get(key), self._stored.get(key)
        if local is not None and stored is not None:
            status = merge_meta(local.meta, stored.meta).status
        else:
            chosen = local if local is not None else stored
            assert chosen is not None
            status = chosen.meta.status
        old = self._status.get(key)
        if old is not status:
            if old is not None:
                self.stats.by_status[old.value] -= 1
            self.stats.by_status[status.value] += 1
            self._status[key] = status

    def _compile(self, key: WorkloadKey) -> CompiledProfile:
        local, stored = self._local.get(key), self._stored.get(key)
        if local is not None and stored is not None:
            profile = merged(local, stored)
            profile.resource_version = stored.resource_version
        else:
            chosen = local if local is not None else stored
            assert chosen is not None
            profile = chosen
        view = CompiledProfile(profile)
        self._views[key] = view
        return view


def _older(candidate: str, current: str) -> bool:
    """Whether `candidate` is an older resourceVersion than `current`.

    Kubernetes calls resourceVersions opaque, but both of our stores issue increasing integers
    (etcd revisions; the directory store's counter). Anything else is never called older.
    """
    try:
        return int(candidate) < int(current)
    except ValueError:
        return False
