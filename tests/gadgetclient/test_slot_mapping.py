"""Typed events straight from slots (`slot_mapping.py`) equal the dict path's, on every layout."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gadgetclient.capture import CaptureLine, read_capture
from gadgetclient.decoding import DataSourceDecoder, GadgetDecoder
from gadgetclient.events import Event
from gadgetclient.mapping import RecordMapper
from gadgetclient.replay import compile_gadget
from gadgetclient.slot_mapping import SlotMapper
from tests.gadgetclient.conftest import sample_lines

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webshop-intrusion.capture.jsonl"


def _both_paths(
    lines: Sequence[CaptureLine],
) -> tuple[list[Event | None], list[Event | None], dict[str, bool]]:
    """Every captured payload, encoded as the replay server does, mapped both ways."""
    by_gadget: dict[str, list[CaptureLine]] = defaultdict(list)
    for line in lines:
        by_gadget[line.gadget].append(line)
    via_dict: list[Event | None] = []
    via_slots: list[Event | None] = []
    direct: dict[str, bool] = {}
    record_mapper = RecordMapper()
    slot_mapper = SlotMapper()
    for gadget, glines in sorted(by_gadget.items()):
        compiled = compile_gadget(gadget, glines, version="0.55.1")
        decoder = GadgetDecoder(compiled.info)
        for packet in compiled.packets:
            ds: DataSourceDecoder = decoder.by_id[packet.ds_id]
            fn = slot_mapper.for_decoder(ds)
            direct[f"{gadget}/{ds.name}/{ds.spec.id}"] = slot_mapper.direct(ds)
            for record in ds.decode(packet.payload):
                via_dict.append(record_mapper.map(ds.name, record, "node-x"))
            for slots in ds.elements(packet.payload):
                via_slots.append(fn(slots, "node-x"))
    return via_dict, via_slots, direct


def test_example_capture_maps_identically_and_directly() -> None:
    via_dict, via_slots, direct = _both_paths(read_capture(EXAMPLE).lines)
    assert via_slots == via_dict
    assert sum(e is not None for e in via_slots) > 2000
    # Every typed data source of the example (IG v0.55 layouts) takes the direct path.
    assert direct == {
        "trace_capabilities/capabilities/0": True,
        "trace_dns/dns/0": True,
        "trace_exec/exec/0": True,
        "trace_open/open/0": True,
        "trace_tcp/tracetcp/0": True,
        "advise_seccomp/syscalls/0": False,
    }


def test_every_ig_sample_maps_identically() -> None:
    via_dict, via_slots, direct = _both_paths(sample_lines())
    assert via_slots == via_dict
    assert any(direct.values())
    # Older layouts (flat pre-v0.35 records, partial samples) fall back to the dict path.
    assert not all(direct.values())


def test_equal_enrichment_yields_the_same_container_object() -> None:
    _, events, _ = _both_paths(read_capture(EXAMPLE).lines)
    by_key: dict[object, set[int]] = defaultdict(set)
    for ev in events:
        if ev is not None:
            by_key[ev.container].add(id(ev.container))
    assert len(by_key) >= 5
    assert all(len(ids) == 1 for ids in by_key.values())
    # Shared across layouts too (exec and open events of one container).
    processes = {id(ev.process) for ev in events if ev is not None}
    assert len(processes) < len([ev for ev in events if ev is not None]) / 2


@pytest.mark.parametrize("cut", [0, 1, 3])
def test_missing_slots_map_like_the_dict_path(cut: int) -> None:
    line = next(x for x in read_capture(EXAMPLE).lines if x.gadget == "trace_open")
    compiled = compile_gadget("trace_open", [line], version="0.55.1")
    ds = GadgetDecoder(compiled.info).by_id[0]
    slots = list(ds.elements(compiled.packets[0].payload)[0])
    short = slots[: len(slots) - cut] if cut else [slots[0][:40], *slots[1:]]
    before = ds.repaired
    expected = RecordMapper().map("open", ds.build(short), "")
    after_dict = ds.repaired
    got = SlotMapper().for_decoder(ds)(short, "")
    assert got == expected
    # The repair is counted once per path (the container miss does not count it again).
    assert ds.repaired - after_dict == after_dict - before == 1


def _example_decoders() -> list[DataSourceDecoder]:
    lines = read_capture(EXAMPLE).lines
    out = []
    for gadget in ("trace_exec", "trace_open", "trace_tcp", "trace_dns"):
        glines = [x for x in lines if x.gadget == gadget][:5]
        out.append(GadgetDecoder(compile_gadget(gadget, glines, version="0.55.1").info).by_id[0])
    return out


DECODERS = _example_decoders()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=3),
    st.lists(st.binary(max_size=40), max_size=30),
)
def test_fuzz_random_slots_map_like_the_dict_path(which: int, slots: list[bytes]) -> None:
    """Garbage slots (wrong lengths, counts, bytes) give the same event on both paths."""
    ds = DECODERS[which]
    expected = RecordMapper().map(ds.name, ds.build(slots), "n")
    assert SlotMapper().for_decoder(ds)(slots, "n") == expected
