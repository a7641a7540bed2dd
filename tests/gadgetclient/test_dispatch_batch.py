"""The native transport's batch dispatch (`GadgetStream._dispatch_batch`) hands payloads on in
runs; whatever a batch holds, the outcome must equal dispatching its events one by one: the same
slots in the same order, the same counters (received, decoded, lost, dropped, logs, timing
samples), the same `last_seq`, and never a `last_seq` ahead of what was handed on."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, cast

import pytest

from gadgetclient.capture import CaptureLine
from gadgetclient.decoding import DataSourceDecoder, GadgetDecoder
from gadgetclient.h2stream import WireEvent
from gadgetclient.layouts import EVENT_GADGET_INFO, EVENT_PAYLOAD, LOG_SHIFT
from gadgetclient.replay import compile_gadget
from gadgetclient.stats import StreamStats
from gadgetclient.streaming import DECODE_SAMPLE_EVERY, GadgetStream
from gadgetclient.wire import gadget_info_to_proto
from tests.gadgetclient.conftest import sample_lines

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")


def _gadget() -> tuple[GadgetDecoder, list[bytes], bytes]:
    lines = []
    for i in range(40):
        data = dict(EXEC)
        data["proc"] = {**data["proc"], "pid": 2000 + i}
        lines.append(CaptureLine("trace_exec", "exec", "", data))
    compiled = compile_gadget("trace_exec", lines, version="0.55.0")
    info = gadget_info_to_proto(compiled.info).SerializeToString()
    return GadgetDecoder(compiled.info), [p.payload for p in compiled.packets], info


class _Recorder:
    """A stream's `on_slots`: every element with the stream's `last_seq` when it arrived."""

    def __init__(self) -> None:
        self.stream: GadgetStream | None = None
        self.got: list[tuple[str, bytes, int]] = []

    def __call__(self, ds: DataSourceDecoder, elements: Sequence[Sequence[bytes]]) -> None:
        assert self.stream is not None
        for slots in elements:
            self.got.append((ds.name, b"|".join(slots), self.stream.last_seq))


def _stream(decoder: GadgetDecoder) -> tuple[GadgetStream, _Recorder]:
    rec = _Recorder()
    stream = GadgetStream(
        cast(Any, None),
        gadget="trace_exec",
        image="trace_exec",
        params={},
        stats=StreamStats(),
        on_records=lambda ds, records: None,
        on_slots=rec,
    )
    stream.decoder = decoder
    rec.stream = stream
    return stream, rec


def _events(rng: random.Random, payloads: list[bytes], info: bytes) -> list[WireEvent]:
    out: list[WireEvent] = []
    seq = 0
    for _ in range(600):
        roll = rng.random()
        if roll < 0.03:
            out.append((3 << LOG_SHIFT, 0, b"lost 7 samples", 0))
        elif roll < 0.05:
            seq += 1
            out.append((EVENT_PAYLOAD, seq, b"\xff\xff\xff", 0))  # does not parse
        elif roll < 0.06:
            seq += 1
            out.append((EVENT_PAYLOAD, seq, payloads[0], 9))  # unknown data source
        elif roll < 0.065:
            out.append((EVENT_GADGET_INFO, 0, info, 0))  # a second GadgetInfo resets seq
            seq = 0
        elif roll < 0.07:
            out.append((77, 0, b"", 0))  # unknown event type
        else:
            seq += rng.choice((1, 1, 1, 1, 2, 5))  # seq gaps: IG dropped payloads
            out.append((EVENT_PAYLOAD, seq, rng.choice(payloads), 0))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_batches_equal_event_by_event_dispatch(seed: int) -> None:
    decoder, payloads, info = _gadget()
    rng = random.Random(seed)
    events = _events(rng, payloads, info)
    batched, got_batched = _stream(decoder)
    single, got_single = _stream(decoder)
    i = 0
    while i < len(events):
        n = rng.choice((1, 2, 3, 17, 64, 200))
        batched._dispatch_batch(events[i : i + n])
        i += n
    for t, seq, payload, ds_id in events:
        single._dispatch(t, seq, payload, ds_id)

    assert [g[:2] for g in got_batched.got] == [g[:2] for g in got_single.got]
    assert len(got_single.got) > 300
    # Never ahead of what was handed on: an element arrives with last_seq at least its own
    # payload's seq, and at most the last seq of the run it came in (the checkpoint contract).
    for (_, _, seen_b), (_, _, seen_s) in zip(got_batched.got, got_single.got, strict=True):
        assert seen_b >= seen_s
    b, s = batched.stats, single.stats
    assert b.received == s.received
    assert b.decoded == s.decoded
    assert b.lost == s.lost
    assert s.lost  # the stream had gaps and "lost N samples" logs
    assert b.dropped == s.dropped
    assert len(s.dropped) >= 2  # undecodable, unknown data source (and event type)
    assert b.log_events == s.log_events
    assert b.repaired == s.repaired
    assert b.decode_seconds.count == s.decode_seconds.count
    # One payload in DECODE_SAMPLE_EVERY is timed (a sampled one that does not parse is not).
    assert s.decode_seconds.count >= len(got_single.got) // DECODE_SAMPLE_EVERY - 2
    assert batched.last_seq == single.last_seq
