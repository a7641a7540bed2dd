"""The native transport against the two real gRPC servers that run here.

* grpc-go (`tests/igfixture`): IG's own implementation, modelled on its `service-oci.go`
  (GadgetInfo first, a dropping buffered channel, one Send per event, stop flushes, half-close
  cancels, errors as status codes, GOAWAY on graceful stop, connections closed abruptly);
* grpcio (`gadgetclient.replay.ReplayServer`): the project's replay server.

Every ending (OK, error status, trailers-only refusal, GOAWAY, abrupt close) is checked to give
the same error text on both transports, and every event to arrive once, in order, complete.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.config import TlsSettings
from gadgetclient.decoding import DataSourceDecoder, Record
from gadgetclient.errors import GadgetClientError, SessionError, StreamError
from gadgetclient.events import ExecEvent, SyscallsEvent
from gadgetclient.replay import ReplayServer, ServerTls
from gadgetclient.sessions import Connection
from gadgetclient.source import GadgetSource
from gadgetclient.stats import LossReason, StreamStats
from gadgetclient.streaming import GadgetStream
from gadgetclient.targets import parse_target, static_endpoints
from tests import igfixture
from tests.gadgetclient.conftest import sample_lines, settings_for

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")


def _exec_capture(n: int, *, args_bytes: int = 0) -> Capture:
    lines = []
    for i in range(n):
        data = dict(EXEC)
        # A distinct pid per event: order and completeness are checked on it.
        data["proc"] = {**data["proc"], "pid": 1000 + i}
        if args_bytes:
            data["args"] = "x" * args_bytes + f" {i}"
        lines.append(CaptureLine("trace_exec", "exec", "", data))
    return Capture(tuple(lines))


@pytest.fixture
def events_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gw-go-", dir="/tmp") as d:
        yield Path(d)


async def _stream(
    target: str, *, transport: str = "native", image: str = "trace_exec", **kw: Any
) -> tuple[GadgetStream, list[Record], GadgetClientError | None]:
    """Run one stream to its end; returns it, its records, and the error it ended with."""
    settings = settings_for(target, ("trace_exec",), transport=transport, **kw)
    endpoint = static_endpoints(parse_target(target), settings)[0]
    conn = Connection(endpoint, settings)
    records: list[Record] = []

    def on_records(ds: DataSourceDecoder, recs: Any) -> None:
        records.extend(recs)

    stream = GadgetStream(
        conn,
        gadget="trace_exec",
        image=image,
        params={},
        stats=StreamStats(),
        on_records=on_records,
    )
    error: GadgetClientError | None = None
    before = asyncio.all_tasks()
    try:
        await conn.get_info()
        await stream.run()
    except GadgetClientError as exc:
        error = exc
    finally:
        await conn.close()
        # grpcio's request-stream consumer finishes cancelling after the call: wait for it.
        left = {
            t
            for t in asyncio.all_tasks() - before
            if getattr(t.get_coro(), "__qualname__", "") == "Event.wait"
        }
        if left:
            await asyncio.wait(left, timeout=5)
    return stream, records, error


def _pids(records: list[Record]) -> list[int]:
    return [r["proc"]["pid"] for r in records]


# -- grpc-go ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args_bytes", [0, 40_000, 300_000])
async def test_go_every_event_once_in_order(events_dir: Path, args_bytes: int) -> None:
    """Small events (many per DATA frame, coalesced by grpc-go's writer), 40 KB events (split
    over 16 KiB frames) and 300 KB events (split over reads), each delivered whole, in order."""
    n = 3000 if not args_bytes else 60
    igfixture.write_events(events_dir, _exec_capture(n, args_bytes=args_bytes))
    with igfixture.running(events_dir, listen=f"unix:{events_dir}/ig.sock") as fx:
        stream, records, error = await _stream(fx.target)
    assert error is None
    assert _pids(records) == list(range(1000, 1000 + n))
    if args_bytes:
        assert all(len(r["args"]) > args_bytes for r in records)
    assert stream.stats.lost == {}
    assert stream.stats.received["trace_exec"] == n


async def test_go_drops_become_seq_gaps_exactly(events_dir: Path) -> None:
    """IG's channel drops when full while seq advances: every drop is counted as a seq gap."""
    n = 5000
    igfixture.write_events(events_dir, _exec_capture(n))
    with igfixture.running(
        events_dir, listen=f"unix:{events_dir}/ig.sock", args=["-buffer", "4"]
    ) as fx:
        stream, records, error = await _stream(fx.target)
    fx.process.wait()
    report = fx.stderr()
    dropped = int(report.split("dropped=")[1].split()[0])
    assert error is None
    received = stream.stats.received["trace_exec"]
    # seq gaps count what fell between received events; drops after the last one are unseen
    # by any client (IG's own semantics): together they are exactly the server's drops.
    gaps = stream.stats.lost.get(("trace_exec", LossReason.SEQ_GAP), 0)
    trailing = n - stream._last_seq
    assert received + dropped == n
    assert dropped > 0
    assert gaps + trailing == dropped
    assert _pids(records) == sorted(_pids(records))


