"""The native receive path: `RunGadget` calls over our own HTTP/2 frame loop.

Why: IG sends one gRPC message per traced event and never batches trace gadgets, so grpcio's
fixed per-message cost (thread hand-offs between its poller, event engine and the asyncio loop:
60-105 µs) was two thirds of the agent's CPU at a busy node's rate. This module speaks HTTP/2
for exactly one bidi stream and does the hot part itself:

* the socket is read with large reads into one buffer (`asyncio.BufferedProtocol`: no copy per
  read), and when a read comes back small, reading pauses for `read_coalesce` so the next read
  takes a batch (IG's 16384-event channel is a second of headroom at 16k events/s, a millisecond
  of delay costs nothing);
* frames are cut out of that buffer in a loop; DATA payloads are cut into gRPC length-prefixed
  messages in place when whole, and through a small reassembly buffer when split across frames
  or reads;
* each message is read as a `GadgetEvent` straight from the wire (four fields, no protobuf
  object): `(type, seq, payload, dataSourceID)` tuples go to `on_events` once per read;
* WINDOW_UPDATEs for the connection and the stream are sent once per read for what was
  consumed, against large windows, so flow control never stalls the server.

The calls of one endpoint share one connection (`H2Client`, one per `sessions.Connection`), as
they share grpcio's channel: frames are handled in socket order, so events of different streams
reach the session in the order the server wrote them, which ordered replay relies on. After a
GOAWAY the calls the server took run to their end there and new calls open a new connection.

Everything that is intricate but not hot comes from libraries or is a few lines: HPACK (dynamic
table, Huffman) is the `hpack` package; SETTINGS and their ACKs, PING ACKs, CONTINUATION,
GOAWAY, RST_STREAM and padding are handled as RFC 9113 says. The call ends with the trailers'
`grpc-status`/`grpc-message` (also a trailers-only response), mapped to the same
`grpc.StatusCode`s grpcio reports, so the session layer translates both transports' failures
with the same code (`RpcStatusError` has grpcio's `code()` / `details()` shape). A connection
that breaks, a protocol violation and a malformed message end the call with a clear status,
never with a half-delivered event: an event is handed over only once its message is complete.

Never requested and refused when it comes: compression (a message with the compressed flag is
an INTERNAL error; we send no `grpc-accept-encoding` but `identity`) and server push (disabled
in our SETTINGS). Unary calls (GetInfo, GetGadgetInfo) stay on grpcio (`sessions.Connection`).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import hpack

from gadgetclient.config import GadgetClientSettings
from gadgetclient.errors import TargetError
from gadgetclient.targets import Endpoint

# -- protocol constants (RFC 9113) --------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM, INADEQUATE_SECURITY = 0xB, 0xC

#: Our one stream: the first client-initiated stream of a fresh connection.
STREAM_ID = 1
#: RFC 9113 defaults, in force until the peer's SETTINGS say otherwise.
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
#: Largest legal window (2^31 - 1).
MAX_WINDOW = 0x7FFF_FFFF
#: Our receive window for the connection and the stream: 16 MiB is ~2,300 trace_exec events,
#: far more than one read batch, so the server never waits for a WINDOW_UPDATE.
RECEIVE_WINDOW = 16 * 1024 * 1024
#: Largest DATA/HEADERS frame we accept: 1 MiB lets servers that honour it send fewer frames
#: (grpc-go sends 16 KiB frames regardless) and bounds one frame's memory.
MAX_FRAME_SIZE = 1024 * 1024
#: Bound of one response header block (headers or trailers, decoded): grpc-go's trailers are a
#: few hundred bytes; 256 KiB leaves room for a long grpc-message and stops a hostile peer.
MAX_HEADER_LIST = 256 * 1024
#: Free space offered to each socket read: many events per read at 16k events/s.
READ_SIZE = 256 * 1024
#: A read shorter than this means we caught up with the server: pause for `read_coalesce`.
COALESCE_BELOW = 64 * 1024
#: gRPC message header: 1 flag byte + 4 length bytes.
MESSAGE_HEADER = 5

#: (type, seq, payload, dataSourceID) of one GadgetEvent, read straight from the wire.
WireEvent = tuple[int, int, bytes, int]
OnEvents = Callable[[list[WireEvent]], None]

_CODES = {code.value[0]: code for code in grpc.StatusCode}

#: gRPC's mapping of HTTP/2 stream reset codes to status codes (doc/PROTOCOL-HTTP2.md).
_RST_CODES = {
    REFUSED_STREAM: grpc.StatusCode.UNAVAILABLE,
    CANCEL: grpc.StatusCode.CANCELLED,
    ENHANCE_YOUR_CALM: grpc.StatusCode.RESOURCE_EXHAUSTED,
    INADEQUATE_SECURITY: grpc.StatusCode.PERMISSION_DENIED,
}
#: gRPC's mapping of an HTTP status without grpc-status (doc/http-grpc-status-mapping.md).
_HTTP_CODES = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}


class RpcStatusError(Exception):
    """The call ended with a non-OK gRPC status: `code()` and `details()` as grpcio has them."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class _ConnectionError(Exception):
    """A violation of HTTP/2 by the peer: we send GOAWAY with `h2_code` and end the call."""

    def __init__(self, h2_code: int, message: str) -> None:
        super().__init__(message)
        self.h2_code = h2_code


