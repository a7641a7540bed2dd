"""The write side: turn typed events into per-workload-container profiles and flush them.

Data flow::

    observe_until(batch, i) ─► per event: container -> _Track (identity resolved once)
                      lifecycle check on event time ─► membership test ─► add to profile + delta
                      every lifecycle decision ─► cache.publish (the detector sees it for the
                      workload's very next event; see `observe_until` for the exact contract)
    flush()        ─► tick (close learning periods) ─► per dirty track: write_merged(delta)
                      ─► adopt what the store holds (other nodes' entries, collapse, status)
                      ─► cache.upsert (the stored version joins the local decisions)

Event time, end to end: nothing the detector reads about a workload's lifecycle waits for a
flush. A flush only makes the local profile durable and brings other nodes' entries; with
`updatePeriod` 100 ms or 24 h the detector answers every event the same way (the one thing a
flush may change is *when* another node's entries arrive).

Hot path: one dict lookup finds the track of the event's container; the membership test is a
dict/set lookup on values the event already carries (path, argument tuple, flag tuple, small
tuples for network entries), so an already-known entry allocates nothing but the TCP/capability
key tuple. Only a miss copies into the profile and the delta.

Lifecycle (all on event time, `timestamp_ns`; the clock is the largest timestamp seen):

- learning starts at the container's start (``Container.started_at_ns``). A container that
  started more than `attachGrace` before the first event the learner saw (or whose start is
  unknown) was already running: learning starts at its first event and the profile is marked
  partial (its start-up was not seen); one replica observed from its start clears that mark;
- it ends `learningPeriod` later (the pod annotation `learningPeriodAnnotation` overrides it per
  workload): status `completed`, or `partial` when no start-up was seen; events of finished
  profiles are counted as skipped ("profile_completed");
- a partial profile whose workload later starts a container the agent sees from its start
  reopens learning for `rolloutLearningPeriod`, so it can become completed;
- a rollout (an image digest or pod-template revision not seen before) on a finished profile
  follows `rolloutPolicy`: `relearn` (default) reopens learning for `rolloutLearningPeriod`,
  merging into the kept profile; `keep` leaves it finished and only records the revision;
- collapse: when a profile completes (and before the entry cap is judged) its dynamic paths and
  ingress peers collapse here, on event time, exactly as a flush would collapse them;
- `too-large`: the entry cap was reached (here, or after merging with other nodes at flush, or
  the store refused the size); the profile stops growing, and every event it could not take is
  counted ("too_large"); it is never truncated;
- user-owned profiles (imported) are never written by learning ("user_owned").

Process-aware learning (`processAware`, or the pod annotation `processAwareAnnotation`): opens,
DNS names and egress entries also record the executable that reached them (`profiler.sources`),
looked up in the learner's own `ExecTable`, fed by exec events in event order (see
`gadgetclient.processes` for why the learner and the detector each feed one). An executable
that is unknown (its exec was never seen: trace_exec off, the process predates the agent, or
the table forgot it) makes the entry any-process, counted: learning cannot tell who it was,
and narrowing the entry to the processes that happened to be known would alert on the
unknown one later. More than `maxProcessesPerEntry` executables make it any-process too.

Flush: every `updatePeriod` (`run`) or on demand (`flush`). The delta is detached before the
write and merged back if the write fails, so a delta is cleared only once its write succeeded;
a conflict is retried `flushAttempts` times by re-reading and re-merging (see `store.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import structlog

from gadgetclient.durations import parse_duration_text
from gadgetclient.events import (
    CapabilityEvent,
    Container,
    ContainerId,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from gadgetclient.gadget_params import UNRESOLVED_PREFIX
from gadgetclient.processes import ExecTable
from profiler.cache import ProfileCache
from profiler.collapsing import (
    PathMatcher,
    Thresholds,
    collapse_ingress,
    collapse_opens,
    collapse_proc,
    is_pattern,
)
from profiler.config import ProfilerSettings, RolloutPolicy
from profiler.documents import serialized_size
from profiler.errors import (
    ConflictError,
    InvalidProfileError,
    NotFoundError,
    ProfilerError,
    TooLargeError,
)
from profiler.generalizing import (
    DNS_WILDCARD_PREFIX,
    ArgNormalizer,
    Generalization,
    arg_normalizer,
    collapse_dns,
    parse_generalize,
)
from profiler.identity import PodMetadata, WorkloadKey, workload_key
from profiler.merging import merge_entries, merge_meta
from profiler.profiles import (
    ANY_PROCESS,
    ANY_PROCESS_SET,
    NO_PEER,
    REVISION_LABELS,
    Entries,
    ManagedBy,
    Profile,
    ProfileMeta,
    intern_set,
)
from profiler.sources import OVERFLOW, UNKNOWN, bound, regroup_dns, regroup_opens
from profiler.stats import ProfilerStats
from profiler.status import ProfileStatus
from profiler.store import ProfileStore, write_merged

log = structlog.get_logger(__name__)

#: Containers remembered for identity lookups. A node runs at most a few hundred containers
#: (kubelet's default max-pods is 110); 65,536 covers days of restarts and short-lived jobs.
#: Past it the map is cleared: re-resolving identity is cheap and changes no profile.
MAX_TRACKED_CONTAINERS = 65_536

_NS = 1_000_000_000

SKIP_COMPLETED = "profile_completed"
SKIP_TOO_LARGE = "too_large"
SKIP_USER = "user_owned"
SKIP_DISABLED = "disabled"


class EventClock(Protocol):
    """Event time across every stream (`GadgetSource`), for a learner of some containers."""

    @property
    def event_clock_ns(self) -> int: ...

    @property
    def first_event_ns(self) -> int: ...


@dataclass(slots=True)
class _Track:
    """Learner state of one profile."""

    profile: Profile
    #: Entries learned since the last successful flush.
    delta: Entries = field(default_factory=Entries)
    #: Metadata changed since the last successful flush.
    dirty: bool = False
    #: Total entries of `profile` (kept incrementally against the cap).
    count: int = 0
    #: Event time at which learning ends (meaningful while learning).
    end_ns: int = 0
    #: Skip reason while not learning ("" while learning).
    closed: str = ""
    #: Wildcard-aware matcher for opens once the profile holds collapsed paths.
    open_patterns: PathMatcher[str] | None = None
    #: Generalisations learning applies to this profile (settings, narrowed by the annotation).
    generalize: frozenset[Generalization] = frozenset()
    #: Record which executables reach opens, DNS names and egress entries (process-aware).
    processes: bool = False


def _error_reason(exc: ProfilerError) -> str:
    if isinstance(exc, ConflictError):
        return "conflict"
    if isinstance(exc, TooLargeError):
        return "too_large"
    if isinstance(exc, InvalidProfileError):
        return "invalid"
    if isinstance(exc, NotFoundError):
        return "not_found"
    return "store"


def format_period(ns: int) -> str:
    seconds = ns // _NS
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{ns / _NS:g}s"


class Learner:
    """Merges events into profiles (`observe`) and writes them to a store (`flush`, `run`)."""

    def __init__(
        self,
        *,
        settings: ProfilerSettings,
        store: ProfileStore,
        cache: ProfileCache,
        pod_metadata: PodMetadata,
        stats: ProfilerStats,
        attached_at_ns: int = 0,
        event_clock: EventClock | None = None,
    ) -> None:
        self.settings = settings
        #: The event time of every stream, when this learner sees only some containers (one of
        #: N worker processes): it attaches at the first event of any container and a flush
        #: closes learning periods at the latest, as a single process would.
        self._event_clock = event_clock
        self.stats = stats
        self._store = store
        self._cache = cache
        self._pods = pod_metadata
        self._thresholds = Thresholds.from_settings(settings)
        self._generalize = frozenset(settings.generalize)
        self._grace_ns = int(settings.attach_grace.total_seconds() * _NS)
        self._period_ns = int(settings.learning_period.total_seconds() * _NS)
        self._rollout_period_ns = int(settings.rollout_learning_period.total_seconds() * _NS)
        #: Event time the learner started watching (first event, unless given).
        self._attached_at_ns = attached_at_ns
        self._now_ns = 0
        self._tracks: dict[WorkloadKey, _Track] = {}
        self._instances: dict[ContainerId, _Track] = {}
        #: Per container: its identity in arguments (absent when `args` generalisation is off).
        self._normalizers: dict[ContainerId, ArgNormalizer] = {}
        self._flush_lock = asyncio.Lock()
        #: Executable per (container, pid), for process-aware learning.
        self._execs = ExecTable()
        self._execs.evictions = stats.processes_forgotten
        self._exe_of = self._execs.exe_of
        self._exes = self._execs.exes
        self._process_limit = settings.max_processes_per_entry
        #: Decisions made while learning an event, published before the next one is judged.
        self._deferred: list[Profile] = []
        #: Flush rounds in a row in which a write failed (reset by a round without failure).
        self.failed_rounds = 0
        #: The last write error (a full disk, an unreachable API server), "" once writes work.
        self.last_write_error = ""
        self._learn: dict[type[Any], Callable[[_Track, Any], None]] = {
            ExecEvent: self._learn_exec,
            OpenEvent: self._learn_open,
            TcpEvent: self._learn_tcp,
            DnsEvent: self._learn_dns,
            CapabilityEvent: self._learn_capability,
            SyscallsEvent: self._learn_syscalls,
        }

    @property
    def now_ns(self) -> int:
        """The event-time clock: the largest event timestamp seen."""
        return self._now_ns

    def profile(self, key: WorkloadKey) -> Profile | None:
        """The learner's current view of one profile (tests, CLI, debugging)."""
        track = self._tracks.get(key)
        return track.profile if track is not None else None

    def keys(self) -> list[WorkloadKey]:
        return sorted(self._tracks)

    def forget(self, container_id: ContainerId) -> None:
        """The container is gone; drop its identity entry (its profile stays)."""
        self._instances.pop(container_id, None)
        self._normalizers.pop(container_id, None)

    # -- the hot path -------------------------------------------------------------------------

    def observe(self, events: Sequence[Event]) -> None:
        """Merge a whole batch (tests, tools). Never raises: a bad event is counted and skipped.

        The agent's pipeline calls `observe_until` instead, to interleave the detector."""
        start = 0
        while start < len(events):
            start = self.observe_until(events, start)
        self._publish_deferred()

    def observe_until(self, events: Sequence[Event], start: int = 0) -> int:
        """Merge ``events[start:]`` up to the next lifecycle transition; return where it stopped.

        The contract the pipeline relies on: when this returns ``stop``, the read model
        (`ProfileCache`) holds exactly the state ``events[start:stop]`` must be judged against,
        so the detector evaluates that slice and then calls this again from ``stop``. A
        transition an event causes *before* it is learned (its container's first event joins
        or reopens a profile; its timestamp closes a learning period) applies to that event:
        the call stops just before it, unless it is the first of the call, in which case the
        transition is published at once. A transition an event causes *by* being learned (the
        entry cap) applies from the next event: it is published at the start of the next call.
        Never raises: a bad event is counted and skipped.
        """
        self._publish_deferred()
        merged = self.stats.merged
        skipped = self.stats.skipped
        enabled = self.settings.enabled
        instances = self._instances
        for i in range(start, len(events)):
            event = events[i]
            try:
                ts = event.timestamp_ns
                if not enabled:
                    self._tick_clock(ts)
                    skipped[(event.kind, SKIP_DISABLED)] += 1
                    continue
                track = instances.get(event.container.key)
                if i > start and (
                    track is None or ((ts < track.end_ns) if track.closed else (ts >= track.end_ns))
                ):
                    return i  # a transition or a late learning event: judged after it
                if ts > self._now_ns:
                    self._now_ns = ts
                    if not self._attached_at_ns:
                        self._attached_at_ns = self._first_event_ns(ts)
                if track is None:
                    track = self._attach(event.container, ts)
                if track.processes and type(event) is ExecEvent:
                    self._execs.record(event)
                if track.closed:
                    if ts < track.end_ns:  # only finished tracks have end_ns set when closed
                        self._learn_late(track, event)
                        continue
                    skipped[(event.kind, track.closed)] += 1
                    continue
                if ts >= track.end_ns:
                    self._finish(track)
                    skipped[(event.kind, track.closed)] += 1
                    continue
                uid = event.process.uid
                meta = track.profile.meta
                if uid not in meta.uids:
                    meta.uids.add(uid)
                    track.dirty = True
                self._learn[type(event)](track, event)
                if track.closed:  # the cap was reached by this very event
                    skipped[(event.kind, track.closed)] += 1
                    return i + 1
                merged[event.kind] += 1
            except Exception as exc:  # one bad event never stops the batch
                self.stats.errors[("learning", type(exc).__name__)] += 1
                log.error(
                    "event not learned", kind=str(getattr(event, "kind", "?")), error=repr(exc)
                )
        return len(events)

    def _learn_late(self, track: _Track, event: Event) -> None:
        """An event stamped inside the finished learning period, arriving after it closed.

        IG's gadget streams are independent, so an open event of a container can arrive after
        an exec event of the same container that is later in event time (and a flush may close
        a period on another stream's clock). Judging on event time means the late event is
        learned like any learning event, and the profile the detector sees grows with it
        (published at once), so it is never reported as an anomaly because it arrived late.
        """
        before = track.delta.total()
        self._learn[type(event)](track, event)
        self.stats.merged[event.kind] += 1
        if track.closed == SKIP_COMPLETED and track.delta.total() != before:
            track.dirty = True
            self._cache.publish(track.profile.copy())

    def _first_event_ns(self, ts: int) -> int:
        clock = self._event_clock
        first = clock.first_event_ns if clock is not None else 0
        return min(first, ts) if first else ts

    def _tick_clock(self, ts: int) -> None:
        if ts > self._now_ns:
            self._now_ns = ts
            if not self._attached_at_ns:
                self._attached_at_ns = self._first_event_ns(ts)

    def _publish_deferred(self) -> None:
        if self._deferred:
            for profile in self._deferred:
                self._cache.publish(profile)
            self._deferred.clear()

    def _room(self, track: _Track, n: int = 1) -> bool:
        if track.count + n <= self.settings.max_entries:
            return True
        # Collapse first, on event time: the cap then counts what the stored profile would
        # count, whether or not a flush (which collapses too) happened to run before.
        self._collapse(track)
        if track.count + n <= self.settings.max_entries:
            return True
        reason = f"entries {track.count + n} > cap {self.settings.max_entries}"
        self._mark_too_large(track, reason, defer=True)
        return False

    def _collapse(self, track: _Track) -> None:
        """Collapse and generalise the track's profile now, on event time, as a flush would
        (without counting: the flush counts each literal it folds once)."""
        entries = track.profile.entries
        kinds = _while_learning(track.generalize, track.profile.meta.status)
        self._collapse_entries(entries, kinds, count=False)
        track.count = entries.total()
        has_patterns = any(is_pattern(path) for path in entries.opens)
        track.open_patterns = PathMatcher(entries.opens) if has_patterns else None

    def _learn_exec(self, track: _Track, event: ExecEvent) -> None:
        entries = track.profile.entries
        args = event.args
        known = entries.execs.get(event.path)
        if known is not None and args in known:
            return  # known literally: no identity in it (the common case, no normalising)
        normalizer = self._normalizers.get(event.container.key)
        if normalizer is not None:
            args = normalizer.normalize(args)
            if known is not None and args in known:
                return
        if type(event.path) is not str or type(args) is not tuple:
            raise TypeError("exec path must be a str and args a tuple")
        if self._room(track):
            entries.add_exec(event.path, args)
            track.delta.add_exec(event.path, args)
            track.count += 1
            if args is not event.args:
                self.stats.generalized[Generalization.ARGS.value] += 1

    def _scope(
        self,
        procs: dict[Any, frozenset[str]],
        delta: dict[Any, frozenset[str]],
        key: Any,
        exe: str,
        *,
        new: bool,
    ) -> bool:
        """Record that `exe` ("" unknown) reached the entry `key`; True when its set changed.

        `new`: the entry was just learned. An older entry without a set allows any process
        (learned with the option off) and stays so. The delta gets the entry's whole set, so
        merging it into the stored object never reads as "held without a set"."""
        known = procs.get(key)
        if known is None:
            if not new:
                return False
            updated = intern_set(frozenset((exe,))) if exe else ANY_PROCESS_SET
        elif ANY_PROCESS in known or exe in known:
            return False
        elif not exe:
            updated = ANY_PROCESS_SET
        else:
            updated = intern_set(known | {exe})
            if len(updated) > self._process_limit:
                updated = ANY_PROCESS_SET
                self.stats.process_scope_dropped[OVERFLOW] += 1
        if not exe:
            self.stats.process_scope_dropped[UNKNOWN] += 1
        procs[key] = updated
        delta[key] = updated
        return True

    def _learn_open(self, track: _Track, event: OpenEvent) -> None:
        path = event.path
        if path.startswith("/proc/"):
            path = collapse_proc(path)
        entries = track.profile.entries
        known = entries.opens.get(path)
        if known is not None and known.issuperset(event.flags):
            if track.processes:
                procs = entries.open_procs.get(path)
                if procs is not None and procs is not ANY_PROCESS_SET:
                    # `ExecTable.exe_of`, inlined: this is the commonest event of all.
                    process = event.process
                    exe = process.exe
                    if not exe or exe.startswith(UNRESOLVED_PREFIX):
                        container = event.container
                        pids = self._exes.get(container.container_id or container.key)
                        ran = pids.get(process.pid) if pids is not None else None
                        exe = ran[0] if ran is not None else ""
                    if exe not in procs:
                        self._scope_open(track, path, exe, new=False)
            return
        patterns = track.open_patterns
        if known is None and patterns is not None and patterns.covers(path, event.flags):
            if track.processes:
                exe = self._exe_of(event)
                for key in patterns.matching_keys(path):
                    self._scope_open(track, key, exe, new=False)
            return
        if known is not None or self._room(track):
            if known is None:
                track.count += 1
            entries.add_open(path, event.flags)
            track.delta.add_open(path, event.flags)
            if track.processes:
                self._scope_open(track, path, self._exe_of(event), new=known is None)

    def _scope_open(self, track: _Track, path: str, exe: str, *, new: bool) -> None:
        entries, delta = track.profile.entries, track.delta
        if self._scope(entries.open_procs, delta.open_procs, path, exe, new=new):
            delta.add_open(path, entries.opens[path])
        elif path in delta.open_procs or path not in delta.opens:
            return
        elif path in entries.open_procs:
            delta.open_procs[path] = entries.open_procs[path]

    def _learn_tcp(self, track: _Track, event: TcpEvent) -> None:
        # IG reports src as the local end and dst as the remote end for every event type.
        entries = track.profile.entries
        if event.type is TcpEventType.CONNECT:
            peer = event.dst_peer if event.dst_peer.kind in ("pod", "svc") else NO_PEER
            egress = (event.dst_addr, event.dst_port, event.proto, peer)
            if egress not in entries.egress:
                if self._room(track):
                    entries.egress.add(egress)
                    track.delta.egress.add(egress)
                    track.count += 1
                    if track.processes:
                        self._scope_egress(track, egress, self._exe_of(event), new=True)
            elif track.processes:
                procs = entries.egress_procs.get(egress)
                if procs is not None and procs is not ANY_PROCESS_SET:
                    exe = self._exe_of(event)
                    if exe not in procs:
                        self._scope_egress(track, egress, exe, new=False)
        elif event.type is TcpEventType.ACCEPT:
            peer = event.dst_peer if event.dst_peer.kind in ("pod", "svc") else NO_PEER
            ingress = (event.src_port, event.proto, event.dst_addr, peer)
            if ingress not in entries.ingress and self._room(track):
                entries.ingress.add(ingress)
                track.delta.ingress.add(ingress)
                track.count += 1
        # CLOSE carries no behaviour the connect/accept did not already record.

    def _scope_egress(self, track: _Track, egress: Any, exe: str, *, new: bool) -> None:
        entries, delta = track.profile.entries, track.delta
        if self._scope(entries.egress_procs, delta.egress_procs, egress, exe, new=new):
            delta.egress.add(egress)

    def _learn_dns(self, track: _Track, event: DnsEvent) -> None:
        entries = track.profile.entries
        known = entries.dns.get(event.name)
        if known is not None and known.issuperset(event.addresses):
            if track.processes:
                procs = entries.dns_procs.get(event.name)
                if procs is not None and procs is not ANY_PROCESS_SET:
                    exe = self._exe_of(event)
                    if exe not in procs:
                        self._scope_dns(track, event.name, exe, new=False)
            return
        if known is None and entries.dns and Generalization.DNS in track.generalize:
            # A learned `*.<parent>` takes later names under that parent (addresses unioned).
            wildcard = DNS_WILDCARD_PREFIX + event.name.partition(".")[2]
            covered = entries.dns.get(wildcard)
            if covered is not None:
                if not covered.issuperset(event.addresses):
                    entries.add_dns(wildcard, event.addresses)
                    track.delta.add_dns(wildcard, event.addresses)
                if track.processes:
                    self._scope_dns(track, wildcard, self._exe_of(event), new=False)
                return
        if known is not None or self._room(track):
            if known is None:
                track.count += 1
            entries.add_dns(event.name, event.addresses)
            track.delta.add_dns(event.name, event.addresses)
            if track.processes:
                self._scope_dns(track, event.name, self._exe_of(event), new=known is None)

    def _scope_dns(self, track: _Track, name: str, exe: str, *, new: bool) -> None:
        entries, delta = track.profile.entries, track.delta
        if self._scope(entries.dns_procs, delta.dns_procs, name, exe, new=new):
            delta.add_dns(name, entries.dns[name])
        elif name in delta.dns and name not in delta.dns_procs and name in entries.dns_procs:
            delta.dns_procs[name] = entries.dns_procs[name]

    def _learn_capability(self, track: _Track, event: CapabilityEvent) -> None:
        pair = (event.capability, event.syscall)
        entries = track.profile.entries
        if pair not in entries.capabilities and self._room(track):
            entries.capabilities.add(pair)
            track.delta.capabilities.add(pair)
            track.count += 1

    def _learn_syscalls(self, track: _Track, event: SyscallsEvent) -> None:
        entries = track.profile.entries
        if event.syscalls <= entries.syscalls:
            return
        new = event.syscalls - entries.syscalls
        if self._room(track, len(new)):
            entries.syscalls |= new
            track.delta.syscalls |= new
            track.count += len(new)

    # -- identity and lifecycle ---------------------------------------------------------------

    def _attach(self, container: Container, ts: int) -> _Track:
        """First event of a container: resolve its profile and apply the lifecycle rules."""
        key = workload_key(container, self._pods)
        started = container.started_at_ns
        attached = started == 0 or started < self._attached_at_ns - self._grace_ns
        start = ts if attached else started
        labels = dict(container.pod_labels)
        revision = labels.get("pod-template-hash") or labels.get("controller-revision-hash", "")
        track = self._tracks.get(key)
        if track is None:
            track = self._new_track(key, container, start=start, attached=attached)
            self._tracks[key] = track
        self._join(track, container, start=start, attached=attached, revision=revision)
        self._record_provenance(track, container, revision=revision, labels=labels)
        track.generalize = self._generalizations(container)
        track.processes = self._process_aware(container)
        if len(self._instances) >= MAX_TRACKED_CONTAINERS:
            self._instances.clear()
            self._normalizers.clear()
        self._instances[container.key] = track
        if Generalization.ARGS in track.generalize:
            ip = ""
            if container.namespace and container.pod and not container.host_network:
                ip = self._pods.pod_ip(container.namespace, container.pod)
            normalizer = arg_normalizer(container, ip)
            if normalizer:
                self._normalizers[container.key] = normalizer
        return track

    def _generalizations(self, container: Container) -> frozenset[Generalization]:
        """The settings' generalisations, narrowed by the pod's annotation."""
        enabled = self._generalize
        if not (enabled and container.namespace and container.pod):
            return enabled
        annotations = self._pods.annotations(container.namespace, container.pod)
        raw = annotations.get(self.settings.generalize_annotation)
        if raw is None:
            return enabled
        chosen = parse_generalize(raw)
        if chosen is None:
            self.stats.errors[("annotation", "invalid")] += 1
            log.error(
                "invalid generalize annotation",
                pod=f"{container.namespace}/{container.pod}",
                annotation=self.settings.generalize_annotation,
                value=raw,
            )
            return enabled
        return enabled & chosen

    def _process_aware(self, container: Container) -> bool:
        """The setting, or the pod's annotation when it says `true` or `false`."""
        enabled = self.settings.process_aware
        if not (container.namespace and container.pod):
            return enabled
        annotations = self._pods.annotations(container.namespace, container.pod)
        raw = annotations.get(self.settings.process_aware_annotation)
        if raw is None:
            return enabled
        value = raw.strip().lower()
        if value in ("true", "false"):
            return value == "true"
        self.stats.errors[("annotation", "invalid")] += 1
        log.error(
            "invalid process-aware annotation",
            pod=f"{container.namespace}/{container.pod}",
            annotation=self.settings.process_aware_annotation,
            value=raw,
        )
        return enabled

    def _new_track(
        self, key: WorkloadKey, container: Container, *, start: int, attached: bool
    ) -> _Track:
        stored = self._cache.profile(key)
        if stored is not None:
            profile = stored.copy()
            track = _Track(profile=profile, count=profile.entries.total())
            self._sync_state(track)
            return track
        period = self._learning_period(container)
        reason = "learning from container start"
        if attached:
            reason = "learning; the container was already running (start-up not seen)"
        meta = ProfileMeta(
            status=ProfileStatus.LEARNING,
            reason=reason,
            partial=attached,
            learning_start_ns=start,
            learning_period_ns=period,
            updated_ns=start,
        )
        track = _Track(profile=Profile(key=key, meta=meta), dirty=True)
        self._sync_state(track)
        # The detector now says "learning" for this workload, not "no profile", whether or
        # not a flush has run.
        self._cache.publish(track.profile.copy())
        return track

    def _join(
        self, track: _Track, container: Container, *, start: int, attached: bool, revision: str
    ) -> None:
        """A container (replica, restart, new revision) joins an existing profile."""
        meta = track.profile.meta
        if meta.managed_by is ManagedBy.USER or meta.status is ProfileStatus.TOO_LARGE:
            return
        if meta.status is ProfileStatus.LEARNING:
            if meta.partial and not attached:
                meta.partial = False
                meta.reason = "learning from container start"
                track.dirty = True
            return
        digest = container.image_digest
        new_digest = bool(digest and meta.image_digests and digest not in meta.image_digests)
        new_revision = bool(revision and meta.revisions and revision not in meta.revisions)
        if new_digest or new_revision:
            if self.settings.rollout_policy is RolloutPolicy.RELEARN:
                what = f"image digest {digest}" if new_digest else f"revision {revision}"
                self._reopen(track, start=start, attached=attached, reason=f"rollout: new {what}")
            return
        if meta.status is ProfileStatus.PARTIAL and not attached:
            self._reopen(
                track,
                start=start,
                attached=False,
                reason="partial profile: learning again from an observed container start",
            )

    def _reopen(self, track: _Track, *, start: int, attached: bool, reason: str) -> None:
        meta = track.profile.meta
        meta.series += 1
        meta.status = ProfileStatus.LEARNING
        meta.reason = reason
        meta.partial = attached
        meta.learning_start_ns = start
        meta.learning_period_ns = self._rollout_period_ns
        track.dirty = True
        self._sync_state(track)
        self._cache.publish(track.profile.copy())
        log.info("profile learning reopened", profile=track.profile.key.display(), reason=reason)

    def _record_provenance(
        self, track: _Track, container: Container, *, revision: str, labels: dict[str, str]
    ) -> None:
        meta = track.profile.meta
        if meta.managed_by is ManagedBy.USER:
            return
        before = (len(meta.image_digests), len(meta.revisions), len(meta.images))
        if container.image_digest:
            meta.image_digests.add(container.image_digest)
        if revision:
            meta.revisions.add(revision)
        if container.image:
            meta.images.add(container.image)
        stable = {k: v for k, v in labels.items() if k not in REVISION_LABELS}
        if container.namespace and container.pod:
            pod_labels = self._pods.labels(container.namespace, container.pod)
            stable.update((k, v) for k, v in pod_labels.items() if k not in REVISION_LABELS)
            mounts = self._pods.volume_mounts(
                container.namespace, container.pod, container.container
            )
            if not set(mounts) <= meta.volume_mounts:
                meta.volume_mounts.update(mounts)
                track.dirty = True
        if stable and stable != meta.labels:
            meta.labels = stable
            track.dirty = True
        if before != (len(meta.image_digests), len(meta.revisions), len(meta.images)):
            track.dirty = True

    def _learning_period(self, container: Container) -> int:
        if not (container.namespace and container.pod):
            return self._period_ns
        annotations = self._pods.annotations(container.namespace, container.pod)
        raw = annotations.get(self.settings.learning_period_annotation)
        if raw is None:
            return self._period_ns
        parsed = parse_duration_text(raw)
        if parsed is None or parsed <= timedelta(0):
            self.stats.errors[("annotation", "invalid")] += 1
            log.error(
                "invalid learning period annotation",
                pod=f"{container.namespace}/{container.pod}",
                annotation=self.settings.learning_period_annotation,
                value=raw,
            )
            return self._period_ns
        return int(parsed.total_seconds() * _NS)

    def _sync_state(self, track: _Track) -> None:
        """Derive the hot-path fields (`closed`, `end_ns`, `open_patterns`) from the profile."""
        meta = track.profile.meta
        if meta.managed_by is ManagedBy.USER:
            track.closed = SKIP_USER
            track.end_ns = 0
        elif meta.status is ProfileStatus.TOO_LARGE:
            track.closed = SKIP_TOO_LARGE
            track.end_ns = 0
        elif meta.status is not ProfileStatus.LEARNING:
            # Kept on a finished track: an event stamped before it belongs to the learning
            # period, however late it arrives (`_learn_late`).
            track.closed = SKIP_COMPLETED
            track.end_ns = meta.learning_end_ns
        else:
            track.closed = ""
            track.end_ns = meta.learning_end_ns
        opens = track.profile.entries.opens
        has_patterns = any(is_pattern(path) for path in opens)
        track.open_patterns = PathMatcher(opens) if has_patterns else None

    def _finish(self, track: _Track) -> None:
        meta = track.profile.meta
        meta.status = ProfileStatus.PARTIAL if meta.partial else ProfileStatus.COMPLETED
        meta.reason = f"learning period {format_period(meta.learning_period_ns)} elapsed"
        if meta.partial:
            meta.reason += "; start-up of the containers was not seen"
        meta.updated_ns = max(meta.updated_ns, meta.learning_end_ns)
        track.dirty = True
        # The detector judges against this profile from now on, possibly before the next flush
        # collapses it: collapse and generalise it here too, so a replay's alerts do not depend
        # on when the wall-clock flush timer fired.
        self._collapse(track)
        self._sync_state(track)
        self._cache.publish(track.profile.copy())
        log.info("profile learned", profile=track.profile.key.display(), status=meta.status.value)

    def _mark_too_large(self, track: _Track, reason: str, *, defer: bool = False) -> None:
        """`defer`: the event being learned caused it; it applies from the next event."""
        meta = track.profile.meta
        meta.status = ProfileStatus.TOO_LARGE
        meta.reason = reason
        track.dirty = True
        self._sync_state(track)
        if defer:
            self._deferred.append(track.profile.copy())
        else:
            self._cache.publish(track.profile.copy())
        log.error("profile too large", profile=track.profile.key.display(), reason=reason)

    def tick(self, now_ns: int | None = None) -> None:
        """Close every learning period that has elapsed at `now_ns` (default: the event clock)."""
        now = self._now_ns if now_ns is None else now_ns
        if now_ns is not None and now_ns > self._now_ns:
            self._now_ns = now_ns
        for track in self._tracks.values():
            if not track.closed and now >= track.end_ns:
                self._finish(track)

    # -- flushing -----------------------------------------------------------------------------

    def _finalize(self, current: Profile | None, candidate: Profile) -> Profile:
        """What to write: collapsed, lifecycle advanced, within the caps."""
        meta = candidate.meta
        if meta.managed_by is ManagedBy.USER:
            return candidate
        entries = candidate.entries
        track = self._tracks.get(candidate.key)
        kinds = track.generalize if track is not None else self._generalize
        self._collapse_entries(entries, _while_learning(kinds, meta.status), count=True)
        if meta.status is ProfileStatus.LEARNING and self._now_ns >= meta.learning_end_ns > 0:
            meta.status = ProfileStatus.PARTIAL if meta.partial else ProfileStatus.COMPLETED
            meta.reason = f"learning period {format_period(meta.learning_period_ns)} elapsed"
        if meta.status is ProfileStatus.TOO_LARGE:
            return candidate
        total = entries.total()
        if total > self.settings.max_entries:
            reason = f"entries {total} > cap {self.settings.max_entries}"
            return self._refuse(current, candidate, reason)
        size = serialized_size(candidate)
        if size > self.settings.max_bytes:
            return self._refuse(
                current, candidate, f"serialized size {size} > cap {self.settings.max_bytes} bytes"
            )
        return candidate

    def _collapse_entries(
        self, entries: Entries, kinds: frozenset[Generalization], *, count: bool
    ) -> None:
        """Collapse and generalise in place (`count`: add to the metrics; only at flush, where
        each literal is folded once, not again when a learning period ends)."""
        generalized = self.stats.generalized
        rotation = self.settings.rotation_threshold if Generalization.FILES in kinds else 0
        opens = entries.opens
        entries.opens = collapse_opens(
            opens,
            self._thresholds,
            rotation=rotation,
            counts=generalized if count else None,
        )
        if entries.open_procs:
            entries.open_procs = regroup_opens(opens, entries.open_procs, entries.opens)
        entries.ingress = collapse_ingress(entries.ingress, self.settings.collapse_threshold)
        if Generalization.DNS in kinds and entries.dns:
            dns = collapse_dns(entries.dns, self.settings.dns_wildcard_threshold)
            if entries.dns_procs:
                entries.dns_procs = regroup_dns(entries.dns, entries.dns_procs, dns.dns)
            entries.dns = dns.dns
            if count:
                generalized[Generalization.DNS.value] += dns.folded
                if dns.refused:
                    refused = self.stats.generalization_refused
                    refused[(Generalization.DNS.value, "public_suffix")] += dns.refused
        if entries.process_aware():
            dropped = self.stats.process_scope_dropped
            bound(entries, self._process_limit, dropped if count else None)

    def _refuse(self, current: Profile | None, candidate: Profile, reason: str) -> Profile:
        """Keep the stored entries, mark too-large; count the entries that were not taken."""
        base = current.entries.copy() if current is not None else Entries()
        lost = max(0, candidate.entries.total() - base.total())
        self.stats.skipped[("flush", SKIP_TOO_LARGE)] += lost
        meta = candidate.meta
        meta.status = ProfileStatus.TOO_LARGE
        meta.reason = reason
        log.error("profile too large", profile=candidate.key.display(), reason=reason, lost=lost)
        return Profile(
            key=candidate.key, meta=meta, entries=base, resource_version=candidate.resource_version
        )

    async def flush(self) -> int:
        """Write every pending delta; returns the number of profiles written successfully."""
        async with self._flush_lock:
            self._publish_deferred()
            clock = self._event_clock
            self.tick(max(self._now_ns, clock.event_clock_ns) if clock is not None else None)
            written_count = failed = 0
            for key, track in list(self._tracks.items()):
                if not track.dirty and track.delta.is_empty():
                    continue
                if track.profile.meta.managed_by is ManagedBy.USER:
                    track.delta, track.dirty = Entries(), False
                    continue
                if await self._flush_one(key, track):
                    written_count += 1
                else:
                    failed += 1
            self.stats.pending_deltas = len(self.unpersisted())
            # A failed write keeps its delta (retried next round); a streak of failing rounds
            # is what /readyz reports as a store that does not take writes.
            self.failed_rounds = self.failed_rounds + 1 if failed else 0
            if not failed:
                self.last_write_error = ""
            return written_count

    def unpersisted(self) -> list[WorkloadKey]:
        """Profiles whose latest learning is not in the store yet (a write failed or is due)."""
        return sorted(
            key
            for key, t in self._tracks.items()
            if (t.dirty or not t.delta.is_empty())
            and t.profile.meta.managed_by is not ManagedBy.USER
        )

    async def _flush_one(self, key: WorkloadKey, track: _Track) -> bool:
        delta, track.delta = track.delta, Entries()
        track.dirty = False
        payload = Profile(key=key, meta=track.profile.meta.copy(), entries=delta)
        store = self._store.name
        try:
            written = await write_merged(
                self._store,
                payload,
                attempts=self.settings.flush_attempts,
                stats=self.stats,
                finalize=self._finalize,
            )
        except TooLargeError as exc:
            # The store refused the size: stop growing, keep what is stored, say why.
            self.stats.skipped[("flush", SKIP_TOO_LARGE)] += delta.total()
            self._mark_too_large(track, f"the store refused the object: {exc.message}")
            track.dirty = True
            self.stats.writes[(store, "failed")] += 1
            return False
        except ProfilerError as exc:
            merge_entries(delta, track.delta)
            track.delta = delta
            track.dirty = True
            self.stats.writes[(store, "failed")] += 1
            self.stats.errors[(store, _error_reason(exc))] += 1
            self.last_write_error = str(exc)
            log.error("profile flush failed", profile=key.display(), error=str(exc))
            return False
        self.stats.writes[(store, "ok")] += 1
        self._adopt(track, written)
        return True

    def _adopt(self, track: _Track, written: Profile) -> None:
        """The store holds `written`: learn other nodes' entries and the lifecycle from it."""
        entries = written.entries.copy()
        merge_entries(entries, track.delta)
        meta = merge_meta(track.profile.meta, written.meta)
        track.profile = Profile(
            key=written.key, meta=meta, entries=entries, resource_version=written.resource_version
        )
        track.count = entries.total()
        self._sync_state(track)
        self._cache.upsert(written)

    async def run(
        self,
        stop: asyncio.Event,
        before_flush: Callable[[], Callable[[], None]] | None = None,
    ) -> None:
        """Flush every `updatePeriod` until `stop` is set, then flush once more.

        `before_flush` is called as a flush starts; the function it returns is called when that
        flush wrote everything (no failed write): the composition root persists, with it, how
        far the event sources had been processed (headless instances' seq)."""
        period = self.settings.update_period.total_seconds()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
            if not stop.is_set():
                await self._flush_with(before_flush)
        await self._flush_with(before_flush)

    async def _flush_with(self, before_flush: Callable[[], Callable[[], None]] | None) -> None:
        commit = before_flush() if before_flush is not None else None
        await self.flush()
        if commit is not None and self.failed_rounds == 0:
            commit()


def _while_learning(
    kinds: frozenset[Generalization], status: ProfileStatus
) -> frozenset[Generalization]:
    """The generalisations to apply now: numbered-file patterns only once learning is over.

    A flush during learning collapses the profile and the learner adopts what it wrote; folding
    numbered names into patterns then would keep a directory of random names (session ids,
    some of them digits only) under its collapse threshold forever, each flush folding the new
    ones again. Learning keeps the names literal, so the directory's size decides `*`, and the
    completion (`_finish`) and every later flush apply the patterns to what is left.
    """
    if status is ProfileStatus.LEARNING and Generalization.FILES in kinds:
        return kinds - {Generalization.FILES}
    return kinds
