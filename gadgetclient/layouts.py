"""IG's data layout (GadgetInfo, data sources, fields, params) as plain frozen Python values.

A RunGadget stream announces its layout once, in a GadgetInfo event; `wire.py` turns that
protobuf into the types below so that nothing outside `wire.py` handles protobuf messages, and
`decoding.py` compiles a decoder from them. The replay server goes the other way: it builds these
types from a capture (`encoding.py`) and `wire.py` serialises them.

Everything here is hashable, so compiled decoders can be cached per layout and shared by the
streams (and reconnects) that see the same layout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: `kind | ARRAY_FLAG` is "array of kind" (IG consts.go `KindFlagArray`).
ARRAY_FLAG = 0x10000000

#: `DataSource.flags` bit 0: numbers are big endian (never set by IG in practice).
DS_FLAG_BIG_ENDIAN = 1

#: `GadgetEvent.type` values (IG consts.go); log events are `severity << LOG_SHIFT`.
EVENT_PAYLOAD = 0
EVENT_GADGET_INFO = 4
LOG_SHIFT = 16

#: Severity names of IG's logrus levels, indexed by level.
SEVERITIES: tuple[str, ...] = ("panic", "fatal", "error", "warning", "info", "debug", "trace")


class Kind(enum.IntEnum):
    """Value kinds of IG fields (api.proto `Kind`)."""

    INVALID = 0
    BOOL = 1
    INT8 = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    UINT8 = 6
    UINT16 = 7
    UINT32 = 8
    UINT64 = 9
    FLOAT32 = 10
    FLOAT64 = 11
    STRING = 12
    CSTRING = 13
    BYTES = 14


class FieldFlag(enum.IntFlag):
    """Field flags (IG pkg/datasource/field.go, bit order by iota)."""

    EMPTY = 0x01
    CONTAINER = 0x02
    HIDDEN = 0x04
    HAS_PARENT = 0x08
    STATIC_MEMBER = 0x10
    UNREFERENCED = 0x20


class DataSourceType(enum.IntEnum):
    UNDEFINED = 0
    SINGLE = 1
    ARRAY = 2


#: Byte size of each fixed-size kind; kinds absent here are variable-length.
#: struct format characters of the fixed-size kinds (shared by the decoder and the replay
#: encoder; Bool is one byte, read back as `== 1` like IG does).
STRUCT_FORMAT: dict[int, str] = {
    Kind.BOOL: "B",
    Kind.INT8: "b",
    Kind.INT16: "h",
    Kind.INT32: "i",
    Kind.INT64: "q",
    Kind.UINT8: "B",
    Kind.UINT16: "H",
    Kind.UINT32: "I",
    Kind.UINT64: "Q",
    Kind.FLOAT32: "f",
    Kind.FLOAT64: "d",
}

FIXED_SIZES: dict[int, int] = {
    Kind.BOOL: 1,
    Kind.INT8: 1,
    Kind.INT16: 2,
    Kind.INT32: 4,
    Kind.INT64: 8,
    Kind.UINT8: 1,
    Kind.UINT16: 2,
    Kind.UINT32: 4,
    Kind.UINT64: 8,
    Kind.FLOAT32: 4,
    Kind.FLOAT64: 8,
}

#: Kinds whose arrays IG's JSON formatter prints (others are left out of `-o json`).
NUMERIC_KINDS = frozenset(FIXED_SIZES) - {Kind.BOOL}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One `api.Field`. `kind` keeps the array flag; `annotations` is sorted (key, value) pairs."""

    name: str
    index: int
    kind: int = Kind.INVALID
    flags: int = 0
    payload_index: int = 0
    offs: int = 0
    size: int = 0
    parent: int = 0
    full_name: str = ""
    tags: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    order: int = 0

    def has(self, flag: FieldFlag) -> bool:
        return bool(self.flags & flag)

    def annotation(self, key: str, default: str = "") -> str:
        for k, v in self.annotations:
            if k == key:
                return v
        return default

    @property
    def json_skip(self) -> bool:
        return self.annotation("json.skip") == "true"


@dataclass(frozen=True, slots=True)
class DataSourceSpec:
    """One `api.DataSource`: id (as used by `GadgetEvent.dataSourceID`), name, type, fields."""

    id: int
    name: str
    type: int
    fields: tuple[FieldSpec, ...]
    flags: int = 0
    tags: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def is_array(self) -> bool:
        return self.type == DataSourceType.ARRAY

    @property
    def big_endian(self) -> bool:
        return bool(self.flags & DS_FLAG_BIG_ENDIAN)

    def annotation(self, key: str, default: str = "") -> str:
        for k, v in self.annotations:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One `api.Param`, reduced to what validation and docs need. `key` is fully qualified."""

    key: str
    default: str = ""
    description: str = ""
    type_hint: str = ""
    alternative_key: str = ""
    possible_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GadgetInfoSpec:
    """One `api.GadgetInfo`: the layout of every data source of one gadget run."""

    name: str
    image_name: str
    data_sources: tuple[DataSourceSpec, ...]
    params: tuple[ParamSpec, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    metadata: bytes = b""