class _CallError(Exception):
    """A gRPC-level failure found by us (bad message): reset the stream, end with `status`."""

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status


def _frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((ftype, flags))
        + stream.to_bytes(4, "big")
        + payload
    )


def grpc_message(payload: bytes) -> bytes:
    """A gRPC length-prefixed, uncompressed message."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def _varint(buf: Any, p: int, end: int) -> tuple[int, int]:
    """A protobuf varint at `p` (at most 10 bytes, before `end`): (value, next position)."""
    value = 0
    shift = 0
    while True:
        if p >= end or shift > 63:
            raise _CallError(grpc.StatusCode.INTERNAL, "GadgetEvent does not parse: bad varint")
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, p
        shift += 7


def parse_event(buf: Any, p: int, end: int) -> WireEvent:
    """The four fields of a `GadgetEvent` (type=1, seq=2, payload=3, dataSourceID=4) from
    `buf[p:end]`; unknown fields are skipped like protobuf does, malformed input is an error."""
    etype = seq = ds = 0
    payload = b""
    while p < end:
        key = buf[p]
        if key < 0x80:
            p += 1
        else:
            key, p = _varint(buf, p, end)
        wt = key & 7
        fn = key >> 3
        if wt == 0:
            # One- and two-byte varints inline: seq and small ids (py-spy showed the call).
            if p < end and buf[p] < 0x80:
                v = buf[p]
                p += 1
            elif p + 1 < end and buf[p + 1] < 0x80:
                v = (buf[p] & 0x7F) | (buf[p + 1] << 7)
                p += 2
            else:
                v, p = _varint(buf, p, end)
            if fn == 1:
                etype = v & 0xFFFF_FFFF
            elif fn == 2:
                seq = v & 0xFFFF_FFFF
            elif fn == 4:
                ds = v & 0xFFFF_FFFF
        elif wt == 2:
            if p < end and buf[p] < 0x80:
                n = buf[p]
                p += 1
            elif p + 1 < end and buf[p + 1] < 0x80:  # payloads up to 16 KiB
                n = (buf[p] & 0x7F) | (buf[p + 1] << 7)
                p += 2
            else:
                n, p = _varint(buf, p, end)
            q = p + n
            if q > end:
                raise _CallError(
                    grpc.StatusCode.INTERNAL, "GadgetEvent does not parse: truncated field"
                )
            if fn == 3:
                payload = bytes(buf[p:q])
            p = q
        elif wt == 5:
            p += 4
        elif wt == 1:
            p += 8
        else:
            raise _CallError(
                grpc.StatusCode.INTERNAL, f"GadgetEvent does not parse: wire type {wt}"
            )
        if fn == 0:
            raise _CallError(grpc.StatusCode.INTERNAL, "GadgetEvent does not parse: field 0")
    if p != end:
        raise _CallError(grpc.StatusCode.INTERNAL, "GadgetEvent does not parse: truncated field")
    return etype, seq, payload, ds


@dataclass(frozen=True, slots=True)
class CallTarget:
    """Where and how to open the connection of one call (from an `Endpoint`)."""

    address: str  # "unix:///path" or "host:port"
    authority: str
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl is not None else "http"


def _read(path: str, what: str) -> None:
    if not Path(path).is_file():
        raise TargetError(f"cannot read {what}: no such file", where=path)


def call_target(endpoint: Endpoint) -> CallTarget:
    """The connection recipe of an endpoint: unix or TCP, TLS (mTLS, ALPN h2) when configured."""
    address = endpoint.address
    if address.startswith("unix:"):
        if endpoint.tls is not None and endpoint.tls.enabled:
            raise TargetError("TLS is supported on tcp:// targets only", where=address)
        return CallTarget(address=address, authority="localhost")
    host = address.rsplit(":", 1)[0].strip("[]")
    tls = endpoint.tls
    if tls is None or not tls.enabled:
        return CallTarget(address=address, authority=address)
    if not (tls.client_key and tls.client_cert and tls.server_ca):
        raise TargetError(
            "mTLS needs the client key, the client certificate and the server CA together",
            where=address,
        )
    _read(tls.server_ca, "server CA")
    _read(tls.client_cert, "client certificate")
    _read(tls.client_key, "client key")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.server_ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # HTTP/2 requires TLS 1.2 or newer
    try:
        ctx.load_cert_chain(tls.client_cert, tls.client_key)
    except (ssl.SSLError, OSError) as exc:
        raise TargetError(f"cannot load the client certificate: {exc}", where=address) from exc
    ctx.set_alpn_protocols(["h2"])
    name = tls.server_name or host
    port = address.rsplit(":", 1)[1]
    return CallTarget(
        address=address,
        authority=f"{tls.server_name}:{port}" if tls.server_name else address,
        ssl=ctx,
        server_hostname=name,
    )


class _Stream:
    """One gRPC call on a connection: its receive state and where its events go."""

    __slots__ = (
        "done",
        "headers_seen",
        "id",
        "msg",
        "on_events",
        "outbox",
        "send_window",
        "unacked",
    )

    def __init__(
        self, sid: int, on_events: OnEvents, done: asyncio.Future[tuple[grpc.StatusCode, str]]
    ) -> None:
        self.id = sid
        self.on_events = on_events
        self.done = done
        self.msg = bytearray()  # a gRPC message split across DATA frames
        self.headers_seen = False
        self.send_window = DEFAULT_WINDOW
        self.unacked = 0
        self.outbox: list[bytes] = []  # gRPC messages waiting for send window


class _Protocol(asyncio.BufferedProtocol):
    """The frame loop of one HTTP/2 connection carrying the RunGadget calls of one endpoint.

    All streams of an endpoint share it, like grpcio's channel does: frames are handled in the
    order they arrive on the socket, so events of different streams reach the session in the
    order the server wrote them (an ordered replay stays ordered). Consecutive events of one
    stream go to its `on_events` as one batch.
    """

    def __init__(self, *, max_message: int, coalesce: float) -> None:
        self.max_message = max_message
        self.coalesce = coalesce
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.closed = False
        #: Why the connection ended (for calls started after that).
        self.close_reason = "connection closed"
        #: Set by GOAWAY: no new streams here (the client opens another connection).
        self.going_away = False
        self._next_id = 1
        self._loop = asyncio.get_running_loop()
        self._buf = bytearray(MAX_FRAME_SIZE + READ_SIZE)
        self._pos = 0
        self._end = 0
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = MAX_HEADER_LIST
        self._encoder = hpack.Encoder()
        self._block = bytearray()  # a header block awaiting CONTINUATION
        self._block_end_stream = False
        self._block_stream = 0
        self._got_settings = False
        self._send_window = DEFAULT_WINDOW  # connection
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._conn_unacked = 0
        self._goaway: tuple[int, int, str] | None = None
        self._paused = False
        self._resume: asyncio.TimerHandle | None = None
        # The stream whose events are being collected, and those events.
        self._cur: _Stream | None = None
        self._events: list[WireEvent] = []
        #: Frames and PINGs received, for tests and the benchmark.
        self.frames = 0
        self.pings = 0

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None and sslobj.selected_alpn_protocol() != "h2":
            self._fail_all(
                grpc.StatusCode.UNAVAILABLE,
                "the server did not negotiate HTTP/2 (ALPN h2) over TLS",
            )
            self._close()

    def get_buffer(self, sizehint: int) -> memoryview:
        buf = self._buf
        if self._pos == self._end:
            self._pos = self._end = 0
        elif len(buf) - self._end < READ_SIZE:
            # Move the unread tail to the front (same length: the buffer never resizes, so no
            # view handed out earlier can be invalidated).
            n = self._end - self._pos
            if n + READ_SIZE > len(buf):
                grown = bytearray(n + READ_SIZE + MAX_FRAME_SIZE)
                grown[:n] = buf[self._pos : self._end]
                self._buf = buf = grown
            else:
                buf[:n] = buf[self._pos : self._end]
            self._pos, self._end = 0, n
        return memoryview(buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        try:
            self._frames(self._buf, self._end)
        except _ConnectionError as exc:
            self._abort(exc.h2_code, str(exc))
            return
        finally:
            self._deliver()
        self._acknowledge()
        if nbytes < COALESCE_BELOW and self.coalesce > 0 and self.streams and not self.closed:
            assert self.transport is not None
            self.transport.pause_reading()
            self._paused = True
            self._resume = self._loop.call_later(self.coalesce, self._resume_reading)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        ours = self.closed  # we closed it, after recording why (`close_reason`)
        self.closed = True
        if self._resume is not None:
            self._resume.cancel()
        why = f": {exc}" if exc else ""
        if self._goaway is not None:
            _, code, debug = self._goaway
            why = f" after GOAWAY (error code {code}{': ' + debug if debug else ''}){why}"
        elif not self._got_settings:
            why = f" before the HTTP/2 handshake{why}"
        if ours and not self.streams:
            return
        self._fail_all(grpc.StatusCode.UNAVAILABLE, f"connection closed{why}")

    def _resume_reading(self) -> None:
        self._resume = None
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()

    # -- sending -----------------------------------------------------------------------------

    def start(self) -> None:
        """Preface, our SETTINGS and a larger connection window, in one write."""
        settings = b"".join(
            k.to_bytes(2, "big") + v.to_bytes(4, "big")
            for k, v in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW),
                (SETTINGS_MAX_FRAME_SIZE, MAX_FRAME_SIZE),
                (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
            )
        )
        self._write(
            PREFACE
            + _frame(SETTINGS, 0, 0, settings)
            + _frame(WINDOW_UPDATE, 0, 0, (RECEIVE_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big"))
        )

    def open_stream(
        self,
        target: CallTarget,
        path: str,
        first: bytes,
        on_events: OnEvents,
        done: asyncio.Future[tuple[grpc.StatusCode, str]],
    ) -> _Stream:
        """Start a call: its request headers and first request message."""
        sid = self._next_id
        self._next_id += 2
        stream = _Stream(sid, on_events, done)
        stream.send_window = self._peer_initial_window
        self.streams[sid] = stream
        block = self._encoder.encode(
            [
                (":method", "POST"),
                (":scheme", target.scheme),
                (":path", path),
                (":authority", target.authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-accept-encoding", "identity"),
                ("user-agent", "gadgetwatch-native/1"),
            ]
        )
        self._write(_frame(HEADERS, FLAG_END_HEADERS, sid, block))
        self.send_message(stream, first)
        return stream

    def send_message(self, stream: _Stream, message: bytes) -> None:
        """Queue one gRPC message on a stream (sent as the peer's windows allow)."""
        stream.outbox.append(grpc_message(message))
        self._flush_outbox(stream)

    def _flush_outbox(self, stream: _Stream) -> None:
        out: list[bytes] = []
        while stream.outbox:
            data = stream.outbox[0]
            room = min(self._send_window, stream.send_window, self._peer_max_frame)
            if room <= 0:
                break
            chunk, rest = data[:room], data[room:]
            self._send_window -= len(chunk)
            stream.send_window -= len(chunk)
            out.append(_frame(DATA, 0, stream.id, chunk))
            if rest:
                stream.outbox[0] = rest
            else:
                stream.outbox.pop(0)
        if out:
            self._write(b"".join(out))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _reset(self, sid: int, code: int) -> None:
        self._write(_frame(RST_STREAM, 0, sid, code.to_bytes(4, "big")))

    def end_stream(self, stream: _Stream) -> None:
        """Our side is done with a call: reset it if the server has not ended it."""
        if self.streams.pop(stream.id, None) is not None:
            self._reset(stream.id, CANCEL)
        if not stream.done.done():
            stream.done.set_result((grpc.StatusCode.CANCELLED, "cancelled by the client"))

    def _abort(self, h2_code: int, message: str) -> None:
        """A connection error: GOAWAY with the code, end every call, close."""
        debug = message.encode()[:256]
        last = (self._next_id - 2 if self._next_id > 1 else 0).to_bytes(4, "big")
        self._write(_frame(GOAWAY, 0, 0, last + h2_code.to_bytes(4, "big") + debug))
        status = grpc.StatusCode.INTERNAL if self._got_settings else grpc.StatusCode.UNAVAILABLE
        self._fail_all(status, f"HTTP/2 protocol error: {message}")
        self._close()

    def close(self) -> None:
        """Our side is done with the connection: reset open calls, GOAWAY, close."""
        for stream in list(self.streams.values()):
            self.end_stream(stream)
        self._write(_frame(GOAWAY, 0, 0, bytes(8)))
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.transport is not None:
            self.transport.close()

    def _finish(self, stream: _Stream, code: grpc.StatusCode, message: str) -> None:
        self.streams.pop(stream.id, None)
        if self._cur is stream:
            self._deliver()
        if not stream.done.done():
            stream.done.set_result((code, message))

    def _fail_all(self, code: grpc.StatusCode, message: str) -> None:
        self.close_reason = message
        self._deliver()
        for stream in list(self.streams.values()):
            self._finish(stream, code, message)

    # -- receiving ---------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Hand the collected events to their stream (a consumer's error ends that call)."""
        stream, events = self._cur, self._events
        self._cur = None
        if stream is None or not events:
            return
        self._events = []
        try:
            stream.on_events(events)
        except BaseException as exc:
            if self.streams.pop(stream.id, None) is not None:
                self._reset(stream.id, CANCEL)
            if not stream.done.done():
                stream.done.set_exception(exc)

    def _frames(self, buf: bytearray, end: int) -> None:
        pos = self._pos
        max_frame = MAX_FRAME_SIZE
        while end - pos >= 9 and not self.closed:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if not self._got_settings and (length > max_frame or buf[pos + 3] != SETTINGS):
                raise _ConnectionError(
                    PROTOCOL_ERROR,
                    "the endpoint does not speak HTTP/2 gRPC (no SETTINGS frame first)",
                )
            if length > max_frame:
                raise _ConnectionError(
                    FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds our maximum {max_frame}"
                )
            if end - pos - 9 < length:
                break
            ftype = buf[pos + 3]
            flags = buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFF_FFFF
            start = pos + 9
            pos = start + length
            # A frame counts as consumed before it is handled: an error in it ends the call.
            self._pos = pos
            self.frames += 1
            if self._block_stream and ftype != CONTINUATION:
                raise _ConnectionError(PROTOCOL_ERROR, "header block interrupted")
            if ftype == DATA:
                self._data(buf, start, pos, flags, sid)
                continue
            self._deliver()  # keep the order of events and of what follows them
            self._control(ftype, flags, sid, bytes(buf[start:pos]))

    def _data(self, buf: bytearray, start: int, end: int, flags: int, sid: int) -> None:
        length = end - start
        self._conn_unacked += length
        stream = self.streams.get(sid)
        if stream is None:
            if sid == 0 or sid >= self._next_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on stream {sid}")
            return  # a call we ended: its remaining data is dropped (and counted above)
        if not stream.headers_seen:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA before the response headers")
        stream.unacked += length
        if flags & FLAG_PADDED:
            if length < 1 or buf[start] >= length:
                raise _ConnectionError(PROTOCOL_ERROR, "DATA padding exceeds the frame")
            end -= buf[start]
            start += 1
        if self._cur is not stream:
            self._deliver()
            self._cur = stream
        events = self._events
        msg = stream.msg
        try:
            if msg:
                msg += buf[start:end]
                used = self._messages(msg, 0, len(msg), events)
                del msg[:used]
            else:
                used = self._messages(buf, start, end, events)
                if start + used < end:
                    msg += buf[start + used : end]
        except _CallError as exc:
            self._reset(sid, CANCEL)
            self._finish(stream, exc.status, str(exc))
            return
        if flags & FLAG_END_STREAM:
            self._finish(
                stream,
                grpc.StatusCode.INTERNAL,
                "the server ended the stream without trailers (grpc-status)",
            )

    def _messages(self, buf: bytearray, p: int, end: int, events: list[WireEvent]) -> int:
        """Cut whole gRPC messages out of `buf[p:end]`; returns the bytes used."""
        begin = p
        limit = self.max_message
        while end - p >= MESSAGE_HEADER:
            flag = buf[p]
            n = int.from_bytes(buf[p + 1 : p + 5], "big")
            if flag:
                if flag == 1:
                    raise _CallError(
                        grpc.StatusCode.INTERNAL,
                        "the server sent a compressed message, but no compression was requested",
                    )
                raise _CallError(grpc.StatusCode.INTERNAL, f"bad gRPC message flag {flag}")
            if n > limit:
                raise _CallError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max ({n} vs. {limit})",
                )
            q = p + MESSAGE_HEADER + n
            if q > end:
                break
            events.append(parse_event(buf, p + MESSAGE_HEADER, q))
            p = q
        return p - begin

    def _acknowledge(self) -> None:
        out = b""
        if self._conn_unacked >= RECEIVE_WINDOW // 2:
            out += _frame(WINDOW_UPDATE, 0, 0, self._conn_unacked.to_bytes(4, "big"))
            self._conn_unacked = 0
        for stream in self.streams.values():
            if stream.unacked >= RECEIVE_WINDOW // 2:
                out += _frame(WINDOW_UPDATE, 0, stream.id, stream.unacked.to_bytes(4, "big"))
                stream.unacked = 0
        if out:
            self._write(out)

    def _control(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == SETTINGS:
            self._settings(flags, sid, payload)
        elif ftype == HEADERS:
            self._headers_frame(flags, sid, payload)
        elif ftype == CONTINUATION:
            if not self._block_stream or sid != self._block_stream:
                raise _ConnectionError(PROTOCOL_ERROR, "unexpected CONTINUATION")
            self._block += payload
            if len(self._block) > MAX_HEADER_LIST:
                raise _ConnectionError(ENHANCE_YOUR_CALM, "header block too large")
            if flags & FLAG_END_HEADERS:
                self._header_block_done()
        elif ftype == PING:
            if sid != 0:
                raise _ConnectionError(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise _ConnectionError(FRAME_SIZE_ERROR, "PING of the wrong size")
            if not flags & FLAG_ACK:
                self.pings += 1
                self._write(_frame(PING, FLAG_ACK, 0, payload))
        elif ftype == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif ftype == RST_STREAM:
            if len(payload) != 4 or sid == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "bad RST_STREAM")
            stream = self.streams.get(sid)
            if stream is not None:
                code = int.from_bytes(payload, "big")
                self._finish(
                    stream,
                    _RST_CODES.get(code, grpc.StatusCode.INTERNAL),
                    f"stream reset by the server (HTTP/2 error code {code})",
                )
        elif ftype == GOAWAY:
            if sid != 0 or len(payload) < 8:
                raise _ConnectionError(PROTOCOL_ERROR, "bad GOAWAY")
            last = int.from_bytes(payload[:4], "big") & 0x7FFF_FFFF
            code = int.from_bytes(payload[4:8], "big")
            debug = payload[8:].decode("utf-8", "replace")
            self._goaway = (last, code, debug)
            self.going_away = True
            for stream in list(self.streams.values()):
                if stream.id > last:
                    self._finish(
                        stream,
                        grpc.StatusCode.UNAVAILABLE,
                        f"the server is going away and did not take the call (GOAWAY code "
                        f"{code}{': ' + debug if debug else ''})",
                    )
        elif ftype == PUSH_PROMISE:
            raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled")
        elif ftype == PRIORITY and len(payload) != 5:
            raise _ConnectionError(FRAME_SIZE_ERROR, "bad PRIORITY")
        # Unknown frame types are ignored (RFC 9113 §4.1).

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & FLAG_ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        self._got_settings = True
        for i in range(0, len(payload), 6):
            key = int.from_bytes(payload[i : i + 2], "big")
            value = int.from_bytes(payload[i + 2 : i + 6], "big")
            if key == SETTINGS_HEADER_TABLE_SIZE:
                self._encoder.header_table_size = value
            elif key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "initial window too large")
                for stream in self.streams.values():
                    stream.send_window += value - self._peer_initial_window
                self._peer_initial_window = value
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= 0xFF_FFFF:
                    raise _ConnectionError(PROTOCOL_ERROR, f"bad max frame size {value}")
                self._peer_max_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise _ConnectionError(PROTOCOL_ERROR, "bad ENABLE_PUSH")
        self._write(_frame(SETTINGS, FLAG_ACK, 0))
        for stream in list(self.streams.values()):
            self._flush_outbox(stream)

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        inc = int.from_bytes(payload, "big") & 0x7FFF_FFFF
        if inc == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        if sid == 0:
            self._send_window += inc
            if self._send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window overflow")
            for waiting in list(self.streams.values()):
                self._flush_outbox(waiting)
            return
        stream = self.streams.get(sid)
        if stream is not None:
            stream.send_window += inc
            if stream.send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "stream window overflow")
            self._flush_outbox(stream)

    def _headers_frame(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0 or sid % 2 == 0 or sid >= self._next_id:
            raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS on stream {sid}")
        p, end = 0, len(payload)
        if flags & FLAG_PADDED:
            if end < 1 or payload[0] >= end:
                raise _ConnectionError(PROTOCOL_ERROR, "HEADERS padding exceeds the frame")
            end -= payload[0]
            p = 1
        if flags & FLAG_PRIORITY:
            p += 5
            if p > end:
                raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
        self._block = bytearray(payload[p:end])
        self._block_end_stream = bool(flags & FLAG_END_STREAM)
        self._block_stream = sid
        if flags & FLAG_END_HEADERS:
            self._header_block_done()

    def _header_block_done(self) -> None:
        block, self._block = bytes(self._block), bytearray()
        sid, self._block_stream = self._block_stream, 0
        try:
            headers = self._decoder.decode(block)  # always: it keeps the dynamic table in step
        except (hpack.HPACKError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise _ConnectionError(
                COMPRESSION_ERROR, f"header block does not decode: {exc}"
            ) from exc
        stream = self.streams.get(sid)
        if stream is None:
            return  # a call we ended
        fields: dict[str, str] = {}
        for name, value in headers:
            fields[str(name)] = str(value)
        end_stream = self._block_end_stream
        if not stream.headers_seen:
            stream.headers_seen = True
            try:
                http_status = int(fields.get(":status", "0"))
            except ValueError:
                http_status = 0
            if http_status != 200 and "grpc-status" not in fields:
                code = _HTTP_CODES.get(http_status, grpc.StatusCode.UNKNOWN)
                self._reset(sid, CANCEL)
                self._finish(stream, code, f"Received http2 header with status: {http_status}")
                return
            ctype = fields.get("content-type", "")
            if not ctype.startswith("application/grpc") and "grpc-status" not in fields:
                self._reset(sid, CANCEL)
                self._finish(stream, grpc.StatusCode.UNKNOWN, f"unexpected content-type {ctype!r}")
                return
            enc = fields.get("grpc-encoding", "identity")
            if enc != "identity":
                self._reset(sid, CANCEL)
                self._finish(
                    stream,
                    grpc.StatusCode.INTERNAL,
                    f"the server compresses with {enc!r}, but no compression was requested",
                )
                return
            if not end_stream:
                return
            # Trailers-only: the status is in this one block.
        elif not end_stream:
            raise _ConnectionError(PROTOCOL_ERROR, "second header block without END_STREAM")
        status = fields.get("grpc-status")
        if status is None:
            self._finish(
                stream, grpc.StatusCode.INTERNAL, "the server sent trailers without grpc-status"
            )
            return
        try:
            code = _CODES.get(int(status), grpc.StatusCode.UNKNOWN)
        except ValueError:
            code = grpc.StatusCode.UNKNOWN
        message = urllib.parse.unquote(fields.get("grpc-message", ""), errors="replace")
        if code == grpc.StatusCode.OK and stream.msg:
            code, message = grpc.StatusCode.INTERNAL, "the stream ended inside a message"
        self._finish(stream, code, message)


async def _connect(
    target: CallTarget, protocol: _Protocol, connect_s: float
) -> asyncio.BaseTransport:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_s):
            if target.address.startswith("unix:"):
                path = target.address.removeprefix("unix:").removeprefix("//")
                transport, _ = await loop.create_unix_connection(lambda: protocol, path)
            else:
                host, _, port = target.address.rpartition(":")
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    host.strip("[]"),
                    int(port),
                    ssl=target.ssl,
                    server_hostname=target.server_hostname if target.ssl else None,
                )
    except TimeoutError as exc:
        raise RpcStatusError(
            grpc.StatusCode.UNAVAILABLE, f"connecting to {target.address} timed out"
        ) from exc
    except ssl.SSLError as exc:
        raise RpcStatusError(
            grpc.StatusCode.UNAVAILABLE, f"TLS handshake with {target.address} failed: {exc}"
        ) from exc
    except OSError as exc:
        raise RpcStatusError(
            grpc.StatusCode.UNAVAILABLE,
            f"failed to connect to {target.address}: {exc.strerror or exc}",
        ) from exc
    return transport


