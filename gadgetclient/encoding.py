"""Capture records -> IG's binary layout: what the replay server sends.

A capture holds decoded JSON objects; to serve them over IG's API they need a GadgetInfo and
payload slots that decode back to exactly the same objects. This module infers both, laid out
the way IG lays out a real gadget:

* eBPF struct members (the `proc` block, `timestamp_raw`, numbers and flags of the event, fixed
  C strings such as `comm[16]` or `args[5120]`, endpoint ports) are static members of one
  container slot, at C-aligned offsets, with nested structs as Bytes fields with sub-fields;
* enrichment and formatted values (`k8s.*`, `runtime.*`, `timestamp`, `error`, `addr`, user and
  group names, WASM-produced fields) get one dynamic slot each;
* groups without a struct of their own (`k8s`, `runtime`, `k8s.owner`) are Empty fields;
* hidden flags follow IG (`*_raw` next to its formatted sibling, `runtime.*` in Kubernetes mode,
  `k8s.*` outside it, the `proc` container, owner and labels), and IG's unprinted fields are
  present too (`addr_raw` Unreferenced, `endpoint` and `args_count/args_size` json.skip).

Records of one data source whose shapes differ (the integration-test samples omit fields) are
served as several data sources with the same name, one per shape, so that decoding reproduces each
record exactly; real IG captures have one shape per data source. Values IG cannot produce (null,
arrays of non-numbers, integers beyond 64 bits) make a record unrepresentable: it is reported,
not served.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gadgetclient.layouts import (
    ARRAY_FLAG,
    FIXED_SIZES,
    STRUCT_FORMAT,
    DataSourceSpec,
    DataSourceType,
    FieldFlag,
    FieldSpec,
    Kind,
)

#: C string members of IG's eBPF structs and their array sizes (include/gadget/types.h and the
#: gadgets' program.bpf.c). A longer captured value grows the member so it survives intact.
CSTRING_SIZES: dict[str, int] = {
    "comm": 16,
    "args": 5120,
    "cwd": 512,
    "file": 512,
    "exepath": 512,
    "parent_exepath": 512,
    "fname": 255,
    "fpath": 512,
    "task": 16,
}

#: Integer kinds of well-known members (IG gadget structs); others are inferred from values.
INT_KINDS: dict[str, Kind] = {
    "pid": Kind.UINT32,
    "tid": Kind.UINT32,
    "tpid": Kind.UINT32,
    "uid": Kind.UINT32,
    "gid": Kind.UINT32,
    "mntns_id": Kind.UINT64,
    "mntns_id_raw": Kind.UINT64,
    "netns_id": Kind.UINT32,
    "timestamp_raw": Kind.UINT64,
    "port": Kind.UINT16,
    "proto_raw": Kind.UINT16,
    "version": Kind.UINT8,
    "error_raw": Kind.UINT32,
    "sig_raw": Kind.UINT32,
    "fd": Kind.INT32,
    "accept_fd": Kind.INT32,
    "flags_raw": Kind.UINT32,
    "mode_raw": Kind.UINT32,
    "type_raw": Kind.UINT8,
    "pkt_type_raw": Kind.UINT8,
    "latency_ns_raw": Kind.UINT64,
    "qtype_raw": Kind.UINT16,
    "rcode_raw": Kind.UINT16,
    "num_answers": Kind.INT32,
    "loginuid": Kind.UINT32,
    "sessionid": Kind.UINT32,
    "tty": Kind.INT32,
    "tty_major": Kind.UINT32,
    "tty_minor": Kind.UINT32,
    "dev_major": Kind.UINT32,
    "dev_minor": Kind.UINT32,
    "inode": Kind.UINT64,
    "ctime": Kind.UINT64,
    "fctime": Kind.UINT64,
    "pctime": Kind.UINT64,
    "audit": Kind.INT32,
    "insetid": Kind.INT32,
    "cap_raw": Kind.UINT32,
    "cap_effective_raw": Kind.UINT64,
    "syscall_raw": Kind.UINT64,
    "kstack_raw": Kind.UINT32,
    "current_userns": Kind.UINT64,
    "target_userns": Kind.UINT64,
    "bound_dev_if": Kind.UINT32,
    "opts_raw": Kind.UINT8,
    "containerPid": Kind.UINT32,
    "containerStartedAt": Kind.INT64,
}

#: Groups that are eBPF structs (static Bytes fields with members); others become Empty groups.
STATIC_GROUPS = frozenset({"proc", "creds", "parent", "src", "dst", "addr", "nameserver", "ustack"})

#: Groups filled by enrichers (always dynamic, whatever their members).
ENRICHMENT_GROUPS = frozenset({"k8s", "runtime"})

#: Numeric and bool members produced by user-space operators or WASM (dynamic slots).
DYNAMIC_LEAVES = frozenset(
    {"qr_raw", "qtype_raw", "rcode_raw", "num_answers", "tc", "ra", "rd", "hostnetwork"}
)

#: Member order of IG's `struct gadget_process` and friends; other members sort by name.
MEMBER_ORDER: dict[str, int] = {
    n: i
    for i, n in enumerate(
        (
            *("timestamp_raw", "mntns_id_raw", "addr_raw", "comm", "pid", "tid", "mntns_id"),
            *("creds", "parent", "uid", "gid", "addr", "port", "proto_raw", "version"),
        )
    )
}

#: Leaves hidden by IG's templates or operators, by name (any level).
HIDDEN_LEAVES = frozenset(
    {
        "mntns_id",
        "loginuid",
        "loginuser",
        "sessionid",
        "from_rootfs",
        "file_from_rootfs",
        "upper_layer",
        "fupper_layer",
        "pupper_layer",
        "dev_major",
        "dev_minor",
        "inode",
        "ctime",
        "fctime",
        "pctime",
        "user",
        "group",
        "hostnetwork",
        "podLabels",
        "fd",
        "accept_fd",
        "insetid",
        "cap_effective",
        "kstack",
        "num_answers",
        "tc",
        "ra",
        "rd",
        "proto",
    }
)

_INT_RANGES: dict[Kind, tuple[int, int]] = {
    Kind.INT8: (-(1 << 7), (1 << 7) - 1),
    Kind.INT16: (-(1 << 15), (1 << 15) - 1),
    Kind.INT32: (-(1 << 31), (1 << 31) - 1),
    Kind.INT64: (-(1 << 63), (1 << 63) - 1),
    Kind.UINT8: (0, (1 << 8) - 1),
    Kind.UINT16: (0, (1 << 16) - 1),
    Kind.UINT32: (0, (1 << 32) - 1),
    Kind.UINT64: (0, (1 << 64) - 1),
}


class UnrepresentableError(ValueError):
    """A record holds a value no IG layout can produce (the message names the path)."""


def _fits(kind: Kind, lo: int, hi: int) -> bool:
    a, b = _INT_RANGES[kind]
    return a <= lo and hi <= b


def _int_kind(name: str, lo: int, hi: int) -> Kind:
    known = INT_KINDS.get(name)
    if known is not None and _fits(known, lo, hi):
        return known
    for k in (Kind.UINT32, Kind.INT32, Kind.UINT64, Kind.INT64):
        if _fits(k, lo, hi):
            return k
    raise UnrepresentableError(f"{name}: integer beyond 64 bits")


def _vclass(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "obj"
    if isinstance(value, list):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "list"
        raise UnrepresentableError(f"{path}: arrays of non-numbers are not printed by IG")
    raise UnrepresentableError(f"{path}: {type(value).__name__} value")


def shape_of(record: Mapping[str, Any], prefix: str = "") -> tuple[tuple[str, str], ...]:
    """The record's shape: sorted (path, value class) pairs; raises `UnrepresentableError`."""
    out: list[tuple[str, str]] = []
    for key, value in record.items():
        path = f"{prefix}{key}"
        cls = _vclass(value, path)
        out.append((path, "num" if cls in ("int", "float") else cls))
        if cls == "obj":
            out.extend(shape_of(value, f"{path}."))
    return tuple(sorted(out))


