"""Who did it: the acting process of an event, and `fromSource` lists that name processes.

Guards (`detector.guards`) and process-scoped exceptions (`detector.exceptions`) allow a
resource to *some* processes of a workload only ("only /bin/cat may read the token"). That
needs the executable of the process behind an open, a connection or a DNS query, which IG's
trace_open, trace_tcp and trace_dns do not report: they carry `comm` (15 characters, set by
the process itself) and the parent's `pcomm`. trace_exec does report `exepath` and
`parent_exepath`, so the detector remembers, per container and pid, the executable each exec
started (`ProcessTable`, over the shared `gadgetclient.processes.ExecTable`) and looks the
pid (and the parent pid) up for the other events.

Matching (`SourceSet`): an entry's `path` with a ``/`` is an executable path, exact or glob
(`detector.paths.PathSet`, no directory prefixes: ``/usr/bin`` is not ``/usr/bin/curl``), and
matches only a known executable: when the exec was not seen (trace_exec off, the process
started before the agent) it does not match, so a guard alerts and an exception does not
suppress (fail closed). A bare name (``cat``) matches the executable's basename or, when the
executable is unknown, `comm`; it is weaker, as any process may name itself ``cat``, and the
docs say so. `parent` narrows an entry to processes whose parent matches the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detector.loading import DocContext, Path
from detector.paths import PathSet, basename
from detector.rules import Actor
from gadgetclient.events import Event, ExecEvent
from gadgetclient.gadget_params import UNRESOLVED_PREFIX
from gadgetclient.processes import MAX_PROCESSES, ExecTable

#: `comm` is the executable's basename cut to TASK_COMM_LEN - 1 bytes by the kernel.
COMM_LEN = 15


class ProcessTable:
    """The acting process of an event, from the exec events seen (`ExecTable`)."""

    __slots__ = ("_execs", "exe_of")

    def __init__(self, max_entries: int = MAX_PROCESSES) -> None:
        self._execs = ExecTable(max_entries)
        #: The executable of the process behind a non-exec event, "" when unknown (one dict
        #: look-up: what process-aware checks and the memo need, without an `Actor`).
        self.exe_of = self._execs.exe_of

    @property
    def evictions(self) -> Counter[str]:
        """Entries dropped, by reason ("capacity")."""
        return self._execs.evictions

    @evictions.setter
    def evictions(self, counter: Counter[str]) -> None:
        self._execs.evictions = counter

    def record(self, event: ExecEvent, exe: str) -> None:
        self._execs.record(event, exe)

    def actor(self, event: Event) -> Actor:
        process = event.process
        if isinstance(event, ExecEvent):
            # The exec's actor is the process that ran it: its parent.
            exe, parent_exe = event.parent_exe, ""
            if exe.startswith(UNRESOLVED_PREFIX):
                exe = ""
            known = self._execs.get(event.container.key, process.ppid)
            if known is not None and not exe:
                exe = known[0]
            if known is not None:
                parent_exe = known[1]
            return Actor(comm=process.pcomm, exe=exe, parent_exe=parent_exe)
        exe = process.exe
        parent_exe = ""
        known = self._execs.get(event.container.key, process.pid)
        if known is not None:
            exe = exe or known[0]
            parent_exe = known[1]
        if not parent_exe and process.ppid:
            parent = self._execs.get(event.container.key, process.ppid)
            if parent is not None:
                parent_exe = parent[0]
        return Actor(comm=process.comm, exe=exe, parent_comm=process.pcomm, parent_exe=parent_exe)

    def __len__(self) -> int:
        return len(self._execs)


def _name_matches(names: frozenset[str], exe: str, comm: str) -> bool:
    if exe:
        return basename(exe) in names or basename(exe)[:COMM_LEN] in names
    return bool(comm) and any(n[:COMM_LEN] == comm for n in names)


@dataclass(frozen=True, slots=True)
class Source:
    """One `fromSource` entry: an executable, optionally with its parent's."""

    paths: PathSet
    names: frozenset[str]
    parent_paths: PathSet | None = None
    parent_names: frozenset[str] = frozenset()
    #: The entry as written, for messages and snippets.
    text: str = ""

    def matches(self, actor: Actor) -> bool:
        if not _one_matches(self.paths, self.names, actor.exe, actor.comm):
            return False
        if self.parent_paths is None and not self.parent_names:
            return True
        return _one_matches(
            self.parent_paths or PathSet(()), self.parent_names, actor.parent_exe, actor.parent_comm
        )


def _one_matches(paths: PathSet, names: frozenset[str], exe: str, comm: str) -> bool:
    if exe and paths and paths.matches(exe):
        return True
    return bool(names) and _name_matches(names, exe, comm)


def _split(pattern: str) -> tuple[list[str], list[str]]:
    return ([pattern], []) if "/" in pattern else ([], [pattern])


@dataclass(frozen=True, slots=True)
class SourceSet:
    """A `fromSource` list; empty means "no process" for guards and "any" for exceptions."""

    sources: tuple[Source, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sources)

    def matches(self, actor: Actor) -> bool:
        return any(s.matches(actor) for s in self.sources)


def parse_from_source(raw: Any, *, ctx: DocContext, path: Path) -> SourceSet | None:
    """`[{path: /bin/cat}, {path: "/usr/bin/*", parent: /bin/sh}, {path: cat}]`; None on an error
    (an entry that cannot be read is never dropped: that would change who is allowed)."""
    if raw is None:
        return SourceSet()
    if not isinstance(raw, list):
        ctx.error(path, "must be a list of {path, parent} (executables allowed)")
        return None
    out: list[Source] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            ctx.error((*path, i), "must be a mapping {path, parent}")
            return None
        unknown = sorted(set(item) - {"path", "parent"})
        if unknown:
            ctx.error((*path, i), f"unknown fields {unknown} (known: path, parent)")
            return None
        exe, parent = item.get("path"), item.get("parent")
        if not isinstance(exe, str) or not exe:
            ctx.error((*path, i, "path"), "is required (an executable path, glob or name)")
            return None
        if parent is not None and (not isinstance(parent, str) or not parent):
            ctx.error((*path, i, "parent"), "must be an executable path, glob or name")
            return None
        paths, names = _split(exe)
        source = Source(
            paths=PathSet(paths, prefixes=False),
            names=frozenset(names),
            text=exe if parent is None else f"{exe} (parent {parent})",
        )
        if parent is not None:
            ppaths, pnames = _split(parent)
            source = Source(
                paths=source.paths,
                names=source.names,
                parent_paths=PathSet(ppaths, prefixes=False) if ppaths else None,
                parent_names=frozenset(pnames),
                text=source.text,
            )
        out.append(source)
    return SourceSet(tuple(out))


def describe(actor: Actor) -> str:
    """The actor for a message: its executable when known, else its comm."""
    return actor.exe or actor.comm or "(unknown process)"


def snippet_sources(actor: Actor) -> Sequence[dict[str, str]]:
    """The narrowest `fromSource` naming this actor (its executable, else its comm)."""
    if actor.exe and actor.exe.startswith("/"):
        return [{"path": actor.exe}]
    if actor.comm and "/" not in actor.comm:
        return [{"path": actor.comm}]
    return []