@dataclass
class CallStats:
    """What a client's frame loops saw (tests and the benchmark read it)."""

    frames: int = 0
    pings: int = 0


class H2Client:
    """The native RunGadget calls of one endpoint, over one shared HTTP/2 connection (a new one
    after the server's GOAWAY or a broken connection)."""

    def __init__(self, endpoint: Endpoint, settings: GadgetClientSettings) -> None:
        self.target = call_target(endpoint)
        self.settings = settings
        self.stats = CallStats()
        self._conn: _Protocol | None = None
        self._old: list[_Protocol] = []
        self._lock = asyncio.Lock()

    async def _connection(self) -> _Protocol:
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.closed and not conn.going_away:
                return conn
            if conn is not None:
                self._retire(conn)
            conn = _Protocol(
                max_message=self.settings.max_receive_message_bytes,
                coalesce=self.settings.read_coalesce.total_seconds(),
            )
            await _connect(self.target, conn, self.settings.connect_timeout.total_seconds())
            if not conn.closed:
                conn.start()
            self._conn = conn
            return conn

    def _retire(self, conn: _Protocol) -> None:
        self.stats.frames += conn.frames
        self.stats.pings += conn.pings
        conn.frames = conn.pings = 0
        if conn.streams and not conn.closed:
            self._old.append(conn)  # its calls run to their end (after a GOAWAY)
        else:
            conn.close()
        self._old = [c for c in self._old if c.streams and not c.closed]

    async def call(
        self,
        *,
        path: str,
        first: bytes,
        on_events: OnEvents,
        stop: asyncio.Event,
        stop_message: bytes,
    ) -> None:
        """Run one bidi call to its end: send `first`, hand events to `on_events` in batches,
        send `stop_message` once `stop` is set (the request side stays open), and return when
        the server ends the call with status OK. Raises `RpcStatusError` for any other ending."""
        conn = await self._connection()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[grpc.StatusCode, str]] = loop.create_future()
        if conn.closed:
            raise RpcStatusError(grpc.StatusCode.UNAVAILABLE, conn.close_reason)
        stream = conn.open_stream(self.target, path, first, on_events, done)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            waits: set[asyncio.Future[Any]] = {done, stopping}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                conn.send_message(stream, stop_message)
            code, message = await done
        finally:
            stopping.cancel()
            conn.end_stream(stream)
            if conn.closed or (conn.going_away and not conn.streams):
                conn.close()
        if code != grpc.StatusCode.OK:
            raise RpcStatusError(code, message)

    async def close(self) -> None:
        for conn in [*self._old, *([self._conn] if self._conn else [])]:
            self.stats.frames += conn.frames
            self.stats.pings += conn.pings
            conn.close()
        self._old = []
        self._conn = None


async def run_call(
    endpoint: Endpoint,
    settings: GadgetClientSettings,
    *,
    path: str,
    first: bytes,
    on_events: OnEvents,
    stop: asyncio.Event,
    stop_message: bytes,
) -> None:
    """One call on a connection of its own (tools and benchmarks)."""
    client = H2Client(endpoint, settings)
    try:
        await client.call(
            path=path, first=first, on_events=on_events, stop=stop, stop_message=stop_message
        )
    finally:
        await client.close()


__all__ = [
    "CallStats",
    "CallTarget",
    "H2Client",
    "RpcStatusError",
    "WireEvent",
    "call_target",
    "grpc_message",
    "parse_event",
    "run_call",
]
