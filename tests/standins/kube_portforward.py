"""`pods/portforward` over WebSocket, as `kubernetes.stream.portforward` speaks it.

Protocol (kubelet's WebSocket port-forward, subprotocol `v4.channel.k8s.io`): for the i-th port
in `?ports=a,b`, channel `2i` carries data both ways and channel `2i+1` carries errors from the
server. The server's first frame on each of the two channels is the channel byte followed by the
port number as 2 bytes little-endian; after that every binary frame is `channel byte + payload`.
A failure to reach the port is reported as text on the error channel (the client then closes its
local socket for that port).

Here each port's data channel is connected to the backend configured for the pod
(`unix:///path`, `tcp://host:port` or `host:port`), so a real gRPC server (h2c) on a loopback or
unix socket is reachable through the official client exactly as an IG pod is through a cluster.
When every backend has closed, the WebSocket is closed, like the kubelet ending the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
from aiohttp import web

SUBPROTOCOLS = ("v4.channel.k8s.io",)
#: Read size from the backend; one WebSocket frame per read. The client itself reads 1 MiB.
READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class _Port:
    index: int
    number: int
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address.startswith("unix://"):
        return await asyncio.open_unix_connection(address[len("unix://") :])
    if address.startswith("unix:"):
        return await asyncio.open_unix_connection(address[len("unix:") :])
    target = address.removeprefix("tcp://")
    host, _, port = target.rpartition(":")
    return await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))


def parse_ports(query: str) -> list[int]:
    """`8080,9090` → [8080, 9090] (ValueError on anything else, as the server rejects it)."""
    ports = [int(p) for p in query.split(",") if p.strip()]
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise ValueError(f"invalid port specification {query!r}")
    return ports


async def serve_portforward(
    request: web.Request, *, ports: list[int], backends: dict[int | None, str], pod: str
) -> web.WebSocketResponse:
    """Run one port-forward session until either side closes."""
    ws = web.WebSocketResponse(protocols=SUBPROTOCOLS, max_msg_size=0, autoping=True)
    await ws.prepare(request)
    state = [_Port(i, n) for i, n in enumerate(ports)]
    for port in state:
        prefix = port.number.to_bytes(2, "little")
        await ws.send_bytes(bytes([2 * port.index]) + prefix)
        await ws.send_bytes(bytes([2 * port.index + 1]) + prefix)
    pumps: list[asyncio.Task[None]] = []
    for port in state:
        address = backends.get(port.number) or backends.get(None)
        try:
            if address is None:
                raise ConnectionRefusedError("connection refused")
            port.reader, port.writer = await _open(address)
        except (OSError, ValueError) as exc:
            message = (
                f"error forwarding port {port.number} to pod {pod}: failed to connect to "
                f"localhost:{port.number}: {exc}"
            )
            await ws.send_bytes(bytes([2 * port.index + 1]) + message.encode())
            continue
        pumps.append(asyncio.create_task(_backend_to_ws(port, ws), name=f"pf-{port.number}"))

    async def closer() -> None:
        # When every backend has hung up there is nothing left to forward: end the session.
        if pumps:
            await asyncio.gather(*pumps, return_exceptions=True)
        await ws.close()

    closing = asyncio.create_task(closer(), name="pf-closer")
    try:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel = msg.data[0]
            if channel % 2 or channel // 2 >= len(state):
                continue
            port = state[channel // 2]
            if port.writer is not None and not port.writer.is_closing():
                port.writer.write(msg.data[1:])
                with contextlib.suppress(ConnectionError):
                    await port.writer.drain()
    finally:
        for port in state:
            if port.writer is not None:
                port.writer.close()
        for task in [*pumps, closing]:
            task.cancel()
        await asyncio.gather(*pumps, closing, return_exceptions=True)
        for port in state:
            if port.writer is not None:
                with contextlib.suppress(OSError):
                    await port.writer.wait_closed()
    return ws


async def _backend_to_ws(port: _Port, ws: web.WebSocketResponse) -> None:
    assert port.reader is not None
    channel = bytes([2 * port.index])
    try:
        while not ws.closed:
            data = await port.reader.read(READ_CHUNK)
            if not data:
                return
            await ws.send_bytes(channel + data)
    except (ConnectionError, RuntimeError):
        return
