"""Layout rules of the generic decoder, on hand-built GadgetInfo layouts, plus fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gadgetclient.decoding import DataSourceDecoder, GadgetDecoder
from gadgetclient.layouts import (
    ARRAY_FLAG,
    DataSourceSpec,
    DataSourceType,
    FieldFlag,
    FieldSpec,
    GadgetInfoSpec,
    Kind,
)
from gadgetclient.wire import (
    PayloadError,
    encode_array,
    encode_single,
    gadget_info_to_proto,
    parse_gadget_info,
)

S = FieldFlag.STATIC_MEMBER
P = FieldFlag.HAS_PARENT


def _f(index: int, name: str, kind: int, **kw: object) -> FieldSpec:
    return FieldSpec(name=name, index=index, kind=kind, **kw)  # type: ignore[arg-type]


# trace_signal's layout from the protocol notes (§2.8), plus dynamic enrichment.
SIGNAL_FIELDS = (
    _f(0, "timestamp_raw", Kind.UINT64, flags=S, offs=0, size=8),
    _f(1, "proc", Kind.BYTES, flags=S | FieldFlag.HIDDEN, offs=8, size=64),
    _f(2, "comm", Kind.CSTRING, flags=S | P, parent=1, offs=8, size=16),
    _f(3, "pid", Kind.UINT32, flags=S | P, parent=1, offs=24, size=4),
    _f(4, "tid", Kind.UINT32, flags=S | P, parent=1, offs=28, size=4),
    _f(5, "mntns_id", Kind.UINT64, flags=S | P | FieldFlag.HIDDEN, parent=1, offs=32, size=8),
    _f(6, "creds", Kind.BYTES, flags=S | P, parent=1, offs=40, size=8),
    _f(7, "uid", Kind.UINT32, flags=S | P, parent=6, offs=40, size=4),
    _f(8, "gid", Kind.UINT32, flags=S | P, parent=6, offs=44, size=4),
    _f(9, "parent", Kind.BYTES, flags=S | P, parent=1, offs=48, size=24),
    _f(10, "comm", Kind.CSTRING, flags=S | P, parent=9, offs=48, size=16),
    _f(11, "pid", Kind.UINT32, flags=S | P, parent=9, offs=64, size=4),
    _f(12, "tpid", Kind.UINT32, flags=S, offs=72, size=4),
    _f(13, "sig_raw", Kind.UINT32, flags=S | FieldFlag.HIDDEN, offs=76, size=4),
    _f(14, "error_raw", Kind.INT32, flags=S | FieldFlag.UNREFERENCED, offs=80, size=4),
    _f(15, "k8s", Kind.INVALID, flags=FieldFlag.EMPTY),
    _f(16, "namespace", Kind.STRING, flags=P, parent=15, payload_index=1),
    _f(17, "owner", Kind.INVALID, flags=P | FieldFlag.EMPTY, parent=15),
    _f(18, "kind", Kind.STRING, flags=P | FieldFlag.HIDDEN, parent=17, payload_index=2),
    _f(19, "sig", Kind.STRING, payload_index=3),
    _f(20, "timestamp", Kind.STRING, payload_index=4),
    _f(21, "debug", Kind.STRING, payload_index=5, annotations=(("json.skip", "true"),)),
    _f(22, "hostnetwork", Kind.BOOL, flags=P | FieldFlag.HIDDEN, parent=15, payload_index=6),
    _f(23, "containerPid", Kind.INT64, payload_index=7),
)


def _signal_container() -> bytes:
    buf = bytearray(88)
    struct.pack_into("<Q", buf, 0, 1_700_000_000_123_456_789)
    buf[8:12] = b"bash"
    struct.pack_into("<II", buf, 24, 42, 43)
    struct.pack_into("<Q", buf, 32, 4026531840)
    struct.pack_into("<II", buf, 40, 1000, 1001)
    buf[48:58] = b"containerd"
    struct.pack_into("<I", buf, 64, 1)
    struct.pack_into("<IIi", buf, 72, 77, 15, -2)
    return bytes(buf)


SIGNAL_SLOTS = [
    _signal_container(),
    b"shop",
    b"ReplicaSet",
    b"SIGTERM",
    b"2024-01-01T00:00:00.000000000Z",
    b"not printed",
    b"\x01",
    struct.pack("<q", -5),
]

SIGNAL_EXPECTED = {
    "containerPid": -5,
    "k8s": {"hostnetwork": True, "namespace": "shop", "owner": {"kind": "ReplicaSet"}},
    "proc": {
        "comm": "bash",
        "creds": {"gid": 1001, "uid": 1000},
        "mntns_id": 4026531840,
        "parent": {"comm": "containerd", "pid": 1},
        "pid": 42,
        "tid": 43,
    },
    "sig": "SIGTERM",
    "sig_raw": 15,
    "timestamp": "2024-01-01T00:00:00.000000000Z",
    "timestamp_raw": 1_700_000_000_123_456_789,
    "tpid": 77,
}


def _decoder(fields: tuple[FieldSpec, ...], **kw: object) -> DataSourceDecoder:
    return DataSourceDecoder(
        DataSourceSpec(id=0, name="signal", type=DataSourceType.SINGLE, fields=fields, **kw)  # type: ignore[arg-type]
    )


def _keys_sorted(obj: object) -> bool:
    if isinstance(obj, dict):
        keys = [k.encode() for k in obj]
        return keys == sorted(keys) and all(_keys_sorted(v) for v in obj.values())
    return True


def test_static_container_dynamic_slots_flags_and_nesting() -> None:
    dec = _decoder(SIGNAL_FIELDS)
    record = dec.decode(encode_single(SIGNAL_SLOTS))[0]
    assert record == SIGNAL_EXPECTED
    assert _keys_sorted(record)
    # Hidden fields are printed, Unreferenced (error_raw) and json.skip (debug) are not.
    assert "error_raw" not in record
    assert "debug" not in record
    assert dec.repaired == 0


def test_the_layout_survives_a_gadget_info_round_trip() -> None:
    info = GadgetInfoSpec(
        name="trace_signal",
        image_name="trace_signal:v0.55.1",
        data_sources=(DataSourceSpec(3, "signal", DataSourceType.SINGLE, SIGNAL_FIELDS),),
    )
    back = parse_gadget_info(gadget_info_to_proto(info).SerializeToString())
    assert back.data_sources == info.data_sources
    dec = GadgetDecoder(back).get(3)
    assert dec is not None
    assert dec.decode(encode_single(SIGNAL_SLOTS)) == [SIGNAL_EXPECTED]


def test_missing_slots_and_short_container_read_as_zero_and_are_counted() -> None:
    dec = _decoder(SIGNAL_FIELDS)
    record = dec.decode_slots([SIGNAL_SLOTS[0][:30], b"shop"])
    assert record["proc"]["pid"] == 42  # inside the 30 bytes kept
    assert record["tpid"] == 0
    assert record["proc"]["creds"] == {"gid": 0, "uid": 0}
    assert record["sig"] == ""
    assert record["containerPid"] == 0
    assert record["k8s"]["hostnetwork"] is False
    assert dec.repaired == 2  # one short container, one element with missing slots


def test_fixed_size_length_mismatch_is_zero_and_extra_slots_are_ignored() -> None:
    dec = _decoder(SIGNAL_FIELDS)
    slots = list(SIGNAL_SLOTS)
    slots[7] = b"\x01\x02\x03"  # an Int64 slot of 3 bytes
    slots[6] = b"\x02"  # Bool compares with 1 exactly
    record = dec.decode_slots([*slots, b"from a newer server"])
    assert record["containerPid"] == 0
    assert record["k8s"]["hostnetwork"] is False


def test_kinds_arrays_bytes_floats_and_big_endian() -> None:
    fields = (
        _f(0, "b", Kind.BYTES, payload_index=0),
        _f(1, "f32", Kind.FLOAT32, payload_index=1),
        _f(2, "f64", Kind.FLOAT64, payload_index=2),
        _f(3, "u16s", Kind.UINT16 | ARRAY_FLAG, payload_index=3),
        _f(4, "u8s", Kind.UINT8 | ARRAY_FLAG, flags=S, offs=0, size=4, payload_index=4),
        _f(5, "bools", Kind.BOOL | ARRAY_FLAG, payload_index=5),
        _f(6, "i8", Kind.INT8, flags=S, offs=4, size=1, payload_index=4),
        _f(7, "bad", Kind.UINT32 | ARRAY_FLAG, payload_index=6),
        _f(8, "inv", Kind.INVALID, payload_index=7),
        _f(9, "empty_leaf", Kind.INVALID, flags=FieldFlag.EMPTY),
        _f(10, "u32", Kind.UINT32, payload_index=8),
    )
    dec = _decoder(fields, flags=1)  # big endian
    record = dec.decode_slots(
        [
            b"\xde\xad",
            struct.pack(">f", 1.5),
            struct.pack(">d", -2.25),
            struct.pack(">3H", 1, 2, 513),
            b"\x00\x01\x00\x07\xff",
            b"\x01\x00",
            b"\x01\x02\x03",
            b"\xab",
            struct.pack(">I", 7),
        ]
    )
    assert record == {
        "b": "dead",
        "f32": 1.5,
        "f64": -2.25,
        "u16s": [1, 2, 513],
        "u8s": [0, 1, 0, 7],
        "i8": -1,
        "bad": [],
        "inv": "ab",
        "empty_leaf": "",
        "u32": 7,
    }


def test_union_members_overlap() -> None:
    fields = (
        _f(0, "as_u32", Kind.UINT32, flags=S, offs=0, size=4),
        _f(1, "as_u16", Kind.UINT16, flags=S, offs=0, size=2),
        _f(2, "name", Kind.CSTRING, flags=S, offs=2, size=2),
    )
    record = _decoder(fields).decode_slots([struct.pack("<I", 0x00414243)])
    assert record == {"as_u16": 0x4243, "as_u32": 0x00414243, "name": "A"}


def test_group_whose_members_are_all_unprinted_prints_empty_object() -> None:
    fields = (
        _f(0, "owner", Kind.INVALID, flags=FieldFlag.EMPTY),
        _f(1, "x", Kind.STRING, flags=P | FieldFlag.UNREFERENCED, parent=0, payload_index=0),
    )
    assert _decoder(fields).decode_slots([b"a"]) == {"owner": {}}


def test_array_data_source_decodes_every_element() -> None:
    fields = (
        _f(0, "mntns_id_raw", Kind.UINT64, flags=S, offs=0, size=8, payload_index=0),
        _f(1, "syscalls", Kind.UINT8 | ARRAY_FLAG, flags=S, offs=0, size=3, payload_index=1),
        _f(2, "k8s", Kind.INVALID, flags=FieldFlag.EMPTY),
        _f(3, "podName", Kind.STRING, flags=P, parent=2, payload_index=2),
    )
    spec = DataSourceSpec(0, "syscalls", DataSourceType.ARRAY, fields)
    dec = DataSourceDecoder(spec)
    payload = encode_array(
        [
            [struct.pack("<Q", 1), b"\x01\x00\x01", b"a"],
            [struct.pack("<Q", 2), b"\x00\x00\x01", b"b"],
        ]
    )
    assert dec.decode(payload) == [
        {"k8s": {"podName": "a"}, "mntns_id_raw": 1, "syscalls": [1, 0, 1]},
        {"k8s": {"podName": "b"}, "mntns_id_raw": 2, "syscalls": [0, 0, 1]},
    ]
    assert dec.decode(encode_array([])) == []


def test_hostile_layouts_compile_safely() -> None:
    fields = (
        _f(0, "a'); import os; os.exit(1) #", Kind.STRING, payload_index=0),
        _f(1, "cycle", Kind.INVALID, flags=P | FieldFlag.EMPTY, parent=2),
        _f(2, "loop", Kind.INVALID, flags=P | FieldFlag.EMPTY, parent=1),
        _f(3, "self", Kind.UINT32, flags=P, parent=3, payload_index=1),
    )
    record = _decoder(fields).decode_slots([b"x", struct.pack("<I", 9)])
    assert record["a'); import os; os.exit(1) #"] == "x"
    assert record["self"] == 9


def test_corrupt_protobuf_raises_payload_error() -> None:
    dec = _decoder(SIGNAL_FIELDS)
    with pytest.raises(PayloadError):
        dec.decode(b"\x1a\xff\xff\xff\xff\x0f")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_payloads_never_escape(payload: bytes) -> None:
    dec = _decoder(SIGNAL_FIELDS)
    try:
        records = dec.decode(payload)
    except PayloadError:
        return
    assert len(records) == 1
    assert set(records[0]) == set(SIGNAL_EXPECTED)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.lists(st.binary(max_size=12), max_size=10))
def test_fuzz_truncated_payloads_and_slots(cut: int, slots: list[bytes]) -> None:
    dec = _decoder(SIGNAL_FIELDS)
    full = encode_single(SIGNAL_SLOTS)
    for payload in (full[:cut], encode_single(slots)):
        try:
            records = dec.decode(payload)
        except PayloadError:
            continue
        assert set(records[0]) == set(SIGNAL_EXPECTED)
