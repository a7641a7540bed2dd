"""The generic decoder: IG payload slots -> the dict `ig run <gadget> -o json` prints.

Data flow: a stream's GadgetInfo (`layouts.GadgetInfoSpec`) -> `GadgetDecoder` -> one compiled
`DataSourceDecoder` per data source id. A payload event's bytes are parsed into slots
(`wire.parse_single` / `parse_array`) and each element's slots go through one generated function.

Compilation, done once per layout (and cached, so reconnects and nodes with the same gadget
version share it):

* Static members (`size > 0`) of one slot are packed into a single `struct.Struct` with pad bytes
  between them, so one `unpack_from` call reads the whole eBPF container (e.g. trace_exec's
  ~7 KB struct) into a tuple. Overlapping members (unions) fall back to slicing.
* Dynamic fields (`size == 0`, one slot each) are read from pre-resolved slot locals.
* The nested, byte-wise key-sorted dict is emitted as one Python dict literal; the generated source
  is compiled with `compile()`. Field names enter the source only through `repr()`, so a hostile
  GadgetInfo cannot inject code.

Rules (IG pkg/datasource accessors and the JSON formatter, with `showAll`):
Empty fields carry no value (a leaf prints ""), Unreferenced and `json.skip` fields are left out
with their subtree, hidden fields are included, a field with sub-fields prints as an object of its
printed children (`{}` when none), numbers are read in the data source's byte order, a fixed-size
value whose length does not match reads as its zero value, CString stops at the first NUL,
Bytes/Invalid print as lowercase hex, arrays of numeric kinds print as lists and other arrays are
left out. A missing slot reads as empty and a short container is zero-padded; both are counted in
`repaired` so the session can report them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gadgetclient.layouts import (
    ARRAY_FLAG,
    FIXED_SIZES,
    NUMERIC_KINDS,
    STRUCT_FORMAT,
    DataSourceSpec,
    FieldFlag,
    FieldSpec,
    GadgetInfoSpec,
    Kind,
)
from gadgetclient.wire import PayloadError, parse_array, parse_single

Record = dict[str, Any]
#: A key path into a record, e.g. ("proc", "creds", "uid").
Path = tuple[str, ...]


class _Irregular:
    """Marks a path where the record would not have the shape an extractor expects."""


IRREGULAR = _Irregular()


@dataclass(frozen=True, slots=True)
class ExtractorSpec:
    """What a typed mapper reads from a record, by key path (see `DataSourceDecoder.extractor`).

    The compiled extractor returns `(key, *values, *groups)`: `key` is a tuple with one item per
    `key_paths` entry (a dynamic string field as its raw slot bytes, so equal enrichment gives
    an equal key without decoding), `values` what `record[...]` would hold at each of
    `value_paths` (None where the record has no such key), and `groups` whether the record has
    a non-empty object at each of `group_paths`.
    """

    key_paths: tuple[Path, ...]
    value_paths: tuple[Path, ...]
    group_paths: tuple[Path, ...] = ()
    #: Value paths the layout must print (else no extractor: the layout is an older shape).
    required_paths: tuple[Path, ...] = ()


_SIGNED = frozenset({Kind.INT8, Kind.INT16, Kind.INT32, Kind.INT64})

#: Upper bound on static container sizes we compile into a struct format (1 MiB). IG's largest
#: eBPF structs are a few KiB; a bigger claim is treated as a slice-decoded field instead.
_MAX_STRUCT = 1 << 20


def _array_reader(elem: int, order: str) -> Callable[[bytes], list[Any]]:
    """A reader for `ArrayOf(elem)`: list of numbers, [] when the length is not a multiple."""
    size = FIXED_SIZES[elem]
    code = STRUCT_FORMAT[elem]
    if elem == Kind.UINT8:
        return lambda raw: list(raw)
    cache: dict[int, struct.Struct] = {}

    def read(raw: bytes) -> list[Any]:
        n, rest = divmod(len(raw), size)
        if rest:
            return []
        s = cache.get(n)
        if s is None:
            s = cache[n] = struct.Struct(f"{order}{n}{code}")
        return list(s.unpack(raw))

    return read


def _float_reader(kind: int, order: str) -> Callable[[bytes], float]:
    s = struct.Struct(order + STRUCT_FORMAT[kind])

    def read(raw: bytes) -> float:
        return float(s.unpack(raw)[0]) if len(raw) == s.size else 0.0

    return read


class _Emitter:
    """Builds the generated source for one data source."""

    def __init__(self, ds: DataSourceSpec) -> None:
        self.ds = ds
        self.order = ">" if ds.big_endian else "<"
        self.byteorder = "big" if ds.big_endian else "little"
        self.namespace: dict[str, Any] = {}
        self.prelude: list[str] = []
        self.by_index = {f.index: f for f in ds.fields}
        self.children: dict[int, list[FieldSpec]] = {}
        roots: list[FieldSpec] = []
        for f in ds.fields:
            if f.has(FieldFlag.HAS_PARENT) and f.parent in self.by_index and f.parent != f.index:
                self.children.setdefault(f.parent, []).append(f)
            else:
                roots.append(f)
        self.roots = roots
        self.static_expr: dict[int, str] = {}
        self.nslots = 0

    # -- value expressions -------------------------------------------------------------------

    def _name(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def _value(self, f: FieldSpec, raw: str, *, exact_len: bool) -> str | None:
        """Expression decoding `raw` (bytes) per kind; None when the field prints nothing."""
        kind = f.kind
        if kind & ARRAY_FLAG:
            elem = kind & ~ARRAY_FLAG
            if elem not in NUMERIC_KINDS:
                return None
            return f"{self._name('arr', _array_reader(elem, self.order))}({raw})"
        if kind in (Kind.STRING,):
            return f'{raw}.decode("utf-8", "replace")'
        if kind == Kind.CSTRING:
            return f'{raw}.partition(b"\\x00")[0].decode("utf-8", "replace")'
        if kind in (Kind.FLOAT32, Kind.FLOAT64):
            return f"{self._name('flt', _float_reader(kind, self.order))}({raw})"
        size = FIXED_SIZES.get(kind)
        if size is None:  # Bytes, Invalid, unknown kinds
            return f"{raw}.hex()"
        if kind == Kind.BOOL:
            return f'({raw} == b"\\x01")'
        signed = kind in _SIGNED
        conv = f'int.from_bytes({raw}, "{self.byteorder}", signed={signed})'
        return conv if exact_len else f"({conv} if len({raw}) == {size} else 0)"

    def _static_leaf(self, f: FieldSpec, item: str) -> str | None:
        """Expression for a static member already unpacked as `item` by the slot's struct."""
        kind = f.kind
        if kind in STRUCT_FORMAT and not kind & ARRAY_FLAG and FIXED_SIZES[kind] == f.size:
            if kind == Kind.BOOL:
                return f"({item} == 1)"
            return item
        return self._value(f, item, exact_len=False)

    # -- static containers -------------------------------------------------------------------

    def compile_slots(self, leaves: list[FieldSpec], only: set[int] | None = None) -> None:
        """One struct per slot for its static leaves; locals `s<N>` for every slot.

        With `only` (field indexes), the other members are skipped as pad bytes: the struct
        keeps its size (so short containers are repaired and counted alike) but does not copy
        what nobody reads (trace_exec's unused 512-byte paths).
        """
        self.nslots = 1 + max(
            (f.payload_index for f in self.ds.fields if not f.has(FieldFlag.EMPTY)), default=-1
        )
        per_slot: dict[int, list[FieldSpec]] = {}
        for f in leaves:
            if f.size > 0 and not f.has(FieldFlag.EMPTY):
                per_slot.setdefault(f.payload_index, []).append(f)
        for slot, fields in sorted(per_slot.items()):
            fields.sort(key=lambda f: (f.offs, f.index))
            fmt = [self.order]
            pos = 0  # end of the last member laid out (decides overlaps, as without `only`)
            out = 0  # end of what `fmt` covers so far
            items = 0
            for f in fields:
                end = f.offs + f.size
                wanted = only is None or f.index in only
                if f.offs < pos or end > _MAX_STRUCT:
                    # Overlaps an earlier member (a union) or is absurdly large: slice it.
                    raw = f"_pad(s{slot}, {end})[{f.offs}:{end}]"
                    expr = self._value(f, raw, exact_len=True) if wanted else None
                    if expr is not None:
                        self.static_expr[f.index] = expr
                    continue
                pos = end
                if not wanted:
                    continue
                if f.offs > out:
                    fmt.append(f"{f.offs - out}x")
                code = STRUCT_FORMAT.get(f.kind) if not f.kind & ARRAY_FLAG else None
                if code is not None and FIXED_SIZES[f.kind] == f.size:
                    fmt.append(code)
                else:
                    fmt.append(f"{f.size}s")
                expr = self._static_leaf(f, f"v{slot}[{items}]")
                if expr is not None:
                    self.static_expr[f.index] = expr
                items += 1
                out = end
            if pos > out:
                fmt.append(f"{pos - out}x")
            s = struct.Struct("".join(fmt))
            sname = self._name("S", s)
            self.prelude.append(
                f"v{slot} = {sname}.unpack_from(s{slot}) if len(s{slot}) >= {s.size} "
                f"else {sname}.unpack_from(_short(s{slot}, {s.size}))"
            )

    # -- tree --------------------------------------------------------------------------------

    def _excluded(self, f: FieldSpec) -> bool:
        return f.has(FieldFlag.UNREFERENCED) or f.json_skip

    def _node(self, f: FieldSpec, depth: int) -> str | None:
        if depth > 64:  # a parent cycle in a hostile layout; IG nests a few levels at most
            return None
        kids = self.children.get(f.index)
        if kids:
            return self._object(kids, depth + 1)
        if f.has(FieldFlag.EMPTY):
            return '""'
        if f.size > 0:
            return self.static_expr.get(f.index)
        return self._value(f, f"s{f.payload_index}", exact_len=False)

    def _object(self, fields: list[FieldSpec], depth: int) -> str:
        parts = []
        for f in sorted(fields, key=lambda f: (f.name.encode("utf-8", "replace"), f.index)):
            if self._excluded(f):
                continue
            expr = self._node(f, depth)
            if expr is not None:
                parts.append(f"{f.name!r}: {expr}")
        return "{" + ", ".join(parts) + "}"

    def leaves(self) -> list[FieldSpec]:
        return [f for f in self.ds.fields if f.index not in self.children]

    # -- extractors (typed mapping straight from the slots) -----------------------------------

    def _find(self, path: Path) -> FieldSpec | _Irregular | None:
        """The printed field at `path`; None when the dict has no such key; `IRREGULAR` when
        the dict would not have the expected shape there (a leaf on the way, a duplicate)."""
        level = self.roots
        found: FieldSpec | None = None
        for depth, name in enumerate(path):
            matches = [f for f in level if f.name == name and not self._excluded(f)]
            if len(matches) > 1:
                return IRREGULAR
            if not matches:
                return None
            found = matches[0]
            kids = self.children.get(found.index)
            if depth < len(path) - 1:
                if not kids:
                    return IRREGULAR
                level = kids
        return found

    def _leaf_expr(self, path: Path) -> str | _Irregular:
        f = self._find(path)
        if f is None or isinstance(f, _Irregular):
            return "None" if f is None else IRREGULAR
        if f.index in self.children:
            return IRREGULAR  # an object where a value is expected
        expr = self._node(f, len(path))
        return "None" if expr is None else expr

    def _key_expr(self, path: Path) -> str | _Irregular:
        """Like `_leaf_expr`, but a dynamic string reads as its raw slot (no decoding)."""
        f = self._find(path)
        if f is None or isinstance(f, _Irregular):
            return "None" if f is None else IRREGULAR
        if f.index in self.children:
            return IRREGULAR
        if f.size == 0 and not f.has(FieldFlag.EMPTY) and f.kind in (Kind.STRING, Kind.CSTRING):
            return f"s{f.payload_index}"
        expr = self._node(f, len(path))
        return "None" if expr is None else expr

    def _group_expr(self, path: Path) -> str | _Irregular:
        """Whether the dict has a non-empty object at `path`."""
        f = self._find(path)
        if f is None or isinstance(f, _Irregular):
            return "False" if f is None else IRREGULAR
        kids = self.children.get(f.index)
        if not kids:
            return IRREGULAR
        return repr(self._object(kids, len(path)) != "{}")

    def extractor_source(self, spec: ExtractorSpec) -> str | None:
        """`_extract(slots) -> (key, *values, *groups)`, or None for an irregular layout."""
        # Group presence depends on every member's printability: ask a fully compiled emitter.
        full = _Emitter(self.ds)
        full.compile_slots(full.leaves())
        groups = [full._group_expr(p) for p in spec.group_paths]
        needed: set[int] = set()
        for path in (*spec.key_paths, *spec.value_paths):
            f = self._find(path)
            if isinstance(f, FieldSpec):
                needed.add(f.index)
        self.compile_slots(self.leaves(), only=needed)
        keys = [self._key_expr(p) for p in spec.key_paths]
        values = [self._leaf_expr(p) for p in spec.value_paths]
        exprs = [*keys, *values, *groups]
        if any(isinstance(e, _Irregular) for e in exprs):
            return None
        if any(self._leaf_expr(p) in ("None", IRREGULAR) for p in spec.required_paths):
            return None
        lines = ["def _extract(slots):", *self._header()]
        lines += [f"    {p}" for p in self.prelude]
        key = "(" + "".join(f"{k}, " for k in keys) + ")"
        lines.append(f"    return ({key}, " + "".join(f"{e}, " for e in exprs[len(keys) :]) + ")")
        return "\n".join(lines) + "\n"

    def _header(self) -> list[str]:
        if not self.nslots:
            return []
        names = ", ".join(f"s{i}" for i in range(self.nslots))
        return [
            f"    if len(slots) != {self.nslots}:",
            f"        slots = _fix(slots, {self.nslots})",
            f"    {names}, = slots",
        ]

    def source(self) -> str:
        self.compile_slots(self.leaves())
        body = self._object(self.roots, 0)
        lines = ["def _build(slots):", *self._header()]
        lines += [f"    {p}" for p in self.prelude]
        lines.append(f"    return {body}")
        return "\n".join(lines) + "\n"


