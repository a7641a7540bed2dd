"""`ProcessTable` and `ExecTable`: what a pid runs, for events whose gadget does not say.

`ExecTable` is the one "who did it" memory that the detector (guards, process-scoped
exceptions, process-aware anomaly rules) and the learner (process-aware profiles) both use:
(container, pid) -> (executable, parent executable), fed by exec events, bounded, evictions
counted by reason. Each of them feeds its own instance *in its own event loop*: the pipeline
lets the learner take a slice of a batch before the detector judges that slice, so one shared
instance would answer the detector with the state after the slice (a pid that ran ``sh`` and
then ``exec cat`` would be judged as ``cat`` for what ``sh`` did).

`ProcessTable` (below) is the source's optional completion of events (`processTableSize`).

trace_open, trace_tcp, trace_dns and trace_capabilities report only `comm` and pids; rules and
profiles are better keyed by executable. The table remembers, per (container, pid), what the last
exec event of that pid ran, and fills the `Process` of later non-exec events of the same pid.
It is bounded (least recently used entries go first), so a fork storm costs memory only up to
`size` entries; a miss simply leaves the fields empty.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict

from gadgetclient.events import ContainerId, Event, ExecEvent
from gadgetclient.gadget_params import UNRESOLVED_PREFIX
from gadgetclient.pathnorm import is_normal, normalise_exec_path

#: Processes remembered per table: a node runs a few thousand live processes; past the bound
#: the oldest exec of the container that exec'd least recently is forgotten (its later events
#: have no known executable).
MAX_PROCESSES = 65_536


def exec_path(event: ExecEvent) -> str:
    """The executed file (IG's ``exepath``; see `ExecEvent.path`), in normal form when it is a
    path; a bare name (a PATH lookup) and an ``unresolved:`` marker stay as they are."""
    path = event.path or (event.args[0] if event.args else "") or event.process.comm
    if is_normal(path) or path.startswith(UNRESOLVED_PREFIX):
        return path
    return normalise_exec_path(path, event.cwd)


class ExecTable:
    """(container, pid) -> (executable, parent executable), from the exec events seen."""

    __slots__ = ("_max", "_size", "evictions", "exes")

    def __init__(self, max_entries: int = MAX_PROCESSES) -> None:
        #: container -> pid -> (executable, parent executable). Nested, not keyed by a
        #: (container, pid) tuple: the per-event look-up builds, hashes and compares no key
        #: tuple, and an entry costs no tuple either. Plain dicts, insertion-ordered: an exec
        #: re-inserts its pid and its container, so the first container is the one that exec'd
        #: least recently and its first pid its oldest exec, the entry forgotten past the
        #: bound. The learner's hot path reads it directly; read-only outside this class.
        self.exes: dict[ContainerId, dict[int, tuple[str, str]]] = {}
        self._size = 0
        self._max = max_entries
        #: Entries dropped, by reason ("capacity").
        self.evictions: Counter[str] = Counter()

    def record(self, event: ExecEvent, exe: str | None = None) -> None:
        """Remember what the exec started (`exe`: its `exec_path`, computed when not given)."""
        process = event.process
        pid = process.pid
        if event.error or not pid:
            return  # a failed execve leaves the process running its old executable
        container = event.container
        cid = container.container_id or container.key
        exes = self.exes
        pids = exes.get(cid)
        known = pids.get(pid) if pids is not None else None
        if (
            known is not None
            and known[0]
            and known[0] == (event.path if exe is None else exe)
            and known[1] == event.parent_exe
        ):
            # The same image again (a repeated or replayed exec), the common case, decided
            # without normalising: a stored executable is a normal path or a bare name, which
            # is its own `exec_path`.
            return
        if exe is None:
            exe = exec_path(event)
        if exe.startswith(UNRESOLVED_PREFIX):
            exe = ""  # IG sent no exepath: unknown, never a name the caller chose
        value = (exe, event.parent_exe)
        if known == value:
            return  # nothing changes
        if pids is None:
            pids = exes[cid] = {}
        else:
            del exes[cid]
            exes[cid] = pids  # this container exec'd last
            if known is not None:
                del pids[pid]  # and this pid started last
        if known is None:
            self._size += 1
        pids[pid] = value
        if self._size > self._max:
            oldest = next(iter(exes))
            forgotten = exes[oldest]
            del forgotten[next(iter(forgotten))]
            if not forgotten:
                del exes[oldest]
            self._size -= 1
            self.evictions["capacity"] += 1

    def get(self, container: ContainerId, pid: int) -> tuple[str, str] | None:
        # `Container.key` is the container id when there is one (the look-ups above skip the
        # property for speed; they agree with it).
        """(executable, parent executable) of the pid's last exec; None when none was seen."""
        pids = self.exes.get(container)
        return pids.get(pid) if pids is not None else None

    def exe_of(self, event: Event) -> str:
        """The executable of the process behind a non-exec event, "" when unknown."""
        process = event.process
        exe = process.exe
        if exe and not exe.startswith(UNRESOLVED_PREFIX):
            return exe
        container = event.container
        pids = self.exes.get(container.container_id or container.key)
        known = pids.get(process.pid) if pids is not None else None
        return known[0] if known is not None else ""

    def __len__(self) -> int:
        return self._size


class ProcessTable:
    """A bounded LRU map (container key, pid) -> (exe, args, cwd), fed by exec events."""

    __slots__ = ("_entries", "hits", "misses", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[ContainerId, int], tuple[str, tuple[str, ...], str]] = (
            OrderedDict()
        )
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def complete(self, event: Event) -> Event:
        """Remember exec events; fill empty exe/args/cwd of other events from the table."""
        key = (event.container.key, event.process.pid)
        entries = self._entries
        if isinstance(event, ExecEvent):
            entries[key] = (event.path, event.args, event.cwd)
            entries.move_to_end(key)
            if len(entries) > self.size:
                entries.popitem(last=False)
            return event
        if event.process.exe or not event.process.pid:
            return event
        found = entries.get(key)
        if found is None:
            self.misses += 1
            return event
        self.hits += 1
        entries.move_to_end(key)
        exe, args, cwd = found
        process = dataclasses.replace(
            event.process, exe=exe, args=args, cwd=event.process.cwd or cwd
        )
        return dataclasses.replace(event, process=process)