@dataclass
class _Node:
    name: str
    path: str
    cls: str = ""
    children: dict[str, _Node] = field(default_factory=dict)
    lo: int = 0
    hi: int = 0
    is_float: bool = False
    max_len: int = 0
    has_nul: bool = False
    list_lens: set[int] = field(default_factory=set)
    list_seen: bool = False
    # layout decisions
    kind: int = Kind.INVALID
    static: bool = False
    offs: int = 0
    size: int = 0
    index: int = -1
    slot: int = -1

    def observe(self, value: Any) -> None:
        if isinstance(value, dict):
            self.cls = "obj"
            for k, v in value.items():
                child = self.children.get(k)
                if child is None:
                    child = self.children[k] = _Node(k, f"{self.path}.{k}" if self.path else k)
                child.observe(v)
        elif isinstance(value, bool):
            self.cls = "bool"
        elif isinstance(value, int | float):
            first = self.cls == ""
            self.cls = "num"
            if isinstance(value, float):
                self.is_float = True
            else:
                self.lo = value if first else min(self.lo, value)
                self.hi = value if first else max(self.hi, value)
        elif isinstance(value, str):
            self.cls = "str"
            raw = value.encode("utf-8", "surrogatepass")
            self.max_len = max(self.max_len, len(raw))
            self.has_nul = self.has_nul or b"\x00" in raw
        elif isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise UnrepresentableError(
                    f"{self.path}: arrays of non-numbers are not printed by IG"
                )
            self.cls = "list"
            self.list_lens.add(len(value))
            if value:
                lo, hi = min(value), max(value)
                if self.list_seen:
                    lo, hi = min(lo, self.lo), max(hi, self.hi)
                self.lo, self.hi, self.list_seen = lo, hi, True
        else:
            raise UnrepresentableError(f"{self.path}: {type(value).__name__} value")


