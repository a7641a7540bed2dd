"""Sessions: what a client settles with one IG server before it runs gadgets.

Order (as IG's own clients do): `GetInfo` first, to learn `serverVersion` and refuse servers
older than v0.29 (the GadgetData wire break; empty version = older than v0.28), warning on skew
from the range gadgetwatch is tested with. Then, per gadget, the image reference is pinned to the
server's version (`trace_exec` -> `trace_exec:v0.55.1`, because `latest` drifts away from the
server) unless the user gave a tag or digest, and `GetGadgetInfo` lists the gadget's parameters so
user-given keys can be checked before the run. Errors come back as one-line `SessionError` /
`TargetError` values naming the server's own words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc
import structlog

from gadgetclient.config import GadgetClientSettings
from gadgetclient.errors import SessionError, TargetError
from gadgetclient.h2stream import H2Client
from gadgetclient.layouts import GadgetInfoSpec
from gadgetclient.targets import Endpoint, open_channel
from gadgetclient.wire import PROTOCOL_VERSION, gadget_info_from_proto
from protos import gadget_service_pb2 as pb
from protos import gadget_service_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

#: Oldest server with today's payload layout (v0.29 changed GadgetData field 3).
MIN_VERSION = (0, 29, 0)
#: The IG range gadgetwatch is built and tested against; outside it we warn (v0.42 removed the
#: built-in API; v0.55 is the newest release the protocol notes cover).
TESTED_RANGE = ((0, 42, 0), (0, 55, 99))

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    version_tuple: tuple[int, int, int]
    experimental: bool = False


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = _SEMVER.match(text.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def check_version(server_version: str, *, where: str) -> ServerInfo:
    """Refuse servers older than v0.29; warn outside the tested range."""
    parsed = parse_version(server_version)
    if parsed is None:
        found = server_version or "none (older than v0.28)"
        raise SessionError(
            f"Inspektor Gadget server version {found} is not supported; gadgetwatch needs v0.29 "
            "or newer (v0.42+ recommended)",
            where=where,
        )
    if parsed < MIN_VERSION:
        raise SessionError(
            f"Inspektor Gadget server version v{server_version} is too old; gadgetwatch needs "
            "v0.29 or newer (v0.42+ recommended)",
            where=where,
        )
    lo, hi = TESTED_RANGE
    if not lo <= parsed <= hi:
        log.warning(
            "ig version skew",
            target=where,
            server_version=server_version,
            tested_from=".".join(map(str, lo)),
            tested_to=".".join(map(str, hi[:2])),
        )
    return ServerInfo(version=server_version.lstrip("v"), version_tuple=parsed)


def gadget_name(image: str) -> str:
    """The short gadget name of an image reference (`ghcr.io/.../trace_exec:v1` -> trace_exec)."""
    last = image.rsplit("/", 1)[-1]
    return re.split(r"[:@]", last, maxsplit=1)[0]


def pin_image(gadget: str, server_version: str) -> str:
    """`trace_exec` -> `trace_exec:v<server>`; references with a tag, digest or path stay."""
    last = gadget.rsplit("/", 1)[-1]
    if "/" in gadget or ":" in last or "@" in gadget or not server_version:
        return gadget
    return f"{gadget}:v{server_version}"


class RpcStatus(Protocol):
    """A failed call's status: `grpc.aio.AioRpcError`, or the native transport's
    `h2stream.RpcStatusError` (same `code()` and `details()`), so both read the same."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...


def rpc_error_text(exc: RpcStatus) -> str:
    details = exc.details() or ""
    return f"{exc.code().name}: {details}" if details else exc.code().name


def translate_rpc_error(exc: RpcStatus, *, where: str, what: str) -> Exception:
    """A `TargetError` when the server is unreachable, else a `SessionError` (it refused)."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return TargetError(f"{what}: cannot reach IG ({rpc_error_text(exc)})", where=where)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return TargetError(
            f"{what}: the endpoint does not serve Inspektor Gadget's API ({rpc_error_text(exc)})",
            where=where,
        )
    return SessionError(f"{what}: {rpc_error_text(exc)}", where=where)


class Connection:
    """One channel to one IG server, with its GetInfo answer."""

    def __init__(self, endpoint: Endpoint, settings: GadgetClientSettings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.where = endpoint.node or endpoint.address
        self.channel = open_channel(endpoint, settings)
        self.builtin = pb_grpc.BuiltInGadgetManagerStub(self.channel)
        self.gadgets = pb_grpc.GadgetManagerStub(self.channel)
        self.info: ServerInfo | None = None
        #: RunGadget goes through `h2stream` (the unary calls always use the channel); all
        #: streams of this endpoint share its connection, so their order is kept.
        self.native = settings.transport == "native"
        self.h2 = H2Client(endpoint, settings) if self.native else None

    async def get_info(self) -> ServerInfo:
        """GetInfo with the connect deadline; waits for the channel to come up until then."""
        try:
            resp = await self.builtin.GetInfo(
                pb.InfoRequest(version="1.0"),
                timeout=self.settings.connect_timeout.total_seconds(),
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate_rpc_error(exc, where=self.where, what="GetInfo") from exc
        self.info = check_version(resp.serverVersion, where=self.where)
        return self.info

    async def gadget_info(self, image: str, params: Mapping[str, str]) -> GadgetInfoSpec | None:
        """GetGadgetInfo for param discovery; None when the server does not offer it."""
        try:
            resp = await self.gadgets.GetGadgetInfo(
                pb.GetGadgetInfoRequest(
                    imageName=image, paramValues=dict(params), version=PROTOCOL_VERSION
                ),
                timeout=self.settings.connect_timeout.total_seconds() * 6,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise translate_rpc_error(
                exc, where=self.where, what=f"IG rejected gadget {image}"
            ) from exc
        return gadget_info_from_proto(resp.gadgetInfo)

    async def close(self) -> None:
        if self.h2 is not None:
            await self.h2.close()
        await self.channel.close(grace=None)


def check_params(params: Mapping[str, str], declared: Mapping[str, Iterable[str] | None]) -> None:
    """Every user key must be declared by at least one gadget that reports its params."""
    reported = {g: set(keys) for g, keys in declared.items() if keys is not None}
    if not reported:
        return
    valid = set().union(*reported.values())
    for key in params:
        if key not in valid:
            raise SessionError(
                f"unknown parameter {key!r}; valid keys: {', '.join(sorted(valid))}",
                where=",".join(sorted(reported)),
            )


def declared_keys(info: GadgetInfoSpec | None) -> list[str] | None:
    if info is None or not info.params:
        return None
    keys = [p.key for p in info.params]
    keys += [p.alternative_key for p in info.params if p.alternative_key]
    return keys
