"""`ReplayServer`: an IG-compatible gRPC server that plays a capture.

It serves the calls gadgetwatch (and IG's own clients) make — `BuiltInGadgetManager.GetInfo`,
`GadgetManager.GetGadgetInfo`, `GadgetManager.RunGadget` (run or attach) and the
`GadgetInstanceManager` of headless instances (`replay_instances.py`) — over `grpc.aio`, on a
unix socket or TCP (optionally mTLS), so the whole client (sessions, decoder, loss accounting,
record) runs against it exactly as against `ig daemon`.

At start the capture is compiled once per gadget (`encoding.py`): a GadgetInfo whose data sources
are laid out the way IG lays them out (static eBPF container, dynamic enrichment slots, Empty
groups, hidden, Unreferenced and json.skip fields), and every captured payload pre-encoded, so
replay speed is bounded by gRPC, not by encoding. Data source ids follow IG: sorted by name.

A run behaves like IG's: the first control message must be a run request of version 1; unknown
gadgets and bad versions end the call with IG's error texts; a GadgetInfo event comes first, then
payloads with `seq` from 1; a stop request or the run's `timeout` ends the stream with OK.
Captured events keep their timestamps. IG's losses are reproduced where the capture recorded
them: a payload whose captured `seq` jumped (IG's buffer overflowed) is sent with the same jump,
and a captured log event ("lost 12 samples") is sent just before the gadget's next payload (or
at the end of the run), when the run's log level asks for its severity, as IG filters them.

Ordered mode (`ordered=True`, the default): the runs share one `ReplayTimeline`, so the payloads
of all concurrently running gadgets are released in capture order (the capture's line order is
chronological), after a bounded start barrier that waits for a run of every gadget of the
capture; `rate` paces the total payloads per second across runs. Data sources IG flushes only at
stop (advise_seccomp, an Array source with `ebpf.map.flush-on-stop`) are sent at their capture
position, which records when IG delivered each flush (a client that ran rolling windows), and
are consumed once. See `timeline.py`.

Params: a run gets what IG would send with its `paramValues` (`replay_params.py`): without
`paths=true` the path fields are empty, `ignore-failed`, `failed`, the trace_tcp filters and
trace_capabilities' `unique`/`audit-only`/`collect-kstack` filter or empty what IG would. Each
distinct param set is compiled once; a run with the recording's own params uses the packets as
they are. `run_params` keeps every run's params for tests.

Unordered mode: each run replays its gadget as fast as it can (or at `rate` payloads per second
per run), independently of the others; flush-on-stop data is sent at the end of the run — when
the capture is exhausted, at the timeout, or at a stop request. In both modes `hold_flush=True`
keeps a run of a gadget with flush data open until a stop or timeout, like a live gadget, and
flushed packets are consumed: a later run (the next advise_seccomp window) does not get them
again, as IG's map is drained by each flush.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import structlog

from gadgetclient.capture import Capture, CaptureLine, CaptureLog
from gadgetclient.encoding import ShapeLayout, UnrepresentableError, shape_of
from gadgetclient.errors import TargetError
from gadgetclient.layouts import (
    EVENT_GADGET_INFO,
    EVENT_PAYLOAD,
    LOG_SHIFT,
    DataSourceSpec,
    DataSourceType,
    GadgetInfoSpec,
    ParamSpec,
)
from gadgetclient.replay_instances import InstanceRegistry, InstanceServicer, not_found
from gadgetclient.replay_params import effective, recorded, shaping, unavailable
from gadgetclient.sessions import gadget_name
from gadgetclient.timeline import DEFAULT_START_WAIT, DONE, ReplayTimeline
from gadgetclient.wire import encode_array, encode_single, gadget_info_to_proto
from protos import gadget_service_pb2 as pb
from protos import gadget_service_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

DEFAULT_SERVER_VERSION = "0.55.1"
#: Bound on waiting for cancelled RunGadget handlers at stop: grpc's poller thread hands the
#: cancellations to the loop, which takes milliseconds, or a few seconds on a starved machine.
HANDLER_STOP_TIMEOUT_S = 5.0
_INFO_LEVEL = 4

#: Params every replayed gadget declares (IG's common operators), so clients can validate keys.
COMMON_PARAMS: tuple[str, ...] = (
    "operator.KubeManager.namespace",
    "operator.KubeManager.podname",
    "operator.KubeManager.containername",
    "operator.KubeManager.selector",
    "operator.KubeManager.all-namespaces",
    "operator.LocalManager.containername",
    "operator.LocalManager.host",
    "operator.filter.filter",
    "operator.oci.pull",
    "operator.oci.ebpf.pid",
    "operator.oci.ebpf.tid",
    "operator.oci.ebpf.uid",
    "operator.oci.ebpf.gid",
    "operator.oci.ebpf.comm",
)
GADGET_PARAMS: dict[str, tuple[str, ...]] = {
    "trace_exec": ("operator.oci.ebpf.paths", "operator.oci.ebpf.ignore-failed"),
    "trace_open": ("operator.oci.ebpf.paths", "operator.oci.ebpf.failed"),
    "trace_dns": ("operator.oci.ebpf.paths",),
    "trace_tcp": (
        "operator.oci.ebpf.connect-only",
        "operator.oci.ebpf.accept-only",
        "operator.oci.ebpf.failure-only",
    ),
    "trace_capabilities": (
        "operator.oci.ebpf.audit-only",
        "operator.oci.ebpf.unique",
        "operator.oci.ebpf.collect-kstack",
    ),
    "advise_seccomp": ("operator.oci.ebpf.map-fetch-interval",),
}


@dataclass
class _Packet:
    ds_id: int
    payload: bytes
    flush: bool
    #: The capture position (index of the line in the capture): the order across gadgets.
    position: int = 0
    #: Payloads IG lost just before this one (the captured `seq` jump), sent as a `seq` gap.
    gap: int = 0
    #: IG log events captured before this payload: (level, message), sent before it.
    logs: tuple[tuple[int, str], ...] = ()


@dataclass
class ReplayGadget:
    """One gadget of the capture, compiled: its GadgetInfo and pre-encoded payloads."""

    name: str
    info: GadgetInfoSpec
    packets: list[_Packet]
    unrepresentable: int = 0
    flush_cursor: int = 0
    #: indexes (into `packets`) of the flush-on-stop packets, in capture order
    flush_packets: list[int] = field(default_factory=list)
    #: Log events captured after the gadget's last payload: sent at the end of a run.
    trailing_logs: tuple[tuple[int, str], ...] = ()


def compile_gadget(
    name: str,
    lines: Sequence[CaptureLine],
    *,
    version: str,
    positions: Sequence[int] | None = None,
    declared: Sequence[str] | None = None,
    logs: Sequence[CaptureLog] = (),
    gaps: Sequence[int] | None = None,
) -> ReplayGadget:
    """Lay out and pre-encode every captured payload of one gadget.

    `positions` are the lines' capture positions (ascending; default: their indexes in `lines`).
    `declared` are the gadget's own params (default: `GADGET_PARAMS`, IG v0.55's), which the
    GadgetInfo lists after the common operators' ones. `logs` are the gadget's captured log
    events, whose `before` is on the positions' scale; `gaps` the payloads IG lost before each
    line (default: from the lines' `seq`, `_seq_gaps`).
    """
    if positions is None:
        positions = range(len(lines))
    k8s_mode = any(_has_namespace(line.data) for line in lines)
    groups: dict[tuple[str, bool, Any], list[int]] = defaultdict(list)
    unrepresentable = 0
    keys: list[tuple[str, bool, Any] | None] = []
    for i, line in enumerate(lines):
        try:
            if line.is_array:
                shape: Any = tuple(sorted({shape_of(e) for e in line.data}))
                if len(shape) > 1:
                    shape = ("mixed",)
            else:
                shape = shape_of(line.data)
        except UnrepresentableError as exc:
            unrepresentable += 1
            log.warning("capture record not representable", gadget=name, reason=str(exc))
            keys.append(None)
            continue
        key = (line.datasource, line.is_array, shape)
        groups[key].append(i)
        keys.append(key)
    # IG numbers data sources by their position in the name-sorted list.
    ordered = sorted(groups, key=lambda k: (k[0], list(groups).index(k)))
    layouts: dict[tuple[str, bool, Any], tuple[int, ShapeLayout]] = {}
    specs: list[DataSourceSpec] = []
    for ds_id, key in enumerate(ordered):
        ds_name, is_array, _ = key
        records = [lines[i].data for i in groups[key]]
        ds_type = DataSourceType.ARRAY if is_array else DataSourceType.SINGLE
        layout = ShapeLayout(name=ds_name, ds_type=ds_type, records=records, k8s_mode=k8s_mode)
        layouts[key] = (ds_id, layout)
        specs.append(layout.spec(ds_id))
    packets: list[_Packet] = []
    flush_packets: list[int] = []
    if gaps is None:
        gaps = _seq_gaps(lines)
    carried = 0  # the gap of a captured payload that cannot be served moves to the next one
    for line, maybe_key, position, gap in zip(lines, keys, positions, gaps, strict=True):
        carried += gap
        if maybe_key is None:
            continue
        ds_id, layout = layouts[maybe_key]
        try:
            if line.is_array:
                payload = encode_array([layout.encode(e) for e in line.data])
            else:
                payload = encode_single(layout.encode(line.data))
        except (UnrepresentableError, KeyError, ValueError, TypeError) as exc:
            unrepresentable += 1
            log.warning("capture record not representable", gadget=name, reason=str(exc))
            continue
        flush = line.is_array and name == "advise_seccomp"
        if flush:
            flush_packets.append(len(packets))
        packets.append(_Packet(ds_id, payload, flush, position, carried))
        carried = 0
    trailing = _attach_logs(packets, logs)
    own = tuple(declared) if declared is not None else GADGET_PARAMS.get(name, ())
    params = tuple(ParamSpec(key=k) for k in COMMON_PARAMS + own)
    info = GadgetInfoSpec(
        name=name,
        image_name=f"ghcr.io/inspektor-gadget/gadget/{name}:v{version}",
        data_sources=tuple(specs),
        params=params,
    )
    return ReplayGadget(name, info, packets, unrepresentable, 0, flush_packets, trailing)


def _seq_gaps(lines: Sequence[CaptureLine]) -> list[int]:
    """Per line, the payloads IG skipped before it on its stream (a `seq` jump).

    Streams are told apart by node (one RunGadget per node); a `seq` that does not grow starts
    a new run (a reconnect, the next advise_seccomp window), which is no loss. Lines without a
    recorded `seq` (format version 1) never make a gap.
    """
    last: dict[str, int] = {}
    gaps: list[int] = []
    for line in lines:
        seq = line.seq
        previous = last.get(line.node, 0)
        gaps.append(seq - previous - 1 if seq and previous and seq > previous + 1 else 0)
        if seq:
            last[line.node] = seq
    return gaps


def _attach_logs(packets: list[_Packet], logs: Sequence[CaptureLog]) -> tuple[tuple[int, str], ...]:
    """Hang each log event on the first payload captured after it; return those after the last."""
    trailing: list[tuple[int, str]] = []
    pending: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for entry in sorted(logs, key=lambda e: e.before):
        index = bisect.bisect_left(packets, entry.before, key=lambda p: p.position)
        if index < len(packets):
            pending[index].append((entry.level, entry.message))
        else:
            trailing.append((entry.level, entry.message))
    for index, items in pending.items():
        packets[index].logs = tuple(items)
    return tuple(trailing)


def _has_namespace(data: Any) -> bool:
    items = data if isinstance(data, list) else [data]
    for item in items:
        k8s = item.get("k8s") if isinstance(item, dict) else None
        if isinstance(k8s, dict) and k8s.get("namespace"):
            return True
    return False


def _log_event(severity: int, message: str) -> pb.GadgetEvent:
    return pb.GadgetEvent(type=severity << LOG_SHIFT, payload=message.encode())


class _Servicer(pb_grpc.GadgetManagerServicer, pb_grpc.BuiltInGadgetManagerServicer):  # type: ignore[misc]
    def __init__(self, server: ReplayServer) -> None:
        self.server = server

    async def GetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC name)
        return pb.InfoResponse(
            version="1.0", experimental=False, serverVersion=self.server.server_version
        )

    async def GetGadgetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        gadget = self.server.gadget_for(request.imageName)
        if gadget is None:
            await context.abort(
                grpc.StatusCode.UNKNOWN,
                f"fetching gadget information: {request.imageName}: not found",
            )
        assert gadget is not None  # abort() raises
        return pb.GetGadgetInfoResponse(gadgetInfo=gadget_info_to_proto(gadget.info))

    async def RunGadget(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        server = self.server
        task = asyncio.current_task()
        if task is not None:
            server.handlers.add(task)
            task.add_done_callback(server.handlers.discard)
        requests = request_iterator.__aiter__()
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("Event") == "attachRequest":
            async for ev in _attached(server, first.attachRequest, context):
                yield ev
            return
        if first.WhichOneof("Event") != "runRequest":
            await context.abort(
                grpc.StatusCode.UNKNOWN, "expected first control message to be gadget run request"
            )
        run = first.runRequest
        if run.version != 1:
            await context.abort(
                grpc.StatusCode.UNKNOWN, f"expected version to be 1, got {run.version}"
            )
        base = server.gadget_for(run.imageName)
        if base is None:
            await context.abort(
                grpc.StatusCode.UNKNOWN,
                f"instantiating gadget: {run.imageName}: image not found in capture",
            )
        assert base is not None
        server.run_params.append((base.name, dict(run.paramValues)))
        gadget = server.shaped(base, run.paramValues)
        stop = asyncio.Event()
        timeline = server.timeline
        token = object()  # this run, in the timeline

        async def watch_requests() -> None:
            with contextlib.suppress(Exception):
                async for req in requests:
                    if req.WhichOneof("Event") == "stopRequest":
                        break
            stop.set()  # a stop request, or a half-close (IG cancels the gadget then)
            if timeline is not None:
                timeline.leave(token)

        watcher = asyncio.create_task(watch_requests())
        deadline = time.monotonic() + run.timeout / 1e9 if run.timeout > 0 else None
        await server.count_run()
        try:
            if run.logLevel >= _INFO_LEVEL:
                yield _log_event(_INFO_LEVEL, f"replaying {len(gadget.packets)} payloads")
            info = gadget_info_to_proto(gadget.info).SerializeToString()
            yield pb.GadgetEvent(type=EVENT_GADGET_INFO, payload=info)
            if timeline is not None:
                async for ev in _ordered_payloads(
                    server,
                    gadget,
                    timeline,
                    token=token,
                    stop=stop,
                    deadline=deadline,
                    log_level=run.logLevel,
                ):
                    yield ev
            else:
                async for ev in _unordered_payloads(
                    server, gadget, stop=stop, deadline=deadline, log_level=run.logLevel
                ):
                    yield ev
        finally:
            watcher.cancel()
            if timeline is not None:
                timeline.leave(token)


async def _attached(server: ReplayServer, req: Any, context: Any) -> AsyncIterator[Any]:
    """An attach: the instance's GadgetInfo, ring buffer and live payloads
    (`replay_instances.py`). Later control messages are not read, as IG does not read them."""
    if req.version != 1:
        await context.abort(grpc.StatusCode.UNKNOWN, f"expected version to be 1, got {req.version}")
    if req.id not in server.instances.instances:
        await context.abort(grpc.StatusCode.UNKNOWN, not_found(req.id))
    server.attaches += 1
    async for ev in server.instances.attach(req.id):
        yield ev


def _payload_event(seq: int, packet: _Packet) -> pb.GadgetEvent:
    return pb.GadgetEvent(
        type=EVENT_PAYLOAD, seq=seq, payload=packet.payload, dataSourceID=packet.ds_id
    )


def _log_events(logs: Sequence[tuple[int, str]], log_level: int) -> list[pb.GadgetEvent]:
    """IG sends a log event only when its level is within the run's requested `logLevel`."""
    return [_log_event(level, message) for level, message in logs if level <= log_level]


async def _unordered_payloads(
    server: ReplayServer,
    gadget: ReplayGadget,
    *,
    stop: asyncio.Event,
    deadline: float | None,
    log_level: int,
) -> AsyncIterator[pb.GadgetEvent]:
    """The run's own packets as fast as possible (or at `rate`), flush data at the end."""
    seq = 0
    start = time.monotonic()
    sent = 0
    for packet in gadget.packets:
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            break
        if packet.flush:
            continue
        if server.rate:
            due = start + sent / server.rate
            delay = due - time.monotonic()
            if delay > 0 and await _wait(stop, delay, deadline):
                break
        seq += 1 + packet.gap
        sent += 1
        for ev in _log_events(packet.logs, log_level):
            yield ev
        yield _payload_event(seq, packet)
    if server.hold_flush and gadget.flush_packets and not stop.is_set():
        await _hold(stop, deadline)
    # Final flush (flush-on-stop data sources), consumed once per server.
    while gadget.flush_cursor < len(gadget.flush_packets):
        packet = gadget.packets[gadget.flush_packets[gadget.flush_cursor]]
        gadget.flush_cursor += 1
        seq += 1 + packet.gap
        for ev in _log_events(packet.logs, log_level):
            yield ev
        yield _payload_event(seq, packet)
    if not stop.is_set():
        for ev in _log_events(gadget.trailing_logs, log_level):
            yield ev


async def _ordered_payloads(
    server: ReplayServer,
    gadget: ReplayGadget,
    timeline: ReplayTimeline,
    *,
    token: object,
    stop: asyncio.Event,
    deadline: float | None,
    log_level: int,
) -> AsyncIterator[pb.GadgetEvent]:
    """The run's packets from the playhead on, each released in its turn (`timeline.py`)."""
    packets = gadget.packets
    first = bisect.bisect_left(packets, timeline.position, key=lambda p: p.position)
    pending = packets[first].position if first < len(packets) else DONE
    await timeline.join(token, gadget.name, pending)
    seq = 0
    last = len(packets) - 1
    for index in range(first, len(packets)):
        packet = packets[index]
        if stop.is_set():
            return
        if packet.flush and timeline.taken(gadget.name, packet.position):
            continue
        if timeline.grant(token, packet.position):
            # Still this run's turn (consecutive earliest packets): no wait, no task switch.
            if deadline is not None and time.monotonic() >= deadline:
                return
            if timeline.rate is not None:
                delay = timeline.pace_delay()
                if delay > 0 and await _wait(stop, delay, deadline):
                    return
        else:
            try:
                async with asyncio.timeout(_remaining(deadline)):
                    if not await timeline.turn(token, packet.position):
                        return
                    delay = timeline.pace_delay()
                    if delay > 0 and await _wait(stop, delay, None):
                        return
            except TimeoutError:
                return
        if packet.flush and not timeline.take(gadget.name, packet.position):
            continue
        seq += 1 + packet.gap
        # The write starts when we yield; the next packet's run may start its own behind it.
        timeline.pass_on(token, packets[index + 1].position if index < last else DONE)
        for ev in _log_events(packet.logs, log_level):
            yield ev
        yield _payload_event(seq, packet)
    timeline.finish(token)
    if not stop.is_set():
        for ev in _log_events(gadget.trailing_logs, log_level):
            yield ev
    if server.hold_flush and gadget.flush_packets and not stop.is_set():
        await _hold(stop, deadline)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


async def _hold(stop: asyncio.Event, deadline: float | None) -> None:
    """Keep a run open until it is stopped or times out (a live gadget's flush waits for it)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), _remaining(deadline))


def _unlink_stale(path: Path) -> None:
    """A socket file left by a previous server would make the bind fail."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _wait(stop: asyncio.Event, delay: float, deadline: float | None) -> bool:
    """Sleep `delay` (pacing) unless stopped first; True when the run should end."""
    if deadline is not None:
        delay = min(delay, max(0.0, deadline - time.monotonic()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    return stop.is_set() or (deadline is not None and time.monotonic() >= deadline)


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM bytes for an mTLS replay server (like `ig daemon --tls-*`)."""

    key: bytes
    cert: bytes
    client_ca: bytes


class ReplayServer:
    """Serve a capture over IG's gRPC API. `await start()` returns the address to dial."""

    def __init__(
        self,
        capture: Capture,
        *,
        listen: str,
        rate: float | None = None,
        server_version: str = DEFAULT_SERVER_VERSION,
        hold_flush: bool = False,
        tls: ServerTls | None = None,
        ordered: bool = True,
        start_wait: float = DEFAULT_START_WAIT,
        gadget_params: Mapping[str, Sequence[str]] | None = None,
        hold_instances: bool = False,
    ) -> None:
        """`gadget_params` replaces the params some gadgets declare (`GADGET_PARAMS`), to play
        an older IG whose gadgets lack some. `hold_instances` makes headless instances produce
        only what `instances.release()` lets through (`replay_instances.py`)."""
        self.listen = listen
        self.rate = rate if rate and rate > 0 else None
        self.server_version = server_version
        self.hold_flush = hold_flush
        self.tls = tls
        self.runs = 0
        #: The tasks running RunGadget handlers (grpc's per-call tasks), until they end.
        self.handlers: set[asyncio.Task[Any]] = set()
        #: Every run request's (gadget, paramValues), in arrival order (for tests and tooling).
        self.run_params: list[tuple[str, dict[str, str]]] = []
        self._runs_changed: asyncio.Condition | None = None
        by_gadget: dict[str, list[CaptureLine]] = defaultdict(list)
        positions: dict[str, list[int]] = defaultdict(list)
        logs: dict[str, list[CaptureLog]] = defaultdict(list)
        for position, line in enumerate(capture.lines):
            by_gadget[line.gadget].append(line)
            positions[line.gadget].append(position)
        for entry in capture.logs:
            logs[entry.gadget].append(entry)
            by_gadget.setdefault(entry.gadget, [])  # a gadget that only lost events still runs
        self._declared = dict(gadget_params or {})
        self.gadgets = {
            g: compile_gadget(
                g,
                lines,
                version=server_version.lstrip("v"),
                positions=positions[g],
                declared=self._declared.get(g),
                logs=logs[g],
            )
            for g, lines in by_gadget.items()
        }
        self._lines = dict(by_gadget)
        self._positions = dict(positions)
        self._logs = dict(logs)
        self._gaps = {g: _seq_gaps(lines) for g, lines in by_gadget.items()}
        self._header = capture.header
        #: Gadgets compiled for a run's params (`replay_params.py`), by (gadget, params).
        self._shaped: dict[tuple[str, tuple[tuple[str, str], ...]], ReplayGadget] = {}
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        #: The shared clock of ordered mode (None: every run replays on its own).
        self.timeline = (
            ReplayTimeline(self.gadgets, start_wait=start_wait, rate=self.rate) if ordered else None
        )
        self._server: grpc.aio.Server | None = None
        self.address = ""
        #: Headless instances (`GadgetInstanceManager`) and the number of attach calls served.
        self.instances = InstanceRegistry(self, hold=hold_instances)
        self.attaches = 0

    async def count_run(self) -> None:
        self.runs += 1
        if self._runs_changed is None:
            self._runs_changed = asyncio.Condition()
        async with self._runs_changed:
            self._runs_changed.notify_all()

    async def wait_runs(self, n: int) -> None:
        """Wait until `n` RunGadget calls have started (for tests and tooling)."""
        if self._runs_changed is None:
            self._runs_changed = asyncio.Condition()
        async with self._runs_changed:
            await self._runs_changed.wait_for(lambda: self.runs >= n)

    def gadget_for(self, image: str) -> ReplayGadget | None:
        return self.gadgets.get(gadget_name(image))

    def shaped(self, gadget: ReplayGadget, param_values: Mapping[str, str]) -> ReplayGadget:
        """`gadget` as a run with these params gets it from IG (`replay_params.py`).

        Runs with the recording's own params share the pre-encoded packets; other param sets
        are compiled once and cached. When nothing in the capture changes (no failed exec to
        filter, no path to empty) the recording's packets are used as they are.
        """
        name = gadget.name
        want = effective(name, param_values)
        have = recorded(name, self._header)
        missing = tuple(unavailable(name, want, have))
        if missing and (name, missing) not in self._warned:
            self._warned.add((name, missing))
            log.warning(
                "replay params differ from the recording",
                gadget=name,
                params=[f"operator.oci.ebpf.{k}={want[k]}" for k in missing],
                recorded=[f"operator.oci.ebpf.{k}={have[k]}" for k in missing],
                consequence="the capture lacks that data; replaying what it has",
            )
        shape = shaping(name, want, have)
        if shape.identity:
            return gadget
        key = (name, tuple(sorted(want.items())))
        found = self._shaped.get(key)
        if found is not None:
            return found
        lines: list[CaptureLine] = []
        positions: list[int] = []
        gaps: list[int] = []
        carried = 0  # IG never numbered what the run's params filter out: no gap for those
        changed = False
        originals = zip(self._lines[name], self._positions[name], self._gaps[name], strict=True)
        for line, position, gap in originals:
            if line.is_array:
                data: Any = [d for d in map(shape.apply, line.data) if d is not None]
            else:
                data = shape.apply(line.data)
            if data is None or (line.is_array and not data):
                changed = True
                carried += gap
                continue
            gaps.append(gap + carried)
            carried = 0
            if line.is_array:
                changed = changed or any(a is not b for a, b in zip(data, line.data, strict=False))
                changed = changed or len(data) != len(line.data)
            else:
                changed = changed or data is not line.data
            lines.append(line if data is line.data else replace(line, data=data))
            positions.append(position)
        found = (
            compile_gadget(
                name,
                lines,
                version=self.server_version.lstrip("v"),
                positions=positions,
                declared=self._declared.get(name),
                logs=self._logs.get(name, ()),
                gaps=gaps,
            )
            if changed
            else gadget
        )
        self._shaped[key] = found
        return found

    @property
    def unrepresentable(self) -> int:
        return sum(g.unrepresentable for g in self.gadgets.values())

    async def start(self) -> str:
        """Bind and serve; returns `unix:///path` or `tcp://host:port` (the real port)."""
        server = grpc.aio.server(options=[("grpc.max_send_message_length", -1)])
        servicer = _Servicer(self)
        pb_grpc.add_GadgetManagerServicer_to_server(servicer, server)
        pb_grpc.add_BuiltInGadgetManagerServicer_to_server(servicer, server)
        pb_grpc.add_GadgetInstanceManagerServicer_to_server(
            InstanceServicer(self.instances), server
        )
        scheme, _, rest = self.listen.partition("://")
        if scheme == "unix":
            await asyncio.to_thread(_unlink_stale, Path(rest))
            bind = f"unix:{rest}"
        elif scheme == "tcp":
            bind = rest
        else:
            raise TargetError("listen on unix:///PATH or tcp://HOST:PORT", where=self.listen)
        try:
            if self.tls is not None:
                creds = grpc.ssl_server_credentials(
                    [(self.tls.key, self.tls.cert)],
                    root_certificates=self.tls.client_ca,
                    require_client_auth=True,
                )
                port = server.add_secure_port(bind, creds)
            else:
                port = server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise TargetError(f"cannot listen: {exc}", where=self.listen) from exc
        await server.start()
        self._server = server
        if scheme == "unix":
            self.address = f"unix://{rest}"
        else:
            host = rest.rsplit(":", 1)[0]
            self.address = f"tcp://{host}:{port}"
        return self.address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; returns when every RunGadget handler has ended (bounded), so a caller
        that stops the server leaves no task of it behind, however loaded the machine is."""
        await self.instances.close()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        pending = [t for t in self.handlers if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=HANDLER_STOP_TIMEOUT_S)

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


__all__ = ["ReplayServer", "ServerTls", "compile_gadget"]