def _order_key(n: _Node) -> tuple[int, str]:
    return (MEMBER_ORDER.get(n.name, len(MEMBER_ORDER)), n.name)


class ShapeLayout:
    """Layout of one record shape: fields, slots, and an encoder from record to slots."""

    def __init__(self, *, name: str, ds_type: int, records: Sequence[Any], k8s_mode: bool) -> None:
        self.name = name
        self.ds_type = ds_type
        root = _Node("", "")
        for rec in records:
            for element in rec if ds_type == DataSourceType.ARRAY else [rec]:
                root.observe(element)
        self.root = root
        self.k8s_mode = k8s_mode
        self.fields: list[FieldSpec] = []
        self.containers: list[int] = []  # sizes of container slots
        self.nslots = 0
        self._extras: list[tuple[_Node, FieldSpec]] = []
        self._layout()

    # -- decisions ---------------------------------------------------------------------------

    def _decide(self, node: _Node, *, parent_static: bool, enrichment: bool) -> None:
        for child in node.children.values():
            if child.cls == "obj":
                child.static = (
                    child.name in STATIC_GROUPS
                    and not enrichment
                    and (parent_static or not node.path)
                    and bool(child.children)
                )
                child.kind = Kind.BYTES if child.static else Kind.INVALID
                self._decide(
                    child,
                    parent_static=child.static,
                    enrichment=enrichment or child.name in ENRICHMENT_GROUPS,
                )
                continue
            dynamic = enrichment or child.name in DYNAMIC_LEAVES
            if child.cls == "bool":
                child.kind = Kind.BOOL
            elif child.cls == "num":
                child.kind = (
                    Kind.FLOAT64 if child.is_float else _int_kind(child.name, child.lo, child.hi)
                )
            elif child.cls == "list":
                elem = next(
                    k
                    for k in (Kind.UINT8, Kind.UINT16, Kind.UINT32, Kind.UINT64, Kind.INT64)
                    if k == Kind.INT64 or _fits(k, child.lo, child.hi)
                )
                if not _fits(elem, child.lo, child.hi):
                    raise UnrepresentableError(f"{child.path}: array element beyond 64 bits")
                child.kind = elem | ARRAY_FLAG
                dynamic = dynamic or len(child.list_lens) != 1 or child.name != "syscalls"
                child.size = FIXED_SIZES[elem] * next(iter(child.list_lens))
            else:  # str
                known = CSTRING_SIZES.get(child.name)
                if known is None or child.has_nul or enrichment:
                    child.kind = Kind.STRING
                    dynamic = True
                else:
                    child.kind = Kind.CSTRING
                    child.size = max(known, child.max_len + 1)
            if child.kind in FIXED_SIZES:
                child.size = FIXED_SIZES[child.kind]
            child.static = not dynamic and (parent_static or not node.path)
            if not child.static:
                child.size = 0

    def _hidden(self, node: _Node, parent: _Node | None, top: str) -> bool:
        if top == "runtime" and node.path != "runtime":
            return self.k8s_mode
        if top == "k8s" and node.path != "k8s":
            return not self.k8s_mode or node.name in ("hostnetwork", "podLabels", "kind", "name")
        if node.name == "proc" and node.static:
            return True
        if node.name.endswith("_raw") and parent is not None:
            return node.name[:-4] in parent.children
        return node.name in HIDDEN_LEAVES

    def _layout(self) -> None:
        root = self.root
        self._decide(root, parent_static=True, enrichment=False)
        # Containers: the static members of the root (a map iterator's `syscalls` value is its
        # own container, like IG's key/value split).
        roots = sorted(root.children.values(), key=_order_key)
        groups: list[list[_Node]] = [[n for n in roots if n.static and n.name != "syscalls"]]
        value = [n for n in roots if n.static and n.name == "syscalls"]
        if value:
            groups.append(value)
        groups = [g for g in groups if g] or []
        for slot, members in enumerate(groups):
            end = self._place(members, 0, slot)
            self.containers.append(end)
        self.nslots = len(self.containers)
        # Static fields first, in struct order (AddStaticFields), then dynamic ones.
        for members in groups:
            for n in members:
                self._emit_static(n, parent=None)
        self._emit_dynamic(root, parent=None, top="")

    def _place(self, members: Iterable[_Node], base: int, slot: int) -> int:
        pos = base
        for n in members:
            if n.cls == "obj":
                start = _align(pos, 8)
                inner = [c for c in sorted(n.children.values(), key=_order_key) if c.static]
                # An endpoint struct starts with its 16-byte `addr_raw` union (IG types.h).
                first = start + 16 if _is_endpoint(n) else start
                end = self._place(inner, first, slot)
                n.offs, n.size, n.slot = start, _align(max(end - start, 1), 8), slot
                pos = n.offs + n.size
            else:
                align = FIXED_SIZES.get(n.kind & ~ARRAY_FLAG, 1) if n.kind != Kind.CSTRING else 1
                n.offs, n.slot = _align(pos, align), slot
                pos = n.offs + n.size
        return pos

    def _add(self, spec: FieldSpec) -> int:
        self.fields.append(spec)
        return spec.index

    def _emit_static(self, n: _Node, parent: _Node | None) -> None:
        flags = FieldFlag.STATIC_MEMBER | (FieldFlag.HAS_PARENT if parent else 0)
        if self._hidden(n, parent, n.path.split(".")[0]):
            flags |= FieldFlag.HIDDEN
        n.index = self._add(
            FieldSpec(
                name=n.name,
                full_name=n.path,
                index=len(self.fields),
                kind=n.kind,
                flags=int(flags),
                payload_index=n.slot,
                offs=n.offs,
                size=n.size,
                parent=parent.index if parent else 0,
                tags=("src:ebpf", f"name:{n.name}"),
            )
        )
        if n.cls == "obj":
            for c in sorted(n.children.values(), key=_order_key):
                if c.static:
                    self._emit_static(c, n)
            if _is_endpoint(n):
                # IG's endpoint struct keeps the raw address union; the formatter marks it
                # Unreferenced after adding the `addr` string.
                spec = FieldSpec(
                    name="addr_raw",
                    full_name=f"{n.path}.addr_raw",
                    index=len(self.fields),
                    kind=Kind.BYTES,
                    flags=int(
                        FieldFlag.STATIC_MEMBER | FieldFlag.HAS_PARENT | FieldFlag.UNREFERENCED
                    ),
                    payload_index=n.slot,
                    offs=n.offs,
                    size=16,
                    parent=n.index,
                )
                self._add(spec)
                self._extras.append((n, spec))

    def _emit_dynamic(self, n: _Node, parent: _Node | None, top: str) -> None:
        kids = sorted(n.children.values(), key=lambda c: (c.name in ENRICHMENT_GROUPS, c.name))
        for c in kids:
            ctop = top or c.name
            if c.static:
                if c.cls == "obj":
                    self._emit_dynamic(c, c, ctop)
                continue
            flags = FieldFlag.HAS_PARENT if n.path else 0
            if self._hidden(c, n, ctop):
                flags |= FieldFlag.HIDDEN
            annotations: tuple[tuple[str, str], ...] = ()
            if c.cls == "obj":
                flags |= FieldFlag.EMPTY
                c.index = self._add(self._dyn(c, n, flags, slot=0))
                if not c.children:
                    # `{}` in the capture: a group whose only member is not printed.
                    self._add(
                        FieldSpec(
                            name="_",
                            full_name=f"{c.path}._",
                            index=len(self.fields),
                            kind=Kind.STRING,
                            flags=int(FieldFlag.HAS_PARENT | FieldFlag.HIDDEN),
                            payload_index=self._new_slot(),
                            parent=c.index,
                            annotations=(("json.skip", "true"),),
                        )
                    )
                self._emit_dynamic(c, c, ctop)
                continue
            c.slot = self._new_slot()
            c.index = self._add(self._dyn(c, n, flags, slot=c.slot, annotations=annotations))
        if n.path and _is_endpoint(n):
            self._add(
                FieldSpec(
                    name="endpoint",
                    full_name=f"{n.path}.endpoint",
                    index=len(self.fields),
                    kind=Kind.STRING,
                    flags=int(FieldFlag.HAS_PARENT | FieldFlag.HIDDEN),
                    payload_index=self._new_slot(),
                    parent=n.index,
                    annotations=(("json.skip", "true"),),
                )
            )

    def _new_slot(self) -> int:
        self.nslots += 1
        return self.nslots - 1

    def _dyn(
        self,
        c: _Node,
        parent: _Node,
        flags: int,
        *,
        slot: int,
        annotations: tuple[tuple[str, str], ...] = (),
    ) -> FieldSpec:
        return FieldSpec(
            name=c.name,
            full_name=c.path,
            index=len(self.fields),
            kind=c.kind,
            flags=int(flags),
            payload_index=slot,
            parent=parent.index if parent.path else 0,
            annotations=annotations,
        )

    def spec(self, ds_id: int) -> DataSourceSpec:
        annotations: tuple[tuple[str, str], ...] = ()
        if self.ds_type == DataSourceType.ARRAY:
            annotations = (("ebpf.map.flush-on-stop", "true"),)
        return DataSourceSpec(
            id=ds_id,
            name=self.name,
            type=self.ds_type,
            fields=tuple(self.fields),
            annotations=annotations,
        )

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, record: Mapping[str, Any]) -> list[bytes]:
        """The payload slots of one record (one element of an Array packet)."""
        slots: list[bytes | bytearray] = [bytearray(size) for size in self.containers]
        slots += [b""] * (self.nslots - len(self.containers))
        self._fill(self.root, record, slots)
        for node, spec in self._extras:
            addr = _lookup(record, [*node.path.split("."), "addr"])
            if isinstance(addr, str):
                try:
                    packed = ipaddress.ip_address(addr).packed
                except ValueError:
                    packed = b""
                buf = slots[spec.payload_index]
                assert isinstance(buf, bytearray)
                buf[spec.offs : spec.offs + min(len(packed), spec.size)] = packed[: spec.size]
        return [bytes(s) for s in slots]

    def _fill(self, node: _Node, value: Mapping[str, Any], slots: list[bytes | bytearray]) -> None:
        for key, v in value.items():
            c = node.children[key]
            if c.cls == "obj":
                self._fill(c, v, slots)
                continue
            raw = _encode_value(c, v)
            if c.static:
                buf = slots[c.slot]
                assert isinstance(buf, bytearray)
                buf[c.offs : c.offs + len(raw)] = raw
            else:
                slots[c.slot] = raw


def _lookup(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    cur: Any = record
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def _is_endpoint(n: _Node) -> bool:
    return "addr" in n.children and "port" in n.children


def _align(pos: int, align: int) -> int:
    return (pos + align - 1) // align * align


def _encode_value(node: _Node, value: Any) -> bytes:
    kind = node.kind
    if kind & ARRAY_FLAG:
        elem = kind & ~ARRAY_FLAG
        return struct.pack(f"<{len(value)}{STRUCT_FORMAT[elem]}", *value)
    if kind == Kind.STRING:
        return str(value).encode("utf-8", "surrogatepass")
    if kind == Kind.CSTRING:
        return str(value).encode("utf-8", "surrogatepass")[: node.size - 1]
    if kind == Kind.BOOL:
        return b"\x01" if value else b"\x00"
    return struct.pack("<" + STRUCT_FORMAT[kind], value)
