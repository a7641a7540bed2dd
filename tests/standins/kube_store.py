"""Object storage, the global resourceVersion, the watch history and the live watchers.

Like etcd behind the API server, there is one monotonically increasing counter: every create,
update and delete takes the next value, stamps it on the object as `metadata.resourceVersion`
(a string, as on the wire) and appends an event to a bounded history. A watch started from a
resourceVersion replays the history after it, then follows live events; a resourceVersion older
than the oldest retained event gets a 410 Gone `ERROR` event, as the real watch cache does.

Watchers see events through their selectors with the server's semantics: an object that stops
matching is a `DELETED` for that watcher, one that starts matching is an `ADDED`.

Everything here runs on the stand-in's event loop thread; no locking is needed.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Events kept for watches that resume from a resourceVersion. The real watch cache keeps a
#: time window (75 s by default) of a size that depends on load; a count is easier to drive
#: from a test (`history_size=` makes 410 Gone reachable with a handful of writes).
DEFAULT_HISTORY = 1000

#: Undelivered events a watcher may hold before it is cut off, as the real server terminates a
#: watcher that does not keep up; large enough that a test never hits it by accident.
WATCHER_QUEUE = 10_000

GroupResource = tuple[str, str]
ObjKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    rv: int
    group_resource: GroupResource
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]
    prev: dict[str, Any] | None


@dataclass(slots=True)
class Watcher:
    group_resource: GroupResource
    namespace: str | None
    labels: Callable[[Mapping[str, str]], bool]
    fields: Callable[[Mapping[str, Any]], bool]
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=WATCHER_QUEUE)
    )
    overflowed: bool = False

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(obj)

    def translate(self, event: StoredEvent) -> tuple[str, dict[str, Any]] | None:
        """The event as this watcher sees it through its selectors, or None."""
        now = self.matches(event.obj)
        before = self.matches(event.prev)
        if event.type == "ADDED":
            return ("ADDED", event.obj) if now else None
        if event.type == "DELETED":
            return ("DELETED", event.obj) if now or before else None
        if now and before:
            return ("MODIFIED", event.obj)
        if now:
            return ("ADDED", event.obj)
        if before:
            return ("DELETED", event.obj)
        return None

    def offer(self, item: tuple[str, dict[str, Any]] | None) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class Store:
    """Objects by group-resource and (namespace, name), with the event history."""

    def __init__(self, *, history_size: int = DEFAULT_HISTORY) -> None:
        self.rv = 0
        self.objects: dict[GroupResource, dict[ObjKey, dict[str, Any]]] = {}
        self.history: deque[StoredEvent] = deque(maxlen=history_size)
        #: The resourceVersion of the oldest event ever evicted; watches from before it are 410.
        self.compacted_rv = 0
        self.watchers: list[Watcher] = []

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def bucket(self, gr: GroupResource) -> dict[ObjKey, dict[str, Any]]:
        return self.objects.setdefault(gr, {})

    def get(self, gr: GroupResource, namespace: str, name: str) -> dict[str, Any] | None:
        return self.bucket(gr).get((namespace, name))

    def items(self, gr: GroupResource, namespace: str | None) -> Iterator[dict[str, Any]]:
        for (ns, _name), obj in sorted(self.bucket(gr).items()):
            if namespace is None or ns == namespace:
                yield obj

    def write(self, gr: GroupResource, obj: dict[str, Any], *, type_: str) -> dict[str, Any]:
        """Store (ADDED/MODIFIED) or remove (DELETED) `obj`, stamping the next resourceVersion."""
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        prev = self.bucket(gr).get(key)
        meta["resourceVersion"] = str(self.next_rv())
        if type_ == "DELETED":
            self.bucket(gr).pop(key, None)
        else:
            self.bucket(gr)[key] = obj
        self._record(StoredEvent(self.rv, gr, type_, copy.deepcopy(obj), prev))
        return obj

    def _record(self, event: StoredEvent) -> None:
        if len(self.history) == self.history.maxlen and self.history:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)
        for watcher in self.watchers:
            if watcher.group_resource != event.group_resource:
                continue
            item = watcher.translate(event)
            if item is not None:
                watcher.offer(item)

    def events_since(self, gr: GroupResource, rv: int) -> list[StoredEvent] | None:
        """History after `rv` for `gr`, or None when `rv` is older than what is retained."""
        if rv < self.compacted_rv:
            return None
        return [e for e in self.history if e.rv > rv and e.group_resource == gr]

    def subscribe(self, watcher: Watcher) -> None:
        self.watchers.append(watcher)

    def unsubscribe(self, watcher: Watcher) -> None:
        if watcher in self.watchers:
            self.watchers.remove(watcher)

    def close_watchers(self) -> None:
        """End every watch (server going down)."""
        for watcher in list(self.watchers):
            watcher.offer(None)
