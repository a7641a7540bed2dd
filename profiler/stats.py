"""Counters for the profiler (see `gadgetclient.stats` for the pattern)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ProfilerStats:
    #: events merged into profiles, by event kind
    merged: Counter[str] = field(default_factory=Counter)
    #: events not merged, by (event kind, reason): e.g. "profile_completed", "too_large"
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: profile writes, by (store, result): result in ok, conflict, failed, kept
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: profiles that could not be read or written, by (store, reason)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: current number of profiles per status (a gauge, replaced on each change)
    by_status: Counter[str] = field(default_factory=Counter)
    #: deltas waiting to be written (a gauge)
    pending_deltas: int = 0
    #: learned literals replaced by a generalised entry, by kind: files (folded into a
    #: numbered/dated pattern), dns (folded into `*.<parent>`), args (stored with placeholders)
    generalized: Counter[str] = field(default_factory=Counter)
    #: generalisations that met their threshold but were refused, by (kind, reason), e.g.
    #: ("dns", "public_suffix")
    generalization_refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: process-aware entries that became any-process, by reason: overflow (more executables
    #: than `maxProcessesPerEntry`), unknown_executable (reached by a process whose exec was
    #: never seen)
    process_scope_dropped: Counter[str] = field(default_factory=Counter)
    #: execs dropped from the learner's process table, by reason ("capacity")
    processes_forgotten: Counter[str] = field(default_factory=Counter)