async def test_go_log_events_and_lost_samples(events_dir: Path) -> None:
    igfixture.write_events(events_dir, _exec_capture(3))
    igfixture.append_log(events_dir, "trace_exec", 3, "lost 17 samples")
    igfixture.append_log(events_dir, "trace_exec", 4, "all good")
    with igfixture.running(events_dir, listen=f"unix:{events_dir}/ig.sock") as fx:
        stream, records, error = await _stream(fx.target)
    assert error is None
    assert len(records) == 3
    assert stream.stats.lost == {("trace_exec", LossReason.LOST_SAMPLES): 17}
    assert stream.stats.log_events[("trace_exec", "warning")] == 1
    assert stream.stats.log_events[("trace_exec", "info")] >= 2  # its own + ours


@pytest.mark.parametrize("transport", ["native", "grpcio"])
async def test_go_errors_are_the_same_on_both_transports(events_dir: Path, transport: str) -> None:
    igfixture.write_events(events_dir, _exec_capture(50))
    sock = f"unix:{events_dir}/ig.sock"
    # A refusal before any message (trailers-only) is a SessionError naming the server's words.
    with igfixture.running(events_dir, listen=sock) as fx:
        _, _, error = await _stream(fx.target, transport=transport, image="trace_nope")
    assert isinstance(error, SessionError)
    assert str(error).endswith(
        "IG rejected gadget trace_nope: UNKNOWN: instantiating gadget: trace_nope: image not found"
    )
    # An error status mid-stream, after GadgetInfo and 5 events.
    with igfixture.running(events_dir, listen=sock, args=["-fail-after", "5"]) as fx:
        _, records, error = await _stream(fx.target, transport=transport)
    assert isinstance(error, StreamError)
    assert str(error).endswith("gadget trace_exec stream failed: UNKNOWN: ebpf program detached")
    assert len(records) == 4  # the 5th Send was the GadgetInfo
    # A connection closed abruptly mid-stream.
    with igfixture.running(
        events_dir, listen=sock, args=["-kill-after", "10", "-rate", "2000"]
    ) as fx:
        _, records, error = await _stream(fx.target, transport=transport)
    assert isinstance(error, StreamError)
    assert "UNAVAILABLE" in str(error)
    assert 1 <= len(records) <= 9  # 9 payloads were sent; grpcio may drop unread ones


async def test_go_goaway_lets_the_running_call_finish(events_dir: Path) -> None:
    igfixture.write_events(events_dir, _exec_capture(500))
    with igfixture.running(
        events_dir, listen=f"unix:{events_dir}/ig.sock", args=["-goaway-after", "20"]
    ) as fx:
        _, records, error = await _stream(fx.target)
    assert error is None
    assert _pids(records) == list(range(1000, 1500))


def _seccomp_capture() -> Capture:
    k8s = {"containerName": "app", "namespace": "shop", "node": "n1", "podName": "web-1"}
    element = {"k8s": k8s, "mntns_id_raw": 4026532001, "syscalls": [1, 1, 0, 1] + [0] * 497}
    return Capture(
        (
            CaptureLine("advise_seccomp", "syscalls", "", [element]),
            CaptureLine("advise_seccomp", "advise", "", {"text": "// app\n{}\n"}),
        )
    )


async def test_go_stop_reads_the_final_flush(events_dir: Path) -> None:
    igfixture.write_events(events_dir, _seccomp_capture())
    with igfixture.running(events_dir, listen=f"unix:{events_dir}/ig.sock", args=["-hold"]) as fx:
        source = GadgetSource(settings_for(fx.target, ("advise_seccomp",)))
        events: list[Any] = []
        task = asyncio.create_task(source.run(on_batch=events.extend))
        await asyncio.wait_for(source.ready.wait(), 10)
        assert events == []
        await source.stop()
        await asyncio.wait_for(task, 10)
    assert [type(e) for e in events] == [SyscallsEvent]
    assert events[0].syscalls == frozenset({"read", "write", "close"})


