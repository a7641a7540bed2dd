"""One `RunGadget` stream: request stream, event dispatch, decoding and loss accounting.

Data flow per event: `GadgetEvent` -> by type:

* `4` GadgetInfo -> compile (or fetch from cache) the decoders, replacing any previous ones;
* `0` payload -> `seq` gap check -> decoder of `dataSourceID` -> records -> `on_records` (or,
  with `on_slots`, each element's undecoded slots -> `on_slots`, which maps them to typed events
  without building the dict);
* `>= 1<<16` log -> severity `type >> 16`, logged with it; "lost N samples" counted as loss;
* `1`-`3` are never sent by image-based gadgets and are ignored; anything else is counted.

Two transports carry the stream (`GadgetClientSettings.transport`): `native` (`h2stream`, the
default: events come in batches, read straight from the wire) and `grpcio` (protobuf messages
from grpcio's asyncio client). Both feed the same dispatch, and their failures carry the same
gRPC status codes and texts, so everything below behaves the same on either.

The grpcio request stream is an async generator that sends the run request and then *stays
open* (a half-close makes IG cancel the gadget and lose its final flush); `stop()` makes it send
IG's stop request, after which the caller keeps reading until IG ends the stream, which is when
flush-on-stop data (advise_seccomp) arrives. No event can raise out of the loop: bad payloads
are counted in `StreamStats` by reason and logged (rate-limited by the log configuration).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import structlog

from gadgetclient.decoding import DataSourceDecoder, GadgetDecoder, Record
from gadgetclient.errors import SessionError, StreamError, TargetError
from gadgetclient.h2stream import RpcStatusError, WireEvent
from gadgetclient.layouts import EVENT_GADGET_INFO, EVENT_PAYLOAD, LOG_SHIFT, SEVERITIES
from gadgetclient.sessions import Connection, rpc_error_text, translate_rpc_error
from gadgetclient.stats import DropReason, LossReason, StreamStats
from gadgetclient.wire import (
    PayloadError,
    attach_request,
    parse_array,
    parse_gadget_info,
    parse_single,
    run_request,
    stop_request,
)

log = structlog.get_logger(__name__)

#: One payload in 64 is timed for `decode_seconds`: two clock reads per sample cost ~0.1 µs,
#: amortised over 64 payloads, against ~10-30 µs of decoding per payload; 64 still yields
#: thousands of samples a minute at the event rates where the figure matters.
DECODE_SAMPLE_EVERY = 64

#: (datasource name, is_array, records) for each decoded payload event.
OnRecords = Callable[[DataSourceDecoder, Sequence[Record]], None]
#: The same, with each element's slots left undecoded (for `slot_mapping.SlotMapper`).
OnSlots = Callable[[DataSourceDecoder, Sequence[Sequence[bytes]]], None]
#: (severity name, message) of one IG log event.
OnLog = Callable[[str, str], None]

#: The HTTP/2 path of the RunGadget method (IG's `api.GadgetManager`).
RUN_GADGET_PATH = "/api.GadgetManager/RunGadget"
_LOST = re.compile(r"lost (\d+) samples")
_LOG_METHODS = ("critical", "critical", "error", "warning", "info", "debug", "debug")


class _Requests:
    """The request stream: the run request, then (on `stop`) IG's stop request, and then it
    stays open, because IG treats a half-close as a broken connection.

    A class rather than an async generator: grpc cancels the task consuming it when the call
    ends, and a suspended async generator would then be closed from a second task. grpc does not
    cancel that task when the server ended the call first, so `close()` (called once the call is
    over) ends the iteration; otherwise the task would stay pending until the loop closes.
    """

    def __init__(self, first: Any, stop: asyncio.Event) -> None:
        self._first: Any = first
        self._stop = stop
        self._stop_sent = False
        self._closed = asyncio.Event()

    def close(self) -> None:
        self._closed.set()

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Any:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if not self._stop_sent:
            await _first_of(self._stop, self._closed)
            if not self._closed.is_set():
                self._stop_sent = True
                return stop_request()
        await self._closed.wait()  # open until the call is over
        raise StopAsyncIteration


async def _first_of(a: asyncio.Event, b: asyncio.Event) -> None:
    """Wait until either event is set."""
    if a.is_set() or b.is_set():
        return
    waits = {asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class GadgetStream:
    """Runs one gadget on one connection until it ends, fails, or is stopped."""

    def __init__(
        self,
        connection: Connection,
        *,
        gadget: str,
        image: str,
        params: Mapping[str, str],
        stats: StreamStats,
        on_records: OnRecords,
        log_level: int = 4,
        timeout_ns: int = 0,
        on_slots: OnSlots | None = None,
        attach_id: str = "",
        skip_through: int = 0,
        on_log: OnLog | None = None,
    ) -> None:
        self.connection = connection
        #: Attach to this headless instance instead of running the gadget (`instances.py`).
        self.attach_id = attach_id
        #: Attached: payloads with a seq up to this were handled before (a restart): skip them.
        self.skip_through = skip_through
        self._call: Any = None
        self._first_payload = True
        self.gadget = gadget
        self.image = image
        self.params = dict(params)
        self.stats = stats
        self.on_records = on_records
        #: When set, payloads are parsed into slots only and handed here instead of decoded.
        self.on_slots = on_slots
        #: When set, every IG log event is also handed here as (severity name, message).
        self.on_log = on_log
        self.log_level = log_level
        self.timeout_ns = timeout_ns
        self.decoder: GadgetDecoder | None = None
        #: Set once GadgetInfo arrived: the gadget is running on the server.
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._last_seq = 0
        self.stopped_by_us = False
        #: Payloads until the next timed one (the first payload is timed).
        self._until_sample = 1

    @property
    def seq(self) -> int:
        """`seq` of the last payload received on this run (0 before the first)."""
        return self._last_seq

    def stop(self) -> None:
        """Ask IG to stop gracefully; `run()` returns once IG has flushed and ended the stream.

        An attached stream is detached instead: IG does not read control messages after the
        attach request, so the call is cancelled and the instance keeps running."""
        self.stopped_by_us = True
        self._stop.set()
        if self.attach_id and self._call is not None:
            self._call.cancel()

    @property
    def last_seq(self) -> int:
        """The seq of the last payload handled (0 before any)."""
        return self._last_seq

    def _requests(self) -> _Requests:
        if self.attach_id:
            # Never a stop request: only closing the stream detaches.
            return _Requests(attach_request(self.attach_id), asyncio.Event())
        first = run_request(
            image=self.image,
            params=self.params,
            log_level=self.log_level,
            timeout_ns=self.timeout_ns,
        )
        return _Requests(first, self._stop)

    async def run(self) -> None:
        """Read the stream to its end. Raises `SessionError` when IG refuses the gadget before
        it starts, `StreamError`/`TargetError` when the stream fails."""
        where = self.connection.where
        try:
            # Attached streams use the grpcio channel: detaching is cancelling the call, which
            # the native transport (built around IG's stop request) has no use for.
            if self.connection.native and not self.attach_id:
                await self._run_native()
            else:
                await self._run_grpcio()
        except (grpc.aio.AioRpcError, RpcStatusError) as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and self.stopped_by_us:
                return
            if not self.started.is_set():
                raise translate_rpc_error(
                    exc, where=where, what=f"IG rejected gadget {self.image}"
                ) from exc
            raise StreamError(
                f"gadget {self.gadget} stream failed: {rpc_error_text(exc)}", where=where
            ) from exc

    async def _run_grpcio(self) -> None:
        requests = self._requests()
        call = self._call = self.connection.gadgets.RunGadget(requests)
        if self.attach_id and self.stopped_by_us:
            call.cancel()
        try:
            async for ev in call:
                self._dispatch(ev.type, ev.seq, ev.payload, ev.dataSourceID)
        finally:
            call.cancel()
            requests.close()
            # Drop the call: a call kept alive keeps its connection in gRPC's shared subchannel
            # pool, and a later channel to the same address would reuse it.
            self._call = None

    async def _run_native(self) -> None:
        first = run_request(
            image=self.image,
            params=self.params,
            log_level=self.log_level,
            timeout_ns=self.timeout_ns,
        )
        assert self.connection.h2 is not None
        await self.connection.h2.call(
            path=RUN_GADGET_PATH,
            first=first.SerializeToString(),
            on_events=self._dispatch_batch,
            stop=self._stop,
            stop_message=stop_request().SerializeToString(),
        )

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch_batch(self, events: list[WireEvent]) -> None:
        """The native transport's events of one read, in order.

        With `on_slots`, consecutive payloads of one data source are handled as a run: their
        seq accounting and counters are kept in locals, their slots collected, and `on_slots`
        is called once per run instead of once per payload (the per-call and per-counter work
        was about a fifth of the dispatch cost). Everything else (log and info events, a
        payload the timing samples, an unknown data source, an attached stream's first
        payload) ends the run and goes through `_dispatch`/`_payload`, so counts, order and
        what `last_seq` says when the consumer flushes stay what per-payload dispatch gives.
        """
        on_slots = self.on_slots
        if on_slots is None or self.attach_id:
            payload_event = self._payload
            for t, seq, payload, ds_id in events:
                if t == EVENT_PAYLOAD:
                    payload_event(seq, payload, ds_id)
                else:
                    self._dispatch(t, seq, payload, ds_id)
            return
        stats = self.stats
        gadget = self.gadget
        run: list[Sequence[bytes]] = []
        run_ds: DataSourceDecoder | None = None
        payloads = 0
        lost = 0
        last = self._last_seq
        until = self._until_sample
        decoder = self.decoder
        for t, seq, payload, ds_id in events:
            ds = decoder.by_id.get(ds_id) if decoder is not None and t == EVENT_PAYLOAD else None
            if ds is None or until == 1 or (run_ds is not None and ds is not run_ds):
                if payloads:
                    self._hand_run(run_ds, run, payloads, lost, last)
                    run, payloads, lost = [], 0, 0
                self._last_seq = last
                self._until_sample = until
                if t == EVENT_PAYLOAD:
                    self._payload(seq, payload, ds_id)
                else:
                    self._dispatch(t, seq, payload, ds_id)
                last = self._last_seq
                until = self._until_sample
                decoder = self.decoder
                run_ds = None
                continue
            if last and seq > last + 1:
                lost += seq - last - 1
            if seq:
                last = seq
            until -= 1
            payloads += 1
            run_ds = ds
            try:
                if ds.is_array:
                    run.extend(parse_array(payload))
                else:
                    run.append(parse_single(payload))
            except (PayloadError, ValueError, TypeError, IndexError) as exc:
                stats.dropped[(gadget, DropReason.UNDECODABLE)] += 1
                log.error("payload undecodable", gadget=gadget, datasource=ds.name, reason=str(exc))
        self._until_sample = until
        if payloads:
            self._hand_run(run_ds, run, payloads, lost, last)
        else:
            self._last_seq = last

    def _hand_run(
        self,
        ds: DataSourceDecoder | None,
        elements: list[Sequence[bytes]],
        payloads: int,
        lost: int,
        last: int,
    ) -> None:
        """`_dispatch_batch`: account for a run of payloads of `ds` and hand on its slots."""
        assert ds is not None
        assert self.on_slots is not None
        stats = self.stats
        gadget = self.gadget
        if lost:
            stats.lost[(gadget, LossReason.SEQ_GAP)] += lost
        self._last_seq = last
        stats.received[gadget] += payloads
        stats.decoded[gadget] += len(elements)
        if elements:
            repaired = ds.repaired
            self.on_slots(ds, elements)  # decodes (and repairs) while mapping
            if ds.repaired != repaired:
                stats.repaired[(gadget, ds.name)] += ds.repaired - repaired

    def _dispatch(self, t: int, seq: int, payload: bytes, ds_id: int) -> None:
        if t == EVENT_PAYLOAD:
            self._payload(seq, payload, ds_id)
        elif t == EVENT_GADGET_INFO:
            try:
                info = parse_gadget_info(payload)
                self.decoder = GadgetDecoder(info)
            except (PayloadError, ValueError, SyntaxError, RecursionError) as exc:
                self.decoder = None
                log.error("gadget info unusable", gadget=self.gadget, reason=str(exc))
            self._last_seq = self.skip_through if self.attach_id else 0
            self._first_payload = True
            self.started.set()
        elif t >= 1 << LOG_SHIFT:
            self._log(t >> LOG_SHIFT, payload)
        elif t in (1, 2, 3):
            pass  # Result/Done/JobID: only the removed built-in API sent these.
        else:
            self.stats.dropped[(self.gadget, DropReason.UNKNOWN_EVENT_TYPE)] += 1
            log.warning("unknown ig event type", gadget=self.gadget, type=t)

    def _payload(self, seq: int, payload: bytes, ds_id: int) -> None:
        gadget = self.gadget
        stats = self.stats
        if self.attach_id and self._first_payload:
            self._first_payload = False
            if seq and seq <= self.skip_through:
                stats.replay_skipped[gadget] += 1
                self._first_payload = True  # still inside what was handled before
                return
            if self._last_seq and seq > self._last_seq + 1:
                # The instance's ring buffer wrapped while nobody was attached.
                stats.lost[(gadget, LossReason.RING_BUFFER)] += seq - self._last_seq - 1
                self._last_seq = seq - 1
        if self._last_seq and seq > self._last_seq + 1:
            stats.lost[(gadget, LossReason.SEQ_GAP)] += seq - self._last_seq - 1
        if seq:
            self._last_seq = seq
        decoder = self.decoder
        if decoder is None:
            stats.dropped[(gadget, DropReason.BEFORE_GADGETINFO)] += 1
            log.error("payload before gadget info", gadget=gadget)
            return
        ds = decoder.by_id.get(ds_id)
        if ds is None:
            stats.dropped[(gadget, DropReason.UNKNOWN_DATASOURCE)] += 1
            log.error("payload of unknown data source", gadget=gadget, id=ds_id)
            return
        stats.received[gadget] += 1
        repaired = ds.repaired
        on_slots = self.on_slots
        self._until_sample -= 1
        started = 0.0
        if not self._until_sample:
            self._until_sample = DECODE_SAMPLE_EVERY
            started = time.perf_counter()
        try:
            if on_slots is not None:
                elements = ds.elements(payload)
            else:
                records = ds.decode(payload)
        except (PayloadError, ValueError, TypeError, IndexError) as exc:
            stats.dropped[(gadget, DropReason.UNDECODABLE)] += 1
            log.error("payload undecodable", gadget=gadget, datasource=ds.name, reason=str(exc))
            return
        if on_slots is not None:
            count = len(elements)
            stats.decoded[gadget] += count
            on_slots(ds, elements)  # decodes (and repairs) while mapping
        else:
            count = len(records)
            stats.decoded[gadget] += count
            self.on_records(ds, records)
        if started and count:
            # Per event: parse plus decode/mapping into typed events, divided over the
            # payload's elements (an array payload carries many).
            stats.decode_seconds.observe((time.perf_counter() - started) / count)
        if ds.repaired != repaired:
            stats.repaired[(gadget, ds.name)] += ds.repaired - repaired

    def _log(self, severity: int, payload: bytes) -> None:
        name = SEVERITIES[severity] if severity < len(SEVERITIES) else f"level{severity}"
        self.stats.log_events[(self.gadget, name)] += 1
        message = payload.decode("utf-8", "replace")
        m = _LOST.search(message)
        if m:
            self.stats.lost[(self.gadget, LossReason.LOST_SAMPLES)] += int(m[1])
        method = _LOG_METHODS[severity] if severity < len(_LOG_METHODS) else "debug"
        getattr(log, method)("ig log", gadget=self.gadget, severity=name, message=message)
        if self.on_log is not None and severity < len(SEVERITIES):
            self.on_log(name, message)


__all__ = ["GadgetStream", "OnRecords", "OnSlots", "SessionError", "TargetError"]
