"""The native transport's frame loop, frame by frame, and fuzzed.

The conformance tests run it against real servers; here a scripted peer sends what those
servers rarely or never send (CONTINUATION, padding, PING, RST_STREAM, GOAWAY, trailers-only
errors, compressed messages, oversized frames, garbage), byte-exact, into the real protocol
object, and reads back what the client wrote (ACKs, WINDOW_UPDATEs, GOAWAY).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import grpc
import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gadgetclient import h2stream as h2
from gadgetclient.h2stream import CallTarget, WireEvent


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Peer:
    """A scripted server on the other end of one `_Protocol`."""

    def __init__(self, *, max_message: int = 64 * 1024 * 1024) -> None:
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[tuple[grpc.StatusCode, str]] = self.loop.create_future()
        self.events: list[WireEvent] = []
        self.proto = h2._Protocol(max_message=max_message, coalesce=0)
        self.transport = _Transport()
        self.proto.connection_made(self.transport)
        self.proto.start()
        self.stream = self.proto.open_stream(
            CallTarget("unix:///x", "localhost"),
            "/api.GadgetManager/RunGadget",
            b"",
            self.events.extend,
            self.done,
        )
        self.enc = hpack.Encoder()

    def feed(self, data: bytes, *, chunk: int = 1 << 30) -> None:
        while data:
            buf = self.proto.get_buffer(-1)
            n = min(len(buf), len(data), chunk)
            buf[:n] = data[:n]
            data = data[n:]
            self.proto.buffer_updated(n)

    def block(self, headers: list[tuple[str, str]]) -> bytes:
        return bytes(self.enc.encode(headers))

    def client_frames(self) -> list[tuple[int, int, int, bytes]]:
        data = bytes(self.transport.out)
        assert data.startswith(h2.PREFACE)
        p = len(h2.PREFACE)
        frames = []
        while p < len(data):
            n = int.from_bytes(data[p : p + 3], "big")
            ftype, flags = data[p + 3], data[p + 4]
            stream = int.from_bytes(data[p + 5 : p + 9], "big")
            frames.append((ftype, flags, stream, data[p + 9 : p + 9 + n]))
            p += 9 + n
        return frames

    @property
    def status(self) -> tuple[grpc.StatusCode, str]:
        assert self.done.done(), "the call did not end"
        return self.done.result()


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return h2._frame(ftype, flags, stream, payload)


def event(t: int, seq: int, payload: bytes, ds: int) -> bytes:
    """A GadgetEvent on the wire, written by hand (fields in order, like protobuf)."""
    out = bytearray()
    for fn, v in ((1, t), (2, seq)):
        if v:
            out += bytes([fn << 3]) + _varint(v)
    if payload:
        out += b"\x1a" + _varint(len(payload)) + payload
    if ds:
        out += b"\x20" + _varint(ds)
    return bytes(out)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]
OK_TRAILERS = [("grpc-status", "0")]
SERVER_SETTINGS = frame(h2.SETTINGS, 0, 0)


def ok_stream(peer: Peer, messages: list[bytes]) -> bytes:
    body = b"".join(h2.grpc_message(m) for m in messages)
    return (
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS))
        + frame(h2.DATA, 0, 1, body)
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS | h2.FLAG_END_STREAM, 1, peer.block(OK_TRAILERS))
    )


async def test_settings_and_ping_are_acknowledged() -> None:
    peer = Peer()
    peer.feed(SERVER_SETTINGS + frame(h2.PING, 0, 0, b"12345678") + frame(h2.SETTINGS, 1, 0))
    frames = peer.client_frames()
    assert (h2.SETTINGS, h2.FLAG_ACK, 0, b"") in frames
    assert (h2.PING, h2.FLAG_ACK, 0, b"12345678") in frames
    # Our own SETTINGS: push off, a 16 MiB window; and a connection WINDOW_UPDATE to match.
    ours = next(f for f in frames if f[0] == h2.SETTINGS and not f[1])
    assert b"\x00\x02\x00\x00\x00\x00" in ours[3]
    assert (h2.RECEIVE_WINDOW).to_bytes(4, "big") in ours[3]
    assert not peer.done.done()


async def test_continuation_padding_and_priority() -> None:
    peer = Peer()
    head = peer.block([*OK_HEADERS, ("x-filler", "y" * 300)])
    trail = peer.block([*OK_TRAILERS, ("x-more", "z" * 100)])
    msg = h2.grpc_message(event(0, 7, b"abc", 2))
    pad = 9
    data = (
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_PRIORITY, 1, b"\x00\x00\x00\x00\x10" + head[:100])
        + frame(h2.CONTINUATION, 0, 1, head[100:200])
        + frame(h2.CONTINUATION, h2.FLAG_END_HEADERS, 1, head[200:])
        + frame(h2.DATA, h2.FLAG_PADDED, 1, bytes([pad]) + msg[:4] + b"\0" * pad)
        + frame(h2.DATA, 0, 1, msg[4:])
        + frame(h2.HEADERS, h2.FLAG_PADDED | h2.FLAG_END_STREAM, 1, b"\x02" + trail[:50] + b"pp")
        + frame(h2.CONTINUATION, h2.FLAG_END_HEADERS, 1, trail[50:])
    )
    peer.feed(data, chunk=7)  # frames split across reads too
    assert peer.events == [(0, 7, b"abc", 2)]
    assert peer.status == (grpc.StatusCode.OK, "")


async def test_a_frame_between_header_fragments_is_a_protocol_error() -> None:
    peer = Peer()
    head = peer.block(OK_HEADERS)
    peer.feed(
        SERVER_SETTINGS
        + frame(h2.HEADERS, 0, 1, head[:2])
        + frame(h2.PING, 0, 0, b"12345678")
        + frame(h2.CONTINUATION, h2.FLAG_END_HEADERS, 1, head[2:])
    )
    code, message = peer.status
    assert code == grpc.StatusCode.INTERNAL
    assert "header block interrupted" in message
    assert any(f[0] == h2.GOAWAY for f in peer.client_frames())


@pytest.mark.parametrize(
    ("status", "message", "code", "text"),
    [
        ("5", "not%20found%3A %E2%9C%93", grpc.StatusCode.NOT_FOUND, "not found: ✓"),
        ("2", "expected version to be 1, got 2", grpc.StatusCode.UNKNOWN,
         "expected version to be 1, got 2"),
        ("99", "", grpc.StatusCode.UNKNOWN, ""),
    ],
)  # fmt: skip
async def test_trailers_only_errors(
    status: str, message: str, code: grpc.StatusCode, text: str
) -> None:
    peer = Peer()
    headers = [*OK_HEADERS, ("grpc-status", status), ("grpc-message", message)]
    peer.feed(
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS | h2.FLAG_END_STREAM, 1, peer.block(headers))
    )
    assert peer.status == (code, text)


async def test_http_status_without_grpc_status_maps_like_grpc() -> None:
    peer = Peer()
    peer.feed(
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block([(":status", "404")]))
    )
    assert peer.status[0] == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("rst", "code"),
    [
        (h2.CANCEL, grpc.StatusCode.CANCELLED),
        (h2.REFUSED_STREAM, grpc.StatusCode.UNAVAILABLE),
        (h2.ENHANCE_YOUR_CALM, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (h2.INTERNAL_ERROR, grpc.StatusCode.INTERNAL),
    ],
)
async def test_rst_stream(rst: int, code: grpc.StatusCode) -> None:
    peer = Peer()
    peer.feed(
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS))
        + frame(h2.DATA, 0, 1, h2.grpc_message(event(0, 1, b"x", 0)))
        + frame(h2.RST_STREAM, 0, 1, rst.to_bytes(4, "big"))
    )
    assert peer.events == [(0, 1, b"x", 0)]
    assert peer.status[0] == code


async def test_goaway() -> None:
    # Our stream not taken: UNAVAILABLE with the server's words.
    peer = Peer()
    peer.feed(SERVER_SETTINGS + frame(h2.GOAWAY, 0, 0, bytes(4) + bytes(4) + b"shutting down"))
    code, message = peer.status
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in message
    # Taken: the call goes on to its trailers.
    peer = Peer()
    data = ok_stream(peer, [event(0, 1, b"a", 0)])
    goaway = frame(h2.GOAWAY, 0, 0, (1).to_bytes(4, "big") + bytes(4))
    peer.feed(data[:9] + goaway + data[9:])
    assert peer.status == (grpc.StatusCode.OK, "")
    assert peer.events == [(0, 1, b"a", 0)]
    # Taken, then the connection closes before the trailers: UNAVAILABLE, naming the GOAWAY.
    peer = Peer()
    peer.feed(data[:9] + goaway + data[9:-20])
    peer.proto.connection_lost(None)
    assert peer.status[0] == grpc.StatusCode.UNAVAILABLE
    assert "after GOAWAY" in peer.status[1]


async def test_compressed_message_is_rejected() -> None:
    peer = Peer()
    body = b"\x01" + (3).to_bytes(4, "big") + b"abc"
    peer.feed(
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS))
        + frame(h2.DATA, 0, 1, body)
    )
    code, message = peer.status
    assert code == grpc.StatusCode.INTERNAL
    assert "compressed message" in message
    assert (h2.RST_STREAM, 0, 1, h2.CANCEL.to_bytes(4, "big")) in peer.client_frames()
    assert peer.events == []


async def test_grpc_encoding_other_than_identity_is_rejected() -> None:
    peer = Peer()
    headers = [*OK_HEADERS, ("grpc-encoding", "gzip")]
    peer.feed(SERVER_SETTINGS + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(headers)))
    assert peer.status[0] == grpc.StatusCode.INTERNAL
    assert "gzip" in peer.status[1]


async def test_oversized_frame_and_message() -> None:
    peer = Peer()
    big = (h2.MAX_FRAME_SIZE + 1).to_bytes(3, "big") + bytes([h2.DATA, 0]) + (1).to_bytes(4, "big")
    peer.feed(SERVER_SETTINGS + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS)))
    peer.feed(big)
    assert peer.status[0] == grpc.StatusCode.INTERNAL
    goaway = [f for f in peer.client_frames() if f[0] == h2.GOAWAY]
    assert goaway[0][3][4:8] == h2.FRAME_SIZE_ERROR.to_bytes(4, "big")

    peer = Peer(max_message=100)
    peer.feed(ok_stream(peer, [event(0, 1, b"x" * 200, 0)]))
    assert peer.status == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Received message larger than max (205 vs. 100)",
    )


async def test_not_http2_is_unavailable() -> None:
    peer = Peer()
    peer.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    code, message = peer.status
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "does not speak HTTP/2" in message


async def test_flow_control_replenishes_connection_and_stream_windows() -> None:
    peer = Peer()
    payload = b"p" * 16_000
    msg = h2.grpc_message(event(0, 1, payload, 0))
    peer.feed(SERVER_SETTINGS + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS)))
    sent = 0
    n = 0
    window = {0: h2.RECEIVE_WINDOW, 1: h2.RECEIVE_WINDOW}
    while sent < 3 * h2.RECEIVE_WINDOW:
        # The server never sends more than the windows the client granted.
        assert window[0] >= len(msg)
        assert window[1] >= len(msg)
        peer.feed(frame(h2.DATA, 0, 1, msg))
        sent += len(msg)
        n += 1
        window[0] -= len(msg)
        window[1] -= len(msg)
        for ftype, _, stream, body in peer.client_frames():
            if ftype == h2.WINDOW_UPDATE:
                window[stream] += int.from_bytes(body, "big")
        peer.transport.out[:] = h2.PREFACE  # consumed
    assert len(peer.events) == n
    assert not peer.done.done()


async def test_request_respects_the_peer_window_and_frame_size() -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    proto = h2._Protocol(max_message=1 << 20, coalesce=0)
    transport = _Transport()
    proto.connection_made(transport)
    big = b"r" * 100_000  # a run request with many params
    proto.start()
    proto.open_stream(CallTarget("unix:///x", "localhost"), "/p", big, lambda e: None, done)
    peer_settings = frame(h2.SETTINGS, 0, 0, b"\x00\x04" + (1000).to_bytes(4, "big"))

    def data_sent() -> int:
        total = 0
        p = len(h2.PREFACE)
        out = bytes(transport.out)
        while p < len(out):
            n = int.from_bytes(out[p : p + 3], "big")
            if out[p + 3] == h2.DATA:
                assert n <= h2.DEFAULT_MAX_FRAME
                total += n
            p += 9 + n
        return total

    assert data_sent() == h2.DEFAULT_WINDOW  # the default window, in 16 KiB frames
    buf = proto.get_buffer(-1)
    buf[: len(peer_settings)] = peer_settings
    proto.buffer_updated(len(peer_settings))
    assert data_sent() == h2.DEFAULT_WINDOW  # smaller stream window: nothing more
    upd = frame(h2.WINDOW_UPDATE, 0, 0, (200_000).to_bytes(4, "big"))
    upd += frame(h2.WINDOW_UPDATE, 0, 1, (200_000).to_bytes(4, "big"))
    buf = proto.get_buffer(-1)
    buf[: len(upd)] = upd
    proto.buffer_updated(len(upd))
    assert data_sent() == len(big) + h2.MESSAGE_HEADER


async def test_connection_lost_inside_a_message_delivers_nothing_partial() -> None:
    peer = Peer()
    second = h2.grpc_message(event(0, 2, b"b" * 100, 0))
    data = (
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS))
        + frame(h2.DATA, 0, 1, h2.grpc_message(event(0, 1, b"a" * 100, 0)) + second[:50])
        + frame(h2.DATA, 0, 1, second[50:])
    )
    cut = data.index(b"b" * 50)
    peer.feed(data[:cut])
    peer.proto.connection_lost(ConnectionResetError("reset by peer"))
    assert peer.events == [(0, 1, b"a" * 100, 0)]
    assert peer.status[0] == grpc.StatusCode.UNAVAILABLE
    assert "reset by peer" in peer.status[1]


# -- fuzz -------------------------------------------------------------------------------------

_EVENT = st.tuples(
    st.integers(0, 1 << 20), st.integers(0, 2**32 - 1), st.binary(max_size=300), st.integers(0, 9)
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(_EVENT, max_size=20),
    cuts=st.lists(st.integers(1, 4000), max_size=30),
    frame_size=st.integers(1, 2000),
)
def test_fuzz_any_split_delivers_exactly_the_events(
    events: list[tuple[int, int, bytes, int]], cuts: list[int], frame_size: int
) -> None:
    """Messages split over DATA frames of any size, frames split over reads anywhere."""

    async def run() -> None:
        peer = Peer()
        body = b"".join(h2.grpc_message(event(*e)) for e in events)
        data = bytearray(SERVER_SETTINGS)
        data += frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS))
        for i in range(0, len(body), frame_size):
            data += frame(h2.DATA, 0, 1, body[i : i + frame_size])
        data += frame(h2.HEADERS, 5, 1, peer.block(OK_TRAILERS))
        stream = bytes(data)
        points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        for a, b in itertools.pairwise(points):
            peer.feed(stream[a:b])
        assert peer.events == [tuple(e) for e in events]
        assert peer.status == (grpc.StatusCode.OK, "")

    asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(
    prefix_events=st.lists(_EVENT, max_size=5),
    garbage=st.binary(max_size=600),
    truncate=st.integers(0, 5000),
)
def test_fuzz_garbage_and_truncation_end_clearly(
    prefix_events: list[tuple[int, int, bytes, int]], garbage: bytes, truncate: int
) -> None:
    """Random bytes after a valid start, or a valid stream cut short, then the connection
    closes: the call always ends (never waits forever), with a status and a message, and
    what was delivered is exactly a prefix of the valid events (never a corrupt event)."""

    async def run() -> None:
        peer = Peer()
        body = b"".join(h2.grpc_message(event(*e)) for e in prefix_events)
        valid = (
            SERVER_SETTINGS
            + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, peer.block(OK_HEADERS))
            + frame(h2.DATA, 0, 1, body)
        )
        stream = valid + garbage
        stream = stream[: min(len(stream), len(valid) + truncate)] if garbage else valid[:truncate]
        peer.feed(stream)
        peer.proto.connection_lost(None)
        code, message = peer.status
        assert isinstance(code, grpc.StatusCode)
        assert code == grpc.StatusCode.OK or message
        assert peer.events == [tuple(e) for e in prefix_events[: len(peer.events)]] or (
            garbage and peer.events[: len(prefix_events)] == [tuple(e) for e in prefix_events]
        )

    asyncio.run(run())


async def test_streams_share_a_connection_and_keep_the_wire_order() -> None:
    """Events of two calls reach the session in the order the server wrote them (what an
    ordered replay relies on); a GOAWAY ends only the call the server did not take."""
    peer = Peer()
    order: list[tuple[str, int]] = []
    peer.stream.on_events = lambda evs: order.extend(("a", e[1]) for e in evs)
    done_b: asyncio.Future[Any] = peer.loop.create_future()
    done_c: asyncio.Future[Any] = peer.loop.create_future()
    b = peer.proto.open_stream(
        CallTarget("unix:///x", "localhost"),
        "/p",
        b"",
        lambda evs: order.extend(("b", e[1]) for e in evs),
        done_b,
    )
    c = peer.proto.open_stream(
        CallTarget("unix:///x", "localhost"), "/p", b"", lambda evs: None, done_c
    )
    assert (peer.stream.id, b.id, c.id) == (1, 3, 5)
    head = peer.block(OK_HEADERS)

    def data(sid: int, seq: int) -> bytes:
        return frame(h2.DATA, 0, sid, h2.grpc_message(event(0, seq, b"x", 0)))

    peer.feed(
        SERVER_SETTINGS
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 1, head)
        + frame(h2.HEADERS, h2.FLAG_END_HEADERS, 3, peer.block(OK_HEADERS))
        + data(1, 1)
        + data(1, 2)
        + data(3, 1)
        + data(1, 3)
        + frame(h2.GOAWAY, 0, 0, (3).to_bytes(4, "big") + bytes(4))
        + data(3, 2)
        + frame(h2.HEADERS, 5, 3, peer.block(OK_TRAILERS))
    )
    assert order == [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]
    assert done_b.result() == (grpc.StatusCode.OK, "")
    assert done_c.result()[0] == grpc.StatusCode.UNAVAILABLE
    assert not peer.done.done()
    assert peer.proto.going_away


@given(
    t=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=20_000),
    ds=st.integers(0, 2**32 - 1),
    extra=st.binary(max_size=8),
)
@settings(max_examples=300, deadline=None)
def test_parse_event_matches_protobuf(
    t: int, seq: int, payload: bytes, ds: int, extra: bytes
) -> None:
    """The wire read agrees with protobuf on every field value (varints of 1 to 5 bytes)."""
    from protos import gadget_service_pb2 as pb

    wire = pb.GadgetEvent(type=t, seq=seq, payload=payload, dataSourceID=ds).SerializeToString()
    assert h2.parse_event(wire, 0, len(wire)) == (t, seq, payload, ds)
    # Inside a larger buffer, bounded by `end`: trailing bytes are never read.
    buf = bytearray(b"\xff" + wire + extra)
    assert h2.parse_event(buf, 1, 1 + len(wire)) == (t, seq, payload, ds)
