"""Loopback receivers the tests deliver to: a recording aiohttp server, a syslog server for
UDP, TCP and TLS (octet counting), and a black hole that never completes a connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every request; answers with `statuses` in turn (then 200), or hangs while
    `hold` is set. Paths: any (the webhook) and `/-/healthy`."""

    statuses: list[int] = field(default_factory=list)
    hold: bool = False
    ssl_context: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.path == "/-/healthy":
            return web.Response(text="OK")
        if self.hold:
            await self._release.wait()
        self.requests.append(Request(request.method, request.path, dict(request.headers), body))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "rejected by test")

    async def start(self, port: int = 0) -> HttpReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert received, whatever the body shape (one, {"alerts": [...]}, or a list)."""
        out: list[dict[str, Any]] = []
        for r in self.requests:
            body = r.json()
            if isinstance(body, list):
                out.extend(body)
            elif "alerts" in body:
                out.extend(body["alerts"])
            else:
                out.append(body)
        return out


class SyslogReceiver:
    """A syslog server: UDP datagrams, or octet-counted frames over TCP/TLS."""

    def __init__(self, transport: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.transport = transport
        self.ssl_context = ssl_context
        self.messages: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> SyslogReceiver:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            receiver = self

            class _Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    receiver.messages.append(data)

            transport, _ = await loop.create_datagram_endpoint(_Proto, local_addr=("127.0.0.1", 0))
            self._udp = transport
            self.port = transport.get_extra_info("sockname")[1]
        else:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", 0, ssl=self.ssl_context
            )
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                length = await reader.readuntil(b" ")
                self.messages.append(await reader.readexactly(int(length[:-1])))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self._conns.discard(task)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()


class BlackHole:
    """A TCP port whose accept queue is full: new connections never complete (SYNs dropped),
    like a firewalled or wedged peer. Linux admits backlog+1 pending connections."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = int(self.listener.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(2):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    def close(self) -> None:
        for s in self._fillers:
            s.close()
        self.listener.close()


def fingerprints_from_syslog(messages: list[bytes], parse: Callable[[str], Any]) -> list[str]:
    return [parse(m.decode()).sd["alert@32473"]["fingerprint"] for m in messages]
