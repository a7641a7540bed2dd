"""`GadgetSource`: every gadget stream of one target, as one source of typed events.

The composition root creates one source per target and gadget set and awaits `run(on_batch)`;
`stop()` ends it gracefully (stop requests, final flushes read, bounded by `stopTimeout`).

Per endpoint (one for unix/tcp, one per node for `k8s://`) the source opens one `Connection`
and, per gadget, a task that runs `GadgetStream`s:

* GetInfo, version check and image pinning first; `GetGadgetInfo` once per gadget to validate
  user params (a key no gadget declares is an error listing the valid keys);
* a failed stream (an IG pod restarting) is retried with exponential back-off and jitter, from
  `reconnectInitial` doubling to `reconnectMax`; the back-off restarts after a stream that got
  its GadgetInfo. Refusals (`SessionError`: too old, gadget rejected, bad params) are not retried:
  they end the source with that error;
* a stream that ends cleanly without our stop means the gadget finished (a replay ran out, a
  server-side timeout): it is not restarted;
* advise_seccomp reports only when stopped, so it runs in rolling windows: the next run is
  started and has its GadgetInfo (it is tracing) *before* the previous one is stopped, so windows
  overlap instead of leaving gaps; each run's flush becomes `SyscallsEvent`s for its window, and
  the last window is flushed at shutdown.

Records become typed events (`slot_mapping.py` straight from the payload slots, or `mapping.py`
from the decoded dicts when raw records are wanted too), optionally completed from the
`ProcessTable`, and
are handed to `on_batch` in lists of up to `batch_size`, at least every `flush_interval`. Raw
records (for `gadgetwatch record`) go to `on_raw` as `RawRecord`s. Time in events is event time;
the advise_seccomp window bounds come from the latest event time seen (a window opened before
any event starts at the first event time seen; wall clock when none arrives). Events of all
streams are appended to one pending list in arrival order, so a replay server that releases
payloads in capture order (ordered replay) is delivered in that order, never regrouped by stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gadgetclient.config import GadgetClientSettings
from gadgetclient.decoding import DataSourceDecoder, Record
from gadgetclient.errors import GadgetClientError, SessionError, StreamError, TargetError
from gadgetclient.events import Event
from gadgetclient.gadget_params import ParamPlan, plan_params
from gadgetclient.instances import (
    MIN_INSTANCES_VERSION,
    InstanceClient,
    SeqState,
    instance_name,
)
from gadgetclient.mapping import RecordMapper
from gadgetclient.processes import ProcessTable
from gadgetclient.sessions import (
    Connection,
    check_params,
    declared_keys,
    gadget_name,
    pin_image,
)
from gadgetclient.sharding import Shard
from gadgetclient.slot_mapping import Route, SlotMapper
from gadgetclient.stats import DropReason, StreamStats
from gadgetclient.streaming import GadgetStream
from gadgetclient.targets import Endpoint, parse_target, static_endpoints
from gadgetclient.wire import InstanceSpec

log = structlog.get_logger(__name__)

SECCOMP_GADGET = "advise_seccomp"
#: Events per batch handed to `on_batch`: matches the pipeline's default batch size.
DEFAULT_BATCH_SIZE = 256
#: Longest time a partial batch waits (seconds); bounds the latency batching adds.
DEFAULT_FLUSH_INTERVAL = 0.02


def _no_route(slots: Sequence[bytes], node: str) -> tuple[bool, int]:  # pragma: no cover
    raise AssertionError("a placeholder, never called")


#: Marks a layout whose router was not asked for yet.
_NO_ROUTE: Route = _no_route


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One decoded payload as `ig run -o json` prints it (a dict, or a list for Array sources)."""

    gadget: str
    datasource: str
    node: str
    data: Any
    #: The payload's `GadgetEvent.seq` on its run (gaps are IG's losses).
    seq: int = 0


@dataclass(frozen=True, slots=True)
class RawLog:
    """One IG log event of a stream ("lost 12 samples"), for `gadgetwatch record`."""

    gadget: str
    node: str
    severity: str
    message: str


OnBatch = Callable[[Sequence[Event]], None]
OnRaw = Callable[[RawRecord], None]
OnRawLog = Callable[[RawLog], None]


