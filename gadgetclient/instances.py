"""Headless gadget instances: IG's `GadgetInstanceManager` from the client side.

IG (v0.33+) can run a gadget with nobody attached (`kubectl gadget run --detach`, the `ig
daemon` store); the instance traces into a ring buffer and replays it to whoever attaches
(docs/gadgetclient.md "Sessions and instances"). This module holds what gadgetwatch needs on top
of the RPCs:

* `InstanceClient`: create, list, get, remove, resolving a name to an id (IG's Remove and attach
  take ids only);
* `instance_name`: the stable name of the agent's own instance of a gadget, derived from the
  agent's identity, within IG's `^[a-z0-9-_]{1,32}$`;
* `SeqState`: per instance, the last `seq` whose events were processed, written atomically next
  to the profiles so that an agent that restarts skips what the ring buffer replays and it has
  already seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import structlog

from gadgetclient.config import GadgetClientSettings
from gadgetclient.errors import SessionError
from gadgetclient.sessions import Connection, translate_rpc_error
from gadgetclient.targets import parse_target, static_endpoints
from gadgetclient.wire import (
    InstanceSpec,
    create_instance_request,
    instance_from_proto,
    instance_id,
    list_instances_request,
)
from protos import gadget_service_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

#: Headless instances and attach exist since IG v0.33.
MIN_INSTANCES_VERSION = (0, 33, 0)
#: IG's limits on instance names (pkg/gadget-service/api/helpers.go).
NAME_MAX = 32
_NAME_BAD = re.compile(r"[^a-z0-9_-]+")
#: Hex digits of the identity hash when a prefix must be shortened: 6 (24 bits) keeps names of
#: the few agents sharing one IG apart while leaving room for the longest gadget name.
_HASH_DIGITS = 6


def instance_name(prefix: str, gadget: str) -> str:
    """`<prefix>-<gadget>`, lower-cased, invalid characters replaced, at most 32 characters.

    A prefix too long to fit is cut and suffixed with a hash of the whole prefix, so two long
    identities that share a beginning still get different names."""
    clean = _NAME_BAD.sub("-", prefix.lower()).strip("-") or "gadgetwatch"
    gadget_part = _NAME_BAD.sub("-", gadget.lower())
    name = f"{clean}-{gadget_part}"
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(clean.encode()).hexdigest()[:_HASH_DIGITS]
    room = NAME_MAX - len(gadget_part) - len(digest) - 2
    if room < 1:
        return f"{digest}-{gadget_part}"[:NAME_MAX]
    return f"{clean[:room].rstrip('-')}-{digest}-{gadget_part}"


class InstanceClient:
    """The instance RPCs on one connection; errors are one-line `SessionError`/`TargetError`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.stub = pb_grpc.GadgetInstanceManagerStub(connection.channel)

    @property
    def _timeout(self) -> float:
        # Create pulls and starts the gadget: allow it what GetGadgetInfo gets.
        return self.connection.settings.connect_timeout.total_seconds() * 6

    def _error(self, exc: grpc.aio.AioRpcError, what: str) -> Exception:
        return translate_rpc_error(exc, where=self.connection.where, what=what)

    async def list(self) -> list[InstanceSpec]:
        try:
            resp = await self.stub.ListGadgetInstances(
                list_instances_request(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "listing gadget instances") from exc
        return [instance_from_proto(m) for m in resp.gadgetInstances]

    async def get(self, id_: str) -> InstanceSpec:
        try:
            resp = await self.stub.GetGadgetInstance(instance_id(id_), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"getting gadget instance {id_}") from exc
        return instance_from_proto(resp)

    async def create(self, spec: InstanceSpec, *, buffer_length: int) -> InstanceSpec:
        try:
            resp = await self.stub.CreateGadgetInstance(
                create_instance_request(spec, buffer_length), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"creating gadget instance {spec.name}") from exc
        if resp.result != 0:
            raise SessionError(
                f"creating gadget instance {spec.name}: result {resp.result}",
                where=self.connection.where,
            )
        return instance_from_proto(resp.gadgetInstance)

    async def remove(self, id_: str) -> None:
        try:
            resp = await self.stub.RemoveGadgetInstance(instance_id(id_), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"removing gadget instance {id_}") from exc
        if resp.result != 0:
            raise SessionError(
                f"removing gadget instance {id_}: {resp.message or resp.result}",
                where=self.connection.where,
            )

    async def resolve(self, id_or_name: str) -> InstanceSpec:
        """The instance with this id or name (ids win); `SessionError` when there is none."""
        items = await self.list()
        for inst in items:
            if inst.id == id_or_name:
                return inst
        named = [i for i in items if i.name == id_or_name]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise SessionError(
                f"several gadget instances are named {id_or_name}; use an id",
                where=self.connection.where,
            )
        raise SessionError(f"gadget {id_or_name} not found", where=self.connection.where)


class SeqState:
    """Per instance id: the last `seq` handled. A small JSON file, replaced atomically.

    A missing file is an empty state; an unreadable one is logged and treated as empty (the
    instances' ring buffers are then processed again: profiles merge by set union, so that
    re-learns nothing wrong; alerts may repeat, with their deterministic ids)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.seqs: dict[str, int] = {}
        self.unreadable = False
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            seqs = raw["instances"]
            self.seqs = {str(k): int(v) for k, v in seqs.items() if int(v) >= 0}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.unreadable = True
            log.error("instance seq state unreadable", path=str(path), reason=str(exc))

    def get(self, id_: str) -> int:
        return self.seqs.get(id_, 0)

    def save(self, seqs: Mapping[str, int]) -> None:
        """Merge `seqs` (never moving one backwards) and write the file."""
        for k, v in seqs.items():
            if v > self.seqs.get(k, 0):
                self.seqs[k] = v
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": 1, "instances": dict(sorted(self.seqs.items()))})
        fd, tmp = tempfile.mkstemp(prefix=".seq-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def forget(self, id_: str) -> None:
        self.seqs.pop(id_, None)


@contextlib.asynccontextmanager
async def instance_clients(
    settings: GadgetClientSettings, *, k8s_api_client: Any = None
) -> AsyncIterator[list[InstanceClient]]:
    """One `InstanceClient` per endpoint of the configured target (one per node for `k8s://`),
    each with the server version checked (instances need IG v0.33+)."""
    spec = parse_target(settings.target)
    async with contextlib.AsyncExitStack() as stack:
        if spec.scheme == "k8s":
            from gadgetclient.k8s import port_forwards  # the only kubernetes importer

            endpoints = await stack.enter_async_context(
                port_forwards(spec, settings, api_client=k8s_api_client)
            )
        else:
            endpoints = static_endpoints(spec, settings)
        connections = [Connection(ep, settings) for ep in endpoints]
        try:
            for conn in connections:
                info = await conn.get_info()
                if info.version_tuple < MIN_INSTANCES_VERSION:
                    raise SessionError(
                        f"Inspektor Gadget v{info.version} has no headless instances "
                        "(needs v0.33 or newer)",
                        where=conn.where,
                    )
            yield [InstanceClient(conn) for conn in connections]
        finally:
            for conn in connections:
                await conn.close()


__all__ = ["InstanceClient", "SeqState", "instance_clients", "instance_name"]
