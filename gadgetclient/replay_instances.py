"""Headless gadget instances for the replay server: IG's `GadgetInstanceManager` and attach.

IG (v0.33+) can run a gadget with no client attached (`kubectl gadget run --detach`, the
`ig daemon` store). The instance keeps tracing into a ring buffer of its last
`eventBufferLength` payloads; a client attaches with `RunGadget` whose first message is an
`attachRequest`, gets the instance's GadgetInfo (with `id` filled), the ring buffer, then live
payloads. The stand-in follows IG's semantics as far as a client can observe them:

* create: an id, if given, must match `^[a-f0-9]{32}$` and a name `^[a-z0-9-_]{1,32}$`, else
  the server generates them (the name from the id); `result` 0 means OK;
* list/get return `state{status, message}`; get, remove and attach of an unknown id fail with
  "gadget <id> not found";
* `seq` belongs to the instance: it starts at 1 when the instance starts producing and goes up
  by one per payload, whoever is attached. The ring buffer keeps each payload with its seq, so a
  client that attaches after a restart sees the same numbers it saw before, and a buffer that
  wrapped shows up as a gap between the last seq it handled and the first one replayed;
* an attached stream reads no further control messages (a stop request does nothing): the
  client detaches by closing the stream, and only remove stops the instance, which ends every
  attached stream with OK;
* no log events are sent to attached streams.

Production: an instance replays its gadget's packets (shaped by its params like a run), paced at
the server's `rate` (as fast as possible without). `hold_instances=True` makes instances produce
only what a test `release()`s, so a test decides exactly which payloads exist before and after an
agent restart, without timing. Flush-on-stop data (advise_seccomp) is not produced: headless mode
does not fit gadgets that report only when stopped (`docs/gadgetclient.md`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from gadgetclient.layouts import EVENT_GADGET_INFO, EVENT_PAYLOAD
from gadgetclient.wire import gadget_info_to_proto
from protos import gadget_service_pb2 as pb
from protos import gadget_service_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from gadgetclient.replay import ReplayGadget, ReplayServer

log = structlog.get_logger(__name__)

#: IG's validation of client-given ids and names (pkg/gadget-service/api/helpers.go).
ID_RE = re.compile(r"^[a-f0-9]{32}$")
NAME_RE = re.compile(r"^[a-z0-9-_]{1,32}$")
#: `ig daemon --events-buffer-length` default: the ring buffer when the request gives 0.
DEFAULT_BUFFER_LENGTH = 16384


@dataclass
class ReplayInstance:
    """One headless instance: its config, ring buffer and attached clients."""

    id: str
    name: str
    image: str
    params: dict[str, str]
    tags: list[str]
    nodes: list[str]
    created_ns: int
    gadget: ReplayGadget
    buffer: deque[pb.GadgetEvent]
    seq: int = 0
    #: packets the test let through (hold mode); ignored otherwise
    allowance: int = 0
    cursor: int = 0
    clients: set[asyncio.Queue[pb.GadgetEvent | None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def to_proto(self) -> pb.GadgetInstance:
        return pb.GadgetInstance(
            id=self.id,
            name=self.name,
            tags=self.tags,
            nodes=self.nodes,
            timeCreated=self.created_ns,
            gadgetConfig=pb.GadgetRunRequest(
                imageName=self.image, paramValues=self.params, version=1
            ),
            state=pb.GadgetInstanceState(status=pb.StatusRunning),
        )

    @property
    def remaining(self) -> int:
        """Payloads the instance has not produced yet."""
        return sum(1 for p in self.gadget.packets[self.cursor :] if not p.flush)


class InstanceRegistry:
    """All instances of one replay server."""

    def __init__(
        self,
        server: ReplayServer,
        *,
        hold: bool,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.server = server
        self.hold = hold
        self.clock_ns = clock_ns
        self.instances: dict[str, ReplayInstance] = {}

    def find(self, id_or_name: str) -> ReplayInstance | None:
        found = self.instances.get(id_or_name)
        if found is not None:
            return found
        return next((i for i in self.instances.values() if i.name == id_or_name), None)

    async def create(self, req: Any) -> ReplayInstance:
        spec = req.gadgetInstance
        id_ = spec.id or secrets.token_hex(16)
        if not ID_RE.match(id_):
            raise ValueError(f"invalid id {id_!r}: must match {ID_RE.pattern}")
        name = spec.name or id_[:12]
        if not NAME_RE.match(name):
            raise ValueError(f"invalid name {name!r}: must match {NAME_RE.pattern}")
        if id_ in self.instances:
            raise ValueError(f"gadget instance {id_} already exists")
        if any(i.name == name for i in self.instances.values()):
            raise ValueError(f"gadget instance with name {name} already exists")
        cfg = spec.gadgetConfig
        if cfg.version != 1:
            raise ValueError(f"expected version to be 1, got {cfg.version}")
        base = self.server.gadget_for(cfg.imageName)
        if base is None:
            raise ValueError(f"instantiating gadget: {cfg.imageName}: image not found in capture")
        gadget = self.server.shaped(base, cfg.paramValues)
        length = req.eventBufferLength if req.eventBufferLength > 0 else DEFAULT_BUFFER_LENGTH
        inst = ReplayInstance(
            id=id_,
            name=name,
            image=cfg.imageName,
            params=dict(cfg.paramValues),
            tags=list(spec.tags),
            nodes=list(spec.nodes),
            created_ns=self.clock_ns(),
            gadget=gadget,
            buffer=deque(maxlen=length),
        )
        self.instances[id_] = inst
        inst.task = asyncio.create_task(self._produce(inst), name=f"instance-{name}")
        log.info("replay instance created", id=id_, name=name, image=cfg.imageName)
        return inst

    async def remove(self, id_: str) -> None:
        inst = self.instances.pop(id_, None)
        if inst is None:
            raise KeyError(id_)
        if inst.task is not None:
            inst.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inst.task
        for q in inst.clients:
            q.put_nowait(None)  # ends the attached streams with OK
        log.info("replay instance removed", id=id_, name=inst.name)

    async def release(self, id_or_name: str, count: int) -> None:
        """Hold mode: let the instance produce `count` more payloads."""
        inst = self.find(id_or_name)
        if inst is None:
            raise KeyError(id_or_name)
        async with inst.changed:
            inst.allowance += count
            inst.changed.notify_all()

    async def wait_produced(self, id_or_name: str, seq: int) -> None:
        """Wait until the instance has produced the payload numbered `seq`."""
        inst = self.find(id_or_name)
        if inst is None:
            raise KeyError(id_or_name)
        async with inst.changed:
            await inst.changed.wait_for(lambda: inst.seq >= seq)

    async def close(self) -> None:
        for id_ in list(self.instances):
            await self.remove(id_)

    async def _produce(self, inst: ReplayInstance) -> None:
        rate = self.server.rate
        start = time.monotonic()
        packets = inst.gadget.packets
        while inst.cursor < len(packets):
            packet = packets[inst.cursor]
            if packet.flush:
                inst.cursor += 1
                continue
            if self.hold:
                async with inst.changed:
                    await inst.changed.wait_for(lambda: inst.allowance > 0)
                    inst.allowance -= 1
            elif rate:
                delay = start + inst.seq / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the stand-in's output, not a test wait
            inst.cursor += 1
            inst.seq += 1
            ev = pb.GadgetEvent(
                type=EVENT_PAYLOAD, seq=inst.seq, payload=packet.payload, dataSourceID=packet.ds_id
            )
            inst.buffer.append(ev)
            for q in inst.clients:
                q.put_nowait(ev)
            async with inst.changed:
                inst.changed.notify_all()
        # The capture is exhausted: the instance stays, like a live gadget with nothing to say.

    async def attach(self, id_: str) -> AsyncIterator[pb.GadgetEvent]:
        inst = self.instances.get(id_)
        if inst is None:
            raise KeyError(id_)
        info = gadget_info_to_proto(inst.gadget.info)
        info.id = inst.id
        queue: asyncio.Queue[pb.GadgetEvent | None] = asyncio.Queue()
        # Snapshot and subscribe without an await in between: nothing is missed or doubled.
        replay = list(inst.buffer)
        inst.clients.add(queue)
        try:
            yield pb.GadgetEvent(type=EVENT_GADGET_INFO, payload=info.SerializeToString())
            for ev in replay:
                yield ev
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            inst.clients.discard(queue)


def not_found(id_: str) -> str:
    return f"gadget {id_} not found"


class InstanceServicer(pb_grpc.GadgetInstanceManagerServicer):  # type: ignore[misc]
    def __init__(self, registry: InstanceRegistry) -> None:
        self.registry = registry

    async def CreateGadgetInstance(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            inst = await self.registry.create(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.UNKNOWN, f"creating gadget instance: {exc}")
            raise  # unreachable: abort raises
        return pb.CreateGadgetInstanceResponse(result=0, gadgetInstance=inst.to_proto())

    async def ListGadgetInstances(self, request: Any, context: Any) -> Any:  # noqa: N802
        items = sorted(self.registry.instances.values(), key=lambda i: (i.created_ns, i.id))
        return pb.ListGadgetInstanceResponse(gadgetInstances=[i.to_proto() for i in items])

    async def GetGadgetInstance(self, request: Any, context: Any) -> Any:  # noqa: N802
        inst = self.registry.instances.get(request.id)
        if inst is None:
            await context.abort(grpc.StatusCode.UNKNOWN, not_found(request.id))
            raise AssertionError  # unreachable: abort raises
        return inst.to_proto()

    async def RemoveGadgetInstance(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            await self.registry.remove(request.id)
        except KeyError:
            await context.abort(grpc.StatusCode.UNKNOWN, not_found(request.id))
        return pb.StatusResponse(result=0)


__all__ = ["DEFAULT_BUFFER_LENGTH", "InstanceRegistry", "InstanceServicer", "ReplayInstance"]