def _stream_key(stream: GadgetStream) -> str:
    """Readiness key of a stream: the gadget and the endpoint it runs on."""
    return f"{stream.gadget}@{stream.connection.where}"


class GadgetSource:
    """All gadget streams of one target. One instance runs once."""

    def __init__(
        self,
        settings: GadgetClientSettings,
        *,
        stats: StreamStats | None = None,
        gadgets: Sequence[str] | None = None,
        endpoints: Sequence[Endpoint] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        rng: random.Random | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        k8s_api_client: Any = None,
        shard: Shard | None = None,
    ) -> None:
        self.settings = settings
        #: With N worker processes: the containers this one keeps (`sharding.py`), and the
        #: router of each data source layout (None: filtered after mapping).
        self.shard = shard
        self._routes: dict[DataSourceDecoder, Route | None] = {}
        self.stats = stats if stats is not None else StreamStats()
        self.gadgets = tuple(gadgets if gadgets is not None else settings.gadgets)
        self._endpoints = list(endpoints) if endpoints is not None else None
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._rng = rng or random.Random()
        self._wall_clock_ns = wall_clock_ns
        #: A `kubernetes.client.ApiClient` for `k8s://` targets (default: in-cluster/kubeconfig).
        self._k8s_api_client = k8s_api_client
        self._mapper = RecordMapper(stats=self.stats)
        self._slot_mapper = SlotMapper(self._mapper)
        self._processes = (
            ProcessTable(settings.process_table_size) if settings.process_table_size else None
        )
        self._stopping = asyncio.Event()
        self._streams: set[GadgetStream] = set()
        self._pending: list[Event] = []
        self._on_batch: OnBatch | None = None
        self._on_raw: OnRaw | None = None
        self._on_checkpoint: Callable[[dict[str, int]], None] | None = None
        self._on_log: OnRawLog | None = None
        self._latest_ns = 0
        self._first_ns = 0
        #: What each gadget is run with (`gadget_params.py`), by short gadget name; filled when
        #: the first endpoint is settled.
        self.param_plans: dict[str, ParamPlan] = {}
        #: Set when every stream has GadgetInfo (all gadgets are tracing) on every endpoint.
        self.ready = asyncio.Event()
        self._ready_count = 0
        self._expected_ready = 0
        #: Streams tracing now, and since when (monotonic) each other stream has been down.
        self._up: dict[str, int] = {}
        self._down_since: dict[str, float] = {}
        #: Clock of the readiness grace period (tests drive it).
        self.monotonic: Callable[[], float] = time.monotonic
        #: Attached instance streams by instance id, and the last seq handed to `on_batch`.
        self._attached: dict[str, GadgetStream] = {}
        self._delivered: dict[str, int] = {}
        uses_instances = settings.headless.enabled or bool(settings.attach)
        #: Last seq handled per instance, as persisted (`instances.py`).
        self.seq_state = SeqState(
            Path(settings.headless.state_file)
            if uses_instances and settings.headless.state_file
            else None
        )
        if settings.attach:
            self.gadgets = ()

    # -- public ------------------------------------------------------------------------------

    async def run(
        self,
        on_batch: OnBatch | None = None,
        on_raw: OnRaw | None = None,
        on_checkpoint: Callable[[dict[str, int]], None] | None = None,
        on_log: OnRawLog | None = None,
    ) -> None:
        """Run every stream until all finished or `stop()` completed.

        `on_raw` gets every payload as `ig run -o json` prints it (with its `seq`), `on_log`
        every IG log event (both for `gadgetwatch record`). `on_checkpoint` gets
        `checkpoints()` right after each batch that moved them (attached instances only), so
        the consumer can tell when those events are processed.

        Raises `GadgetClientError` (one line) when the target is unusable or IG refuses.
        """
        self._on_batch = on_batch
        self._on_raw = on_raw
        self._on_checkpoint = on_checkpoint
        self._on_log = on_log
        spec = parse_target(self.settings.target)
        async with contextlib.AsyncExitStack() as stack:
            if self._endpoints is not None:
                endpoints = self._endpoints
            elif spec.scheme == "k8s":
                from gadgetclient.k8s import port_forwards  # the only kubernetes importer

                endpoints = await stack.enter_async_context(
                    port_forwards(spec, self.settings, api_client=self._k8s_api_client)
                )
            else:
                endpoints = static_endpoints(spec, self.settings)
            flusher = asyncio.create_task(self._flush_loop(), name="gadgetsource-flush")
            try:
                await self._run_endpoints(endpoints)
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                self._flush()

    def degraded_params(self) -> dict[str, dict[str, list[str]]]:
        """Per gadget run without a param gadgetwatch relies on: what is lost (for /readyz)."""
        return {
            name: {
                "unsupported": [p.key for p in plan.unsupported],
                "overridden": [p.key for p in plan.overridden],
                "emptyFields": list(plan.missing_fields),
                "degradedRules": list(plan.degraded_rules),
            }
            for name, plan in sorted(self.param_plans.items())
            if plan.unsupported or plan.overridden
        }

    def checkpoints(self) -> dict[str, int]:
        """Per attached instance id, the seq of the last payload whose events were handed to
        `on_batch`. Persist it (`seq_state.save`) once those events are processed."""
        return dict(self._delivered)

    @property
    def event_clock_ns(self) -> int:
        """The latest event time seen on any stream (0 before the first event), including
        events another worker owns: the event clock of a worker's profiler."""
        return self._latest_ns

    @property
    def first_event_ns(self) -> int:
        """The time of the first event seen on any stream (0 before it)."""
        return self._first_ns

    async def stop(self) -> None:
        """Graceful stop: stop requests to every stream; `run()` returns after the flushes."""
        self._stopping.set()
        for stream in list(self._streams):
            stream.stop()

    # -- endpoints and gadgets ---------------------------------------------------------------

    async def _run_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        attach = self.settings.attach
        self._expected_ready = len(endpoints) * (len(attach) or len(self.gadgets))
        connections = [Connection(ep, self.settings) for ep in endpoints]
        try:
            # Settle every endpoint first so refusals surface before anything runs.
            declared: dict[str, list[str] | None] = {}
            for conn in connections:
                await self._settle(conn, declared, first=conn is connections[0])
            check_params(self.settings.params, declared)
            for gadget in self.gadgets:
                self._plan(gadget, declared.get(gadget))
            async with asyncio.TaskGroup() as tg:
                for conn in connections:
                    for ref in attach:
                        tg.create_task(self._attach_loop(conn, ref), name=f"attach-{ref}")
                    for gadget in self.gadgets:
                        params = self.param_plans[gadget_name(gadget)].sent
                        tg.create_task(
                            self._gadget_loop(conn, gadget, params),
                            name=f"gadget-{gadget}-{conn.where}",
                        )
        except* GadgetClientError as group:
            raise group.exceptions[0] from None
        finally:
            for conn in connections:
                await conn.close()

    def _plan(self, gadget: str, declared: list[str] | None) -> None:
        """Decide a gadget's params; say once what an older server cannot give."""
        name = gadget_name(gadget)
        plan = self.param_plans[name] = plan_params(name, self.settings.params, declared)
        for default in plan.unsupported:
            self.stats.params_unsupported[(name, default.key)] += 1
        if plan.unsupported or plan.overridden:
            log.warning(
                "gadget runs without params gadgetwatch relies on",
                gadget=name,
                unsupported=[p.key for p in plan.unsupported],
                overridden=[p.key for p in plan.overridden],
                empty_fields=list(plan.missing_fields),
                degraded_rules=list(plan.degraded_rules),
            )

    async def _settle(
        self, conn: Connection, declared: dict[str, list[str] | None], *, first: bool
    ) -> None:
        info = await conn.get_info()
        uses_instances = self.settings.headless.enabled or bool(self.settings.attach)
        if uses_instances and info.version_tuple < MIN_INSTANCES_VERSION:
            raise SessionError(
                f"Inspektor Gadget v{info.version} has no headless instances (needs v0.33 or "
                "newer); turn gadgetclient.headless and attach off",
                where=conn.where,
            )
        if not first:
            return
        for gadget in self.gadgets:
            image = pin_image(gadget, info.version)
            ginfo = await conn.gadget_info(image, self.settings.params)
            declared[gadget] = declared_keys(ginfo)

    async def _gadget_loop(self, conn: Connection, gadget: str, params: dict[str, str]) -> None:
        if gadget_name(gadget) == SECCOMP_GADGET:
            await self._seccomp_loop(conn, gadget, params)
            return
        if self.settings.headless.enabled:
            await self._headless_loop(conn, gadget, params)
            return
        delay = self.settings.reconnect_initial.total_seconds()
        while not self._stopping.is_set():
            stream = self._new_stream(conn, gadget, params)
            try:
                await self._run_stream(stream)
                return
            except (StreamError, TargetError) as exc:
                delay = await self._backoff(stream, gadget, exc, delay)

    # -- headless instances ------------------------------------------------------------------

    async def _ensure_instance(
        self, client: InstanceClient, gadget: str, params: dict[str, str]
    ) -> InstanceSpec:
        """Our instance of `gadget`: the existing one when its image and params are the planned
        ones, else (re)created. A replaced instance is logged and counted."""
        name = gadget_name(gadget)
        conn = client.connection
        image = pin_image(gadget, conn.info.version if conn.info else "")
        inst_name = instance_name(self.settings.headless.name_prefix, name)
        for inst in await client.list():
            if inst.name != inst_name:
                continue
            if inst.image == image and inst.param_dict == params:
                log.info("headless instance found", gadget=name, id=inst.id, instance=inst_name)
                return inst
            changed = sorted(
                k
                for k in set(inst.param_dict) | set(params)
                if inst.param_dict.get(k) != params.get(k)
            )
            log.warning(
                "headless instance replaced",
                gadget=name,
                id=inst.id,
                instance=inst_name,
                image=[inst.image, image] if inst.image != image else None,
                changed_params=changed,
            )
            self.stats.instances_replaced[name] += 1
            await client.remove(inst.id)
            self.seq_state.forget(inst.id)
        created = await client.create(
            InstanceSpec(
                id="",
                name=inst_name,
                image=image,
                params=tuple(sorted(params.items())),
                tags=("gadgetwatch",),
            ),
            buffer_length=self.settings.headless.buffer_length,
        )
        self.stats.instances_created[name] += 1
        log.info("headless instance created", gadget=name, id=created.id, instance=inst_name)
        return created

    async def _headless_loop(self, conn: Connection, gadget: str, params: dict[str, str]) -> None:
        client = InstanceClient(conn)
        inst = await self._ensure_instance(client, gadget, params)
        try:
            await self._attached_loop(
                conn, inst, ensure=lambda: self._ensure_instance(client, gadget, params)
            )
        finally:
            if self._stopping.is_set() and self.settings.headless.remove_on_stop:
                try:
                    await client.remove(inst.id)
                    log.info("headless instance removed", gadget=gadget, id=inst.id)
                except GadgetClientError as exc:
                    log.error("headless instance not removed", id=inst.id, error=str(exc))

    async def _attach_loop(self, conn: Connection, ref: str) -> None:
        """Consume an instance someone else owns; never removes it."""
        client = InstanceClient(conn)
        inst = await client.resolve(ref)

        async def again() -> InstanceSpec:
            return await client.get(inst.id)

        await self._attached_loop(conn, inst, ensure=again)

    async def _attached_loop(
        self,
        conn: Connection,
        inst: InstanceSpec,
        *,
        ensure: Callable[[], Any],
    ) -> None:
        """Attach to `inst`, re-attaching with back-off when the stream fails; an instance
        that is gone meanwhile is ensured again (ours: recreated; someone else's: an error)."""
        gadget = gadget_name(inst.image)
        delay = self.settings.reconnect_initial.total_seconds()
        while not self._stopping.is_set():
            skip = max(self.seq_state.get(inst.id), self._delivered.get(inst.id, 0))
            stream = self._new_stream(
                conn, inst.image, inst.param_dict, attach_id=inst.id, skip_through=skip
            )
            self._attached[inst.id] = stream
            try:
                await self._run_stream(stream)
                return
            except (StreamError, TargetError) as exc:
                delay = await self._backoff(stream, gadget, exc, delay)
            except SessionError as exc:
                if "not found" not in str(exc):
                    raise
                log.warning("gadget instance gone", gadget=gadget, id=inst.id)
            finally:
                self._delivered[inst.id] = max(self._delivered.get(inst.id, 0), stream.last_seq)
                self._attached.pop(inst.id, None)
            if self._stopping.is_set():
                return
            try:
                inst = await ensure()
            except (StreamError, TargetError) as exc:
                log.warning("gadget instance not reachable", gadget=gadget, error=str(exc))

    async def _backoff(
        self, stream: GadgetStream, gadget: str, exc: GadgetClientError, delay: float
    ) -> float:
        if stream.started.is_set():
            delay = self.settings.reconnect_initial.total_seconds()
        if self._stopping.is_set():
            return delay
        self.stats.reconnects[gadget_name(gadget)] += 1
        # "Equal jitter": half fixed, half random, so retries of many nodes spread out.
        wait = delay / 2 + self._rng.uniform(0, delay / 2)
        log.warning("gadget stream failed", gadget=gadget, error=str(exc), retry_in_s=wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), wait)
        return min(delay * 2, self.settings.reconnect_max.total_seconds())

    def _new_stream(
        self,
        conn: Connection,
        gadget: str,
        params: dict[str, str],
        on_records: Callable[[DataSourceDecoder, Sequence[Record]], None] | None = None,
        *,
        attach_id: str = "",
        skip_through: int = 0,
    ) -> GadgetStream:
        name = gadget_name(gadget)
        node = conn.endpoint.node
        version = conn.info.version if conn.info else ""

        def deliver(ds: DataSourceDecoder, records: Sequence[Record]) -> None:
            self._deliver(name, node, ds, records, seq=stream.seq)

        def deliver_slots(ds: DataSourceDecoder, elements: Sequence[Sequence[bytes]]) -> None:
            self._deliver_slots(name, node, ds, elements)

        # Typed events straight from the slots unless someone wants the dicts (record mode).
        slots = on_records is None and self._on_raw is None
        on_log = self._on_log

        def deliver_log(severity: str, message: str) -> None:
            if on_log is not None:
                on_log(RawLog(gadget=name, node=node, severity=severity, message=message))

        stream = GadgetStream(
            conn,
            gadget=name,
            image=pin_image(gadget, version),
            params=params,
            stats=self.stats,
            on_records=on_records or deliver,
            log_level=self.settings.log_level,
            on_slots=deliver_slots if slots else None,
            attach_id=attach_id,
            skip_through=skip_through,
            on_log=deliver_log if on_log is not None else None,
        )
        return stream

    async def _run_stream(self, stream: GadgetStream) -> None:
        """Run one stream; once stopped, wait for its flush at most `stopTimeout`."""
        self._streams.add(stream)
        if self._stopping.is_set():
            stream.stop()
        ready_task = asyncio.create_task(self._mark_ready(stream))
        run = asyncio.create_task(stream.run(), name=f"stream-{stream.gadget}")
        try:
            stopping = asyncio.create_task(self._stopping.wait())
            try:
                await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not run.done():
                # stop() already sent the stop request; bound the final flush.
                done, _ = await asyncio.wait({run}, timeout=self._stop_timeout())
                if not done:
                    log.warning("gadget did not stop in time", gadget=stream.gadget)
                    run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        finally:
            ready_task.cancel()
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, GadgetClientError):
                    await run
            self._streams.discard(stream)
            if not self._stopping.is_set():
                self._mark_down(stream)

    def _stop_timeout(self) -> float:
        return self.settings.stop_timeout.total_seconds()

    async def _mark_ready(self, stream: GadgetStream) -> None:
        await stream.started.wait()
        key = _stream_key(stream)
        self._up[key] = self._up.get(key, 0) + 1
        self._down_since.pop(key, None)
        self._ready_count += 1
        if self._ready_count >= self._expected_ready:
            self.ready.set()

    def _mark_down(self, stream: GadgetStream) -> None:
        if not stream.started.is_set():
            # Never traced (a reconnect attempt that failed): down since the last time it was
            # up, or since now if it never was.
            self._down_since.setdefault(_stream_key(stream), self.monotonic())
            return
        key = _stream_key(stream)
        left = self._up.get(key, 0) - 1
        if left > 0:
            self._up[key] = left  # an overlapping advise_seccomp window still traces
            return
        self._up.pop(key, None)
        self._down_since.setdefault(key, self.monotonic())

    @property
    def readiness_grace_s(self) -> float:
        """How long a stream may be down before readiness fails: one reconnect at the longest
        back-off plus its connection attempt, so a normal reconnect never flaps readiness."""
        return (self.settings.reconnect_max + self.settings.connect_timeout).total_seconds()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every expected stream started once and none has been down for longer
        than the grace period; the details name the streams that are down and for how long."""
        now = self.monotonic()
        down = {key: round(now - since, 3) for key, since in sorted(self._down_since.items())}
        grace = self.readiness_grace_s
        details: dict[str, Any] = {
            "streamsUp": len(self._up),
            "streamsExpected": self._expected_ready,
            "down": down,
            "graceSeconds": grace,
        }
        if not self.ready.is_set():
            return False, {**details, "reason": "waiting for every gadget to start tracing"}
        stale = [key for key, seconds in down.items() if seconds > grace]
        if stale:
            return False, {**details, "reason": f"down longer than the grace: {', '.join(stale)}"}
        return True, details

    # -- advise_seccomp windows --------------------------------------------------------------

    async def _seccomp_loop(self, conn: Connection, gadget: str, params: dict[str, str]) -> None:
        window = self.settings.seccomp_window.total_seconds()
        delay = self.settings.reconnect_initial.total_seconds()
        current: tuple[GadgetStream, asyncio.Task[None]] | None = None
        try:
            while True:
                if current is None:
                    current = self._start_window(conn, gadget, params)
                stream, task = current
                stopping = asyncio.create_task(self._stopping.wait())
                try:
                    done, _ = await asyncio.wait(
                        {task, stopping}, timeout=window, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    stopping.cancel()
                if task in done:
                    exc = task.exception()
                    current = None
                    if exc is None:
                        return  # the gadget finished by itself (a replay or server timeout)
                    if isinstance(exc, StreamError | TargetError) and not self._stopping.is_set():
                        delay = await self._backoff(stream, gadget, exc, delay)
                        continue
                    if isinstance(exc, StreamError | TargetError):
                        return
                    raise exc
                if self._stopping.is_set():
                    break
                # Window over: start the next run, wait until it traces, then stop this one.
                nxt = self._start_window(conn, gadget, params)
                started = asyncio.create_task(nxt[0].started.wait())
                await asyncio.wait({started, nxt[1]}, return_when=asyncio.FIRST_COMPLETED)
                started.cancel()
                stream.stop()
                await self._finish(task)
                current = nxt
        finally:
            if current is not None:
                current[0].stop()
                await self._finish(current[1])

    def _start_window(
        self, conn: Connection, gadget: str, params: dict[str, str]
    ) -> tuple[GadgetStream, asyncio.Task[None]]:
        node = conn.endpoint.node
        # A window that starts before any event was seen starts at the first event time seen
        # (a replay's clock is the capture's, not the wall clock), else at the wall clock.
        start_ns = self._latest_ns
        wall_start_ns = self._wall_clock_ns() if not start_ns else 0

        def on_records(ds: DataSourceDecoder, records: Sequence[Record]) -> None:
            begin = start_ns or self._first_ns or wall_start_ns
            window = (begin, self._event_clock())
            self._deliver(SECCOMP_GADGET, node, ds, records, window=window, seq=stream.seq)

        stream = self._new_stream(conn, gadget, params, on_records)
        task = asyncio.create_task(self._run_stream(stream), name=f"seccomp-{conn.where}")
        return stream, task

    async def _finish(self, task: asyncio.Task[None]) -> None:
        try:
            await task
        except (StreamError, TargetError) as exc:
            log.warning("seccomp window ended with an error", error=str(exc))

    # -- delivery ----------------------------------------------------------------------------

    def _event_clock(self) -> int:
        return self._latest_ns or self._wall_clock_ns()

    def _deliver(
        self,
        gadget: str,
        node: str,
        ds: DataSourceDecoder,
        records: Sequence[Record],
        *,
        window: tuple[int, int] | None = None,
        seq: int = 0,
    ) -> None:
        if self._on_raw is not None:
            data = list(records) if ds.is_array else records[0]
            self._on_raw(
                RawRecord(gadget=gadget, datasource=ds.name, node=node, data=data, seq=seq)
            )
        if self._on_batch is None:
            return
        mapper = self._mapper
        pending = self._pending
        shard = self.shard
        name = ds.name
        for record in records:
            try:
                if window is not None:
                    if name != "syscalls":
                        continue
                    event: Event | None = mapper.syscalls_event(
                        record, node=node, window_start_ns=window[0], window_end_ns=window[1]
                    )
                else:
                    event = mapper.map(name, record, node)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.stats.dropped[(gadget, DropReason.UNMAPPABLE)] += 1
                log.error("record unmappable", gadget=gadget, datasource=name, reason=str(exc))
                continue
            if event is None:
                continue
            ts = event.timestamp_ns
            if ts > self._latest_ns and window is None:
                if not self._latest_ns:
                    self._first_ns = ts
                self._latest_ns = ts
            if shard is not None and not shard.owns(event.container):
                self.stats.foreign[gadget] += 1
                continue
            if self._processes is not None:
                event = self._processes.complete(event)
            pending.append(event)
        if len(pending) >= self.batch_size:
            self._flush()

    def _deliver_slots(
        self, gadget: str, node: str, ds: DataSourceDecoder, elements: Sequence[Sequence[bytes]]
    ) -> None:
        """`_deliver` for undecoded elements: `SlotMapper` builds the typed events."""
        if self._on_batch is None:
            return
        to_event = self._slot_mapper.for_decoder(ds)
        pending = self._pending
        processes = self._processes
        shard = self.shard
        foreign = 0
        route = None
        if shard is not None:
            # Another worker's elements are skipped before they are mapped (`sharding.py`).
            route = self._routes.get(ds, _NO_ROUTE)
            if route is _NO_ROUTE:
                route = self._routes[ds] = self._slot_mapper.router(ds, shard.owns)
            if route is not None:
                shard = None  # decided by the route, not again after mapping
        for slots in elements:
            if route is not None:
                try:
                    mine, ts = route(slots, node)
                except (ValueError, TypeError, KeyError, AttributeError, IndexError):
                    mine = True  # mapping it reports the problem
                else:
                    if not mine:
                        foreign += 1
                        if ts > self._latest_ns:
                            if not self._latest_ns:
                                self._first_ns = ts
                            self._latest_ns = ts
                        continue
            try:
                event = to_event(slots, node)
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                self.stats.dropped[(gadget, DropReason.UNMAPPABLE)] += 1
                log.error("record unmappable", gadget=gadget, datasource=ds.name, reason=str(exc))
                continue
            if event is None:
                continue
            ts = event.timestamp_ns
            if ts > self._latest_ns:
                if not self._latest_ns:
                    self._first_ns = ts
                self._latest_ns = ts
            if shard is not None and not shard.owns(event.container):
                foreign += 1
                continue
            if processes is not None:
                event = processes.complete(event)
            pending.append(event)
        if foreign:
            self.stats.foreign[gadget] += foreign
        if len(pending) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._pending and self._on_batch is not None:
            batch, self._pending = self._pending, []
            self._on_batch(batch)
        # Every payload an attached stream handled so far has its events in what was handed on.
        moved = False
        for id_, stream in self._attached.items():
            if stream.last_seq > self._delivered.get(id_, 0):
                self._delivered[id_] = stream.last_seq
                moved = True
        if moved and self._on_checkpoint is not None:
            self._on_checkpoint(dict(self._delivered))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self._flush()


@contextlib.asynccontextmanager
async def running(source: GadgetSource, **kwargs: Any) -> AsyncIterator[asyncio.Task[None]]:
    """Run a source in a task for the duration of a block; stop it gracefully on exit."""
    task = asyncio.create_task(source.run(**kwargs), name="gadgetsource")
    try:
        yield task
    finally:
        await source.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["GadgetSource", "RawLog", "RawRecord", "SessionError", "running"]