class DataSourceDecoder:
    """Decodes payloads of one data source. Build with `compile_data_source`."""

    __slots__ = ("build", "is_array", "name", "repaired", "source", "spec")

    def __init__(self, spec: DataSourceSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.is_array = spec.is_array
        #: Repairs made: elements with missing slots, short containers (both read as zeros).
        self.repaired = 0
        emitter = _Emitter(spec)
        self.source = emitter.source()
        ns = emitter.namespace
        ns["_fix"] = self._fix
        ns["_short"] = self._short
        ns["_pad"] = self._pad
        exec(compile(self.source, f"<decoder {spec.name}>", "exec"), ns)
        self.build: Callable[[Sequence[bytes]], Record] = ns["_build"]

    def _fix(self, slots: Sequence[bytes], n: int) -> list[bytes]:
        if len(slots) < n:
            self.repaired += 1
            return [*slots, *([b""] * (n - len(slots)))]
        return list(slots[:n])  # extra slots: a newer server; ignore them

    def _short(self, raw: bytes, size: int) -> bytes:
        self.repaired += 1
        return bytes(raw).ljust(size, b"\x00")

    @staticmethod
    def _pad(raw: bytes, size: int) -> bytes:
        return raw if len(raw) >= size else bytes(raw).ljust(size, b"\x00")

    def decode(self, payload: bytes) -> list[Record]:
        """Records of one payload event: one for Single, zero or more for Array.

        Raises `PayloadError` when the protobuf does not parse.
        """
        if self.is_array:
            return [self.build(slots) for slots in parse_array(payload)]
        return [self.build(parse_single(payload))]

    def elements(self, payload: bytes) -> list[Sequence[bytes]]:
        """The slots of each element of one payload, not decoded (for `extractor`s).

        Raises `PayloadError` when the protobuf does not parse.
        """
        if self.is_array:
            return parse_array(payload)
        return [parse_single(payload)]

    def extractor(self, spec: ExtractorSpec) -> Callable[[Sequence[bytes]], tuple[Any, ...]] | None:
        """Compile a function reading only `spec`'s paths from an element's slots, with the
        values `build` would put there (same struct, same conversions, same repairs); None when
        the layout does not have the shape `spec` expects (then use `build`)."""
        emitter = _Emitter(self.spec)
        source = emitter.extractor_source(spec)
        if source is None:
            return None
        ns = emitter.namespace
        ns["_fix"] = self._fix
        ns["_short"] = self._short
        ns["_pad"] = self._pad
        exec(compile(source, f"<extractor {self.spec.name}>", "exec"), ns)
        fn: Callable[[Sequence[bytes]], tuple[Any, ...]] = ns["_extract"]
        return fn

    def decode_slots(self, slots: Sequence[bytes]) -> Record:
        return self.build(slots)


@lru_cache(maxsize=256)
def compile_data_source(spec: DataSourceSpec) -> DataSourceDecoder:
    """The decoder for one data source layout, compiled once and cached.

    256 layouts cover every gadget version a cluster mixes with room to spare; eviction only
    costs a recompilation (about a millisecond).
    """
    return DataSourceDecoder(spec)


class GadgetDecoder:
    """All data source decoders of one GadgetInfo, by `dataSourceID`."""

    __slots__ = ("by_id", "info")

    def __init__(self, info: GadgetInfoSpec) -> None:
        self.info = info
        self.by_id: dict[int, DataSourceDecoder] = {
            ds.id: compile_data_source(ds) for ds in info.data_sources
        }

    def get(self, ds_id: int) -> DataSourceDecoder | None:
        return self.by_id.get(ds_id)


__all__ = [
    "DataSourceDecoder",
    "ExtractorSpec",
    "GadgetDecoder",
    "PayloadError",
    "Record",
    "compile_data_source",
]
