"""Headless gadget instances: the replay server's GadgetInstanceManager and attach (IG's
semantics), and gadgetclient's headless and attach modes over real gRPC."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.config import HeadlessSettings
from gadgetclient.errors import SessionError
from gadgetclient.events import Event, ExecEvent
from gadgetclient.instances import InstanceClient, SeqState, instance_name
from gadgetclient.replay import ReplayServer
from gadgetclient.sessions import Connection
from gadgetclient.source import GadgetSource
from gadgetclient.stats import LossReason
from gadgetclient.targets import parse_target, static_endpoints
from gadgetclient.wire import attach_request, stop_request
from protos import gadget_service_pb2 as pb
from protos import gadget_service_pb2_grpc as pb_grpc
from tests.gadgetclient.conftest import sample_lines, settings_for

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")
N = 12


def _capture(n: int = N) -> Capture:
    lines = []
    for i in range(1, n + 1):
        data = copy.deepcopy(EXEC)
        data["proc"]["pid"] = i
        data["args"] = f"/usr/bin/sleep\u00a0{i}"
        lines.append(CaptureLine("trace_exec", "exec", "", data))
    return Capture(lines=tuple(lines))


def _number(ev: Event) -> int:
    assert isinstance(ev, ExecEvent)
    return int(ev.args[1])


@pytest.fixture
async def server(sock_path: Path) -> AsyncIterator[ReplayServer]:
    srv = ReplayServer(_capture(), listen=f"unix://{sock_path}", hold_instances=True)
    await srv.start()
    yield srv
    await srv.stop(None)


def _stubs(address: str) -> tuple[grpc.aio.Channel, Any, Any]:
    channel = grpc.aio.insecure_channel(address.replace("unix://", "unix:"))
    return (
        channel,
        pb_grpc.GadgetInstanceManagerStub(channel),
        pb_grpc.GadgetManagerStub(channel),
    )


def _create(name: str = "", id_: str = "", image: str = "trace_exec", buf: int = 0) -> Any:
    return pb.CreateGadgetInstanceRequest(
        gadgetInstance=pb.GadgetInstance(
            id=id_,
            name=name,
            gadgetConfig=pb.GadgetRunRequest(imageName=image, version=1),
        ),
        eventBufferLength=buf,
    )


class _Attached:
    """A raw attach call: requests stay open until `close()`."""

    def __init__(self, gadgets: Any, id_: str) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queue.put_nowait(attach_request(id_))
        self.call = gadgets.RunGadget(self._requests())
        self.events = self.call.__aiter__()

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def next(self) -> Any:
        return await self.events.__anext__()

    async def payload_seqs(self, count: int) -> list[int]:
        return [(await self.next()).seq for _ in range(count)]

    def close(self) -> None:
        self.call.cancel()
        self.queue.put_nowait(None)


async def test_create_list_get_remove(server: ReplayServer) -> None:
    channel, inst, _ = _stubs(server.address)
    async with channel:
        made = await inst.CreateGadgetInstance(_create(name="mine"))
        assert made.result == 0
        gid = made.gadgetInstance.id
        assert len(gid) == 32
        assert all(c in "0123456789abcdef" for c in gid)
        assert made.gadgetInstance.name == "mine"
        given = "ab" * 16
        other = await inst.CreateGadgetInstance(_create(id_=given))
        assert other.gadgetInstance.id == given
        assert other.gadgetInstance.name

        listed = await inst.ListGadgetInstances(pb.ListGadgetInstancesRequest())
        assert {i.id for i in listed.gadgetInstances} == {gid, given}
        got = await inst.GetGadgetInstance(pb.GadgetInstanceId(id=gid))
        assert got.name == "mine"
        assert got.state.status == pb.StatusRunning
        assert got.gadgetConfig.imageName == "trace_exec"

        assert (await inst.RemoveGadgetInstance(pb.GadgetInstanceId(id=gid))).result == 0
        listed = await inst.ListGadgetInstances(pb.ListGadgetInstancesRequest())
        assert [i.id for i in listed.gadgetInstances] == [given]
        for call in (inst.GetGadgetInstance, inst.RemoveGadgetInstance):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(pb.GadgetInstanceId(id=gid))
            assert err.value.details() == f"gadget {gid} not found"


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"id_": "XYZ"}, "invalid id"),
        ({"name": "Bad Name!"}, "invalid name"),
        ({"name": "x" * 33}, "invalid name"),
        ({"image": "trace_nothing"}, "image not found"),
    ],
)
async def test_create_refuses_what_ig_refuses(
    server: ReplayServer, kw: dict[str, Any], text: str
) -> None:
    channel, inst, _ = _stubs(server.address)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await inst.CreateGadgetInstance(_create(**kw))
        assert text in (err.value.details() or "")
        assert not (await inst.ListGadgetInstances(pb.ListGadgetInstancesRequest())).gadgetInstances


async def test_attach_replays_the_ring_buffer_then_live_with_continuing_seq(
    server: ReplayServer,
) -> None:
    channel, inst, gadgets = _stubs(server.address)
    async with channel:
        gid = (await inst.CreateGadgetInstance(_create(name="x"))).gadgetInstance.id
        await server.instances.release(gid, 3)
        await server.instances.wait_produced(gid, 3)
        first = _Attached(gadgets, gid)
        info_ev = await first.next()
        assert info_ev.type == 4
        assert pb.GadgetInfo.FromString(info_ev.payload).id == gid
        assert await first.payload_seqs(3) == [1, 2, 3]
        # A stop request is not read on an attached stream: live payloads keep coming.
        first.queue.put_nowait(stop_request())
        await server.instances.release(gid, 2)
        assert await first.payload_seqs(2) == [4, 5]
        # A second client gets the whole buffer with the instance's own numbers.
        second = _Attached(gadgets, gid)
        assert (await second.next()).type == 4
        assert await second.payload_seqs(5) == [1, 2, 3, 4, 5]
        first.close()  # detaching is closing the stream; the instance keeps running
        await server.instances.release(gid, 1)
        assert await second.payload_seqs(1) == [6]
        got = await inst.GetGadgetInstance(pb.GadgetInstanceId(id=gid))
        assert got.state.status == pb.StatusRunning
        # Remove ends the attached stream with OK.
        await inst.RemoveGadgetInstance(pb.GadgetInstanceId(id=gid))
        with pytest.raises(StopAsyncIteration):
            await second.next()
        assert await second.call.code() == grpc.StatusCode.OK
        second.close()


async def test_ring_buffer_keeps_the_last_n(server: ReplayServer) -> None:
    channel, inst, gadgets = _stubs(server.address)
    async with channel:
        gid = (await inst.CreateGadgetInstance(_create(name="small", buf=4))).gadgetInstance.id
        await server.instances.release(gid, 10)
        await server.instances.wait_produced(gid, 10)
        att = _Attached(gadgets, gid)
        assert (await att.next()).type == 4
        assert await att.payload_seqs(4) == [7, 8, 9, 10]
        att.close()


async def test_attach_unknown_id_is_not_found(server: ReplayServer) -> None:
    channel, _, gadgets = _stubs(server.address)
    async with channel:
        att = _Attached(gadgets, "f" * 32)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await att.next()
        att.close()
        assert err.value.details() == f"gadget {'f' * 32} not found"


# -- gadgetclient -----------------------------------------------------------------------------


def test_instance_names_fit_ig_limits() -> None:
    assert instance_name("gadgetwatch", "trace_exec") == "gadgetwatch-trace_exec"
    long_a = instance_name("Node.Very-Long-Cluster-Name-A", "trace_capabilities")
    long_b = instance_name("Node.Very-Long-Cluster-Name-B", "trace_capabilities")
    for name in (long_a, long_b):
        assert len(name) <= 32
        assert name.endswith("-trace_capabilities")
        assert all(c.isdigit() or c.islower() or c in "-_" for c in name)
    assert long_a != long_b


class _Sink:
    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.changed = asyncio.Event()

    def __call__(self, batch: Sequence[Event]) -> None:
        self.numbers += [_number(e) for e in batch]
        self.changed.set()

    async def until(self, pred: Callable[[list[int]], bool]) -> None:
        while not pred(self.numbers):
            self.changed.clear()
            await self.changed.wait()


def _headless_settings(address: str, state: Path, **kw: Any) -> Any:
    headless = HeadlessSettings(enabled=True, state_file=str(state), **kw)
    return settings_for(address, ("trace_exec",), headless=headless)


async def _instances(address: str) -> list[Any]:
    settings = settings_for(address, ())
    conn = Connection(static_endpoints(parse_target(address), settings)[0], settings)
    try:
        return await InstanceClient(conn).list()
    finally:
        await conn.close()


async def _start(source: GadgetSource, sink: _Sink) -> asyncio.Task[None]:
    task = asyncio.create_task(source.run(sink))
    await source.ready.wait()
    return task


async def test_headless_survives_a_restart_and_processes_each_event_once(
    server: ReplayServer, tmp_path: Path
) -> None:
    state = tmp_path / "seq.json"
    settings = _headless_settings(server.address, state)
    sink = _Sink()
    first = GadgetSource(settings)
    task = await _start(first, sink)
    [inst] = await _instances(server.address)
    assert inst.name == "gadgetwatch-trace_exec"
    assert inst.param_dict == first.param_plans["trace_exec"].sent
    await server.instances.release(inst.id, 5)
    await sink.until(lambda n: len(n) >= 5)
    # The agent checkpoints what it processed (the agent does it with its profile flush) ...
    first.seq_state.save(first.checkpoints())
    assert SeqState(state).get(inst.id) == 5
    # ... and dies: events produced meanwhile wait in the instance's ring buffer.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.instances.release(inst.id, 4)
    await server.instances.wait_produced(inst.id, 9)

    second = GadgetSource(settings)
    task = await _start(second, sink)
    await server.instances.release(inst.id, 3)
    await sink.until(lambda n: len(n) >= N)
    await second.stop()
    await task
    assert sink.numbers == list(range(1, N + 1))  # each exactly once, in order
    assert second.stats.replay_skipped["trace_exec"] == 5
    assert not second.stats.lost
    # The same instance was attached again, not recreated; stopping only detached it.
    assert [i.id for i in await _instances(server.address)] == [inst.id]
    assert second.stats.instances_created["trace_exec"] == 0
    assert server.attaches == 2


async def test_a_wrapped_ring_buffer_is_counted_as_lost(sock_path: Path, tmp_path: Path) -> None:
    srv = ReplayServer(_capture(), listen=f"unix://{sock_path}", hold_instances=True)
    await srv.start()
    try:
        settings = _headless_settings(srv.address, tmp_path / "s.json", buffer_length=3)
        sink = _Sink()
        first = GadgetSource(settings)
        task = await _start(first, sink)
        [inst] = await _instances(srv.address)
        await srv.instances.release(inst.id, 2)
        await sink.until(lambda n: len(n) >= 2)
        first.seq_state.save(first.checkpoints())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await srv.instances.release(inst.id, 7)  # seq 3..9; the buffer keeps 7..9
        await srv.instances.wait_produced(inst.id, 9)
        second = GadgetSource(settings)
        task = await _start(second, sink)
        await sink.until(lambda n: len(n) >= 5)
        await second.stop()
        await task
        assert sink.numbers == [1, 2, 7, 8, 9]
        assert second.stats.lost[("trace_exec", LossReason.RING_BUFFER)] == 4
    finally:
        await srv.stop(None)


async def test_changed_params_replace_the_instance(server: ReplayServer, tmp_path: Path) -> None:
    settings = _headless_settings(server.address, tmp_path / "s.json")
    source = GadgetSource(settings)
    task = await _start(source, _Sink())
    await source.stop()
    await task
    [old] = await _instances(server.address)
    changed = settings.model_copy(update={"params": {"operator.oci.ebpf.paths": "false"}})
    source = GadgetSource(changed)
    task = await _start(source, _Sink())
    await source.stop()
    await task
    [new] = await _instances(server.address)
    assert new.id != old.id
    assert new.name == old.name
    assert new.param_dict["operator.oci.ebpf.paths"] == "false"
    assert source.stats.instances_replaced["trace_exec"] == 1


async def test_owning_agent_removes_its_instances_at_stop(
    server: ReplayServer, tmp_path: Path
) -> None:
    settings = _headless_settings(server.address, tmp_path / "s.json", remove_on_stop=True)
    source = GadgetSource(settings)
    task = await _start(source, _Sink())
    assert len(await _instances(server.address)) == 1
    await source.stop()
    await task
    assert await _instances(server.address) == []


async def test_attach_to_a_user_instance_by_name_never_removes_it(
    server: ReplayServer, tmp_path: Path
) -> None:
    channel, inst, _ = _stubs(server.address)
    async with channel:
        gid = (await inst.CreateGadgetInstance(_create(name="users-exec"))).gadgetInstance.id
    await server.instances.release(gid, 4)
    settings = settings_for(server.address, (), attach=("users-exec",))
    settings = settings.model_copy(
        update={"headless": HeadlessSettings(remove_on_stop=True, state_file="")}
    )
    sink = _Sink()
    source = GadgetSource(settings)
    task = await _start(source, sink)
    await sink.until(lambda n: len(n) >= 4)
    await source.stop()
    await task
    assert sink.numbers == [1, 2, 3, 4]
    assert [i.id for i in await _instances(server.address)] == [gid]


async def test_attach_to_a_missing_instance_fails_clearly(server: ReplayServer) -> None:
    settings = settings_for(server.address, (), attach=("nobody",))
    with pytest.raises(SessionError, match="gadget nobody not found"):
        await GadgetSource(settings).run(_Sink())


async def test_headless_needs_ig_0_33(sock_path: Path, tmp_path: Path) -> None:
    srv = ReplayServer(_capture(), listen=f"unix://{sock_path}", server_version="0.32.0")
    await srv.start()
    try:
        settings = _headless_settings(srv.address, tmp_path / "s.json")
        with pytest.raises(SessionError, match=r"needs v0\.33 or newer"):
            await GadgetSource(settings).run(_Sink())
        assert srv.instances.instances == {}
    finally:
        await srv.stop(None)
