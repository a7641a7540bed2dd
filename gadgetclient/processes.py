"""`ProcessTable`: exe, args and cwd for events whose gadget does not report them.

trace_open, trace_tcp, trace_dns and trace_capabilities report only `comm` and pids; rules and
profiles are better keyed by executable. The table remembers, per (container, pid), what the last
exec event of that pid ran, and fills the `Process` of later non-exec events of the same pid.
It is bounded (least recently used entries go first), so a fork storm costs memory only up to
`size` entries; a miss simply leaves the fields empty.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from gadgetclient.events import ContainerId, Event, ExecEvent


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
