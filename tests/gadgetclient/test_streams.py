"""Stream behaviour on real gRPC: malformed events, loss accounting, stop, flush, reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.encoding import ShapeLayout
from gadgetclient.events import ExecEvent, SyscallsEvent
from gadgetclient.layouts import DataSourceType, GadgetInfoSpec
from gadgetclient.replay import ReplayServer
from gadgetclient.source import GadgetSource, running
from gadgetclient.stats import DropReason, LossReason
from gadgetclient.wire import encode_single, gadget_info_to_proto
from protos import gadget_service_pb2 as pb
from protos import gadget_service_pb2_grpc as pb_grpc
from tests.gadgetclient.conftest import sample_lines, settings_for

#: Every test here runs on both RunGadget transports (native and grpcio).
pytestmark = pytest.mark.usefixtures("both_transports")

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")


class _Hostile(pb_grpc.GadgetManagerServicer, pb_grpc.BuiltInGadgetManagerServicer):  # type: ignore[misc]
    """An IG lookalike that sends a scripted list of events."""

    def __init__(self, script: Callable[[], list[pb.GadgetEvent]], fail: str = "") -> None:
        self.script = script
        self.fail = fail

    async def GetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.InfoResponse(version="1.0", serverVersion="0.55.0")

    async def GetGadgetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no")

    async def RunGadget(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        await request_iterator.__anext__()
        for ev in self.script():
            yield ev
        if self.fail:
            await context.abort(grpc.StatusCode.UNKNOWN, self.fail)


async def _serve(servicer: Any, sock: Path) -> grpc.aio.Server:
    server = grpc.aio.server()
    pb_grpc.add_GadgetManagerServicer_to_server(servicer, server)
    pb_grpc.add_BuiltInGadgetManagerServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    return server


def _exec_layout() -> tuple[GadgetInfoSpec, list[bytes]]:
    layout = ShapeLayout(name="exec", ds_type=DataSourceType.SINGLE, records=[EXEC], k8s_mode=False)
    info = GadgetInfoSpec("trace_exec", "trace_exec:v0.55.0", (layout.spec(0),))
    return info, layout.encode(EXEC)


def _payload(seq: int, slots: list[bytes], ds: int = 0) -> pb.GadgetEvent:
    return pb.GadgetEvent(type=0, seq=seq, payload=encode_single(slots), dataSourceID=ds)


async def test_malformed_events_are_counted_never_raised(sock_path: Path) -> None:
    info, slots = _exec_layout()
    info_ev = pb.GadgetEvent(type=4, payload=gadget_info_to_proto(info).SerializeToString())

    def script() -> list[pb.GadgetEvent]:
        return [
            pb.GadgetEvent(type=3 << 16, payload=b"gadget warming up"),
            _payload(1, slots),  # before GadgetInfo
            info_ev,
            _payload(1, slots),
            _payload(2, slots, ds=9),  # unknown data source
            pb.GadgetEvent(type=0, seq=3, payload=b"\x1a\xff\xff\x01", dataSourceID=0),  # corrupt
            _payload(4, [slots[0][:10]]),  # truncated container, missing slots
            _payload(9, slots),  # seq gap of 4
            pb.GadgetEvent(type=3 << 16, payload=b"lost 17 samples"),
            pb.GadgetEvent(type=77),  # unknown type
            pb.GadgetEvent(type=1),  # Result: ignored
        ]

    server = await _serve(_Hostile(script), sock_path)
    try:
        source = GadgetSource(settings_for(f"unix://{sock_path}", ("trace_exec",)))
        events: list[Any] = []
        await source.run(on_batch=events.extend)
    finally:
        await server.stop(None)
    stats = source.stats
    assert stats.dropped == {
        ("trace_exec", DropReason.BEFORE_GADGETINFO): 1,
        ("trace_exec", DropReason.UNKNOWN_DATASOURCE): 1,
        ("trace_exec", DropReason.UNDECODABLE): 1,
        ("trace_exec", DropReason.UNKNOWN_EVENT_TYPE): 1,
    }
    assert stats.lost == {
        ("trace_exec", LossReason.SEQ_GAP): 4,
        ("trace_exec", LossReason.LOST_SAMPLES): 17,
    }
    assert stats.repaired == {("trace_exec", "exec"): 2}  # short container + missing slots
    assert stats.log_events[("trace_exec", "warning")] == 2
    assert len(events) == 3
    assert all(isinstance(e, ExecEvent) for e in events)
    assert events[0].args == ("/usr/bin/sleep", "0.4")


async def test_failure_after_start_is_retried_with_backoff(sock_path: Path) -> None:
    info, slots = _exec_layout()
    info_ev = pb.GadgetEvent(type=4, payload=gadget_info_to_proto(info).SerializeToString())
    runs = 0

    def script() -> list[pb.GadgetEvent]:
        nonlocal runs
        runs += 1
        return [info_ev, _payload(1, slots)]

    hostile = _Hostile(script, fail="ebpf program detached")
    server = await _serve(hostile, sock_path)
    got = asyncio.Event()
    events: list[Any] = []

    def on_batch(batch: Any) -> None:
        events.extend(batch)
        if len(events) >= 3:
            got.set()

    source = GadgetSource(
        settings_for(f"unix://{sock_path}", ("trace_exec",)), flush_interval=0.001
    )
    try:
        async with running(source, on_batch=on_batch):
            await asyncio.wait_for(got.wait(), 10)
    finally:
        await server.stop(None)
    assert source.stats.reconnects["trace_exec"] >= 2
    assert runs >= 3


async def test_reconnect_after_the_server_restarts(sock_path: Path) -> None:
    capture = Capture(tuple(CaptureLine("trace_exec", "exec", "", EXEC) for _ in range(10_000)))
    first = ReplayServer(capture, listen=f"unix://{sock_path}", rate=200)
    await first.start()
    events: list[Any] = []
    seen = asyncio.Event()

    def on_batch(batch: Any) -> None:
        events.extend(batch)
        seen.set()

    source = GadgetSource(
        settings_for(f"unix://{sock_path}", ("trace_exec",)), flush_interval=0.001
    )
    second: ReplayServer | None = None
    try:
        async with running(source, on_batch=on_batch):
            await asyncio.wait_for(seen.wait(), 10)
            await first.stop(None)  # the IG pod goes away mid-stream
            second = ReplayServer(capture, listen=f"unix://{sock_path}", rate=200)
            await second.start()
            seen.clear()
            while second.runs == 0 or not seen.is_set():
                seen.clear()
                await asyncio.wait_for(seen.wait(), 10)
    finally:
        if second is not None:
            await second.stop(None)
    assert source.stats.reconnects["trace_exec"] >= 1
    assert second is not None
    assert second.runs == 1


def _seccomp_capture() -> Capture:
    k8s = {"containerName": "app", "namespace": "shop", "node": "n1", "podName": "web-1"}
    element = {"k8s": k8s, "mntns_id_raw": 4026532001, "syscalls": [1, 1, 0, 1] + [0] * 497}
    return Capture(
        (
            CaptureLine("advise_seccomp", "syscalls", "", [element]),
            CaptureLine("advise_seccomp", "advise", "", {"text": "// app\n{}\n"}),
        )
    )


async def test_stop_reads_advise_seccomp_final_flush(sock_path: Path) -> None:
    # Unordered: the flush comes at stop, like a live gadget (ordered replay sends it at its
    # capture position: tests/gadgetclient/test_ordered_replay.py).
    server = ReplayServer(
        _seccomp_capture(), listen=f"unix://{sock_path}", hold_flush=True, ordered=False
    )
    await server.start()
    events: list[Any] = []
    source = GadgetSource(
        settings_for(f"unix://{sock_path}", ("advise_seccomp",)), wall_clock_ns=lambda: 5_000
    )
    try:
        task = asyncio.create_task(source.run(on_batch=events.extend))
        await asyncio.wait_for(source.ready.wait(), 10)
        assert events == []  # IG sends nothing before the stop
        await source.stop()
        await asyncio.wait_for(task, 10)
    finally:
        await server.stop(None)
    assert len(events) == 1
    ev = events[0]
    assert isinstance(ev, SyscallsEvent)
    assert ev.syscalls == frozenset({"read", "write", "close"})
    assert ev.container.pod == "web-1"
    assert ev.container.mntns_id == 4026532001
    assert (ev.window_start_ns, ev.window_end_ns) == (5_000, 5_000)


async def test_seccomp_windows_overlap_and_the_last_one_is_flushed(sock_path: Path) -> None:
    server = ReplayServer(
        _seccomp_capture(), listen=f"unix://{sock_path}", hold_flush=True, ordered=False
    )
    await server.start()
    events: list[Any] = []
    settings = settings_for(
        f"unix://{sock_path}",
        ("advise_seccomp",),
        seccomp_window=__import__("datetime").timedelta(milliseconds=50),
    )
    source = GadgetSource(settings)
    try:
        task = asyncio.create_task(source.run(on_batch=events.extend))
        await asyncio.wait_for(server.wait_runs(3), 10)  # two window rotations happened
        await source.stop()
        await asyncio.wait_for(task, 10)
    finally:
        await server.stop(None)
    # The first window's stop got the capture's flush; later windows had nothing new, and
    # each new run started before the previous one was stopped.
    assert len([e for e in events if isinstance(e, SyscallsEvent)]) == 1
    assert server.runs >= 3


async def test_timeout_and_rate_are_honoured(sock_path: Path) -> None:
    capture = Capture(tuple(CaptureLine("trace_exec", "exec", "", EXEC) for _ in range(50)))
    server = ReplayServer(capture, listen=f"unix://{sock_path}", rate=1000)
    await server.start()
    channel = grpc.aio.insecure_channel(f"unix://{sock_path}")
    try:
        stub = pb_grpc.GadgetManagerStub(channel)
        stop = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield pb.GadgetControlRequest(
                runRequest=pb.GadgetRunRequest(
                    imageName="trace_exec", version=1, timeout=20_000_000
                )
            )
            await stop.wait()

        types = [ev.type async for ev in stub.RunGadget(requests())]
        stop.set()
        # 20 ms at 1000 events/s: the run ends (status OK) long before the 50 events.
        assert types[0] == 4
        assert 1 <= types.count(0) < 50

        async def bad_version() -> AsyncIterator[Any]:
            yield pb.GadgetControlRequest(
                runRequest=pb.GadgetRunRequest(imageName="trace_exec", version=2)
            )
            await stop.wait()

        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [ev async for ev in stub.RunGadget(bad_version())]
        assert err.value.details() == "expected version to be 1, got 2"
    finally:
        await channel.close()
        await server.stop(None)