async def test_go_mtls_with_alpn_h2(events_dir: Path, pki: Path) -> None:
    igfixture.write_events(events_dir, _exec_capture(200))
    args = ["-tls-cert", str(pki / "server.pem"), "-tls-key", str(pki / "server.key"),
            "-tls-client-ca", str(pki / "ca.pem")]  # fmt: skip
    client = TlsSettings(
        client_key=str(pki / "client.key"),
        client_cert=str(pki / "client.pem"),
        server_ca=str(pki / "ca.pem"),
        server_name="ig.example.internal",
    )
    with igfixture.running(events_dir, listen="tcp:127.0.0.1:0", args=args) as fx:
        _, records, error = await _stream(fx.target, tls=client)
    assert error is None
    assert _pids(records) == list(range(1000, 1200))


async def test_go_agent_source_end_to_end(events_dir: Path) -> None:
    """The whole source on the default (native) transport: typed events, ready, finished."""
    igfixture.write_events(events_dir, _exec_capture(1000))
    with igfixture.running(events_dir, listen="tcp:127.0.0.1:0") as fx:
        settings = settings_for(fx.target, ("trace_exec",))
        assert settings.transport == "native"
        source = GadgetSource(settings)
        events: list[Any] = []
        await source.run(on_batch=events.extend)
    assert len(events) == 1000
    assert all(isinstance(e, ExecEvent) for e in events)
    assert [e.process.pid for e in events] == list(range(1000, 2000))


# -- grpcio replay server -------------------------------------------------------------------


@pytest.mark.parametrize("args_bytes", [0, 300_000])
async def test_replay_every_event_once_in_order(sock_path: Path, args_bytes: int) -> None:
    n = 2000 if not args_bytes else 30
    server = ReplayServer(
        _exec_capture(n, args_bytes=args_bytes), listen=f"unix://{sock_path}", ordered=False
    )
    address = await server.start()
    try:
        stream, records, error = await _stream(address)
    finally:
        await server.stop(None)
    assert error is None
    assert _pids(records) == list(range(1000, 1000 + n))
    assert stream.stats.lost == {}


@pytest.mark.parametrize("transport", ["native", "grpcio"])
async def test_replay_refusal_and_limit_are_the_same_on_both_transports(
    sock_path: Path, transport: str
) -> None:
    server = ReplayServer(
        _exec_capture(1, args_bytes=4_300_000), listen=f"unix://{sock_path}", ordered=False
    )
    address = await server.start()
    try:
        _, _, error = await _stream(address, transport=transport, image="trace_nope")
        assert isinstance(error, SessionError)
        assert str(error).endswith(
            "IG rejected gadget trace_nope: UNKNOWN: instantiating gadget: trace_nope: "
            "image not found in capture"
        )
        # A message over the receive limit fails the stream (after GadgetInfo) on both.
        _, records, error = await _stream(
            address, transport=transport, max_receive_message_bytes=4 * 1024 * 1024
        )
        assert isinstance(error, StreamError)
        # grpcio wraps it in "Stream removed (CLIENT: ...)"; the status and figures match.
        assert "gadget trace_exec stream failed: RESOURCE_EXHAUSTED: " in str(error)
        assert "Received message larger than max (4302" in str(error)
        assert "vs. 4194304)" in str(error)
        assert records == []
    finally:
        await server.stop(None)


async def test_replay_mtls(pki: Path) -> None:
    tls = ServerTls(
        key=(pki / "server.key").read_bytes(),
        cert=(pki / "server.pem").read_bytes(),
        client_ca=(pki / "ca.pem").read_bytes(),
    )
    server = ReplayServer(_exec_capture(100), listen="tcp://127.0.0.1:0", tls=tls, ordered=False)
    address = await server.start()
    client = TlsSettings(
        client_key=str(pki / "client.key"),
        client_cert=str(pki / "client.pem"),
        server_ca=str(pki / "ca.pem"),
        server_name="ig.example.internal",
    )
    try:
        _, records, error = await _stream(address, tls=client, connect_timeout=timedelta(seconds=5))
    finally:
        await server.stop(None)
    assert error is None
    assert _pids(records) == list(range(1000, 1100))
