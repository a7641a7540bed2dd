"""Typed events straight from payload slots, without building the `ig run -o json` dict.

The dict path (`decoding.py` builds the whole nested, key-sorted record; `mapping.py` reads a few
dozen keys from it) costs about as much again for the mapping as for the decoding. For the
layouts it recognises, `SlotMapper` compiles per layout (`DataSourceDecoder.extractor`) one
function that unpacks the static container with the same precompiled `struct.Struct` and reads
the dynamic slots it needs by precomputed index, returning exactly the values the record would
hold at the keys the mapping reads; the builders below then apply the mapping's own conversion
helpers to those values. Layouts it does not recognise (pre-v0.35 flat ones, irregular shapes,
data sources without a typed event) use the dict path. Output is identical either way; a test
compares both paths on every IG sample and the example capture.

Interning, per compiled layout:

* `Container`: keyed by (node, the raw bytes of the enrichment slots, mount namespace): equal
  enrichment gives the same object without decoding a string; a miss builds the record once and
  asks `RecordMapper.container`, whose own table makes the object shared across layouts;
* `Process`: keyed by the raw process values (a process emits many events);
* `PeerIdentity` and open flag tuples: keyed by their raw values.

Each table is bounded (`_CACHE_MAX`) and starts afresh when full.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gadgetclient.decoding import DataSourceDecoder, ExtractorSpec, Path
from gadgetclient.events import (
    CapabilityEvent,
    Container,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    PeerIdentity,
    Process,
    TcpEvent,
)
from gadgetclient.mapping import (
    RecordMapper,
    as_int,
    as_str,
    flag_names_of,
    parse_labels,
    proto_of,
    qtype_of,
    split_args,
    tcp_type_of,
)
from gadgetclient.pathnorm import normalise_path

_T = TypeVar("_T")

#: Map one element's slots (and the stream's node) to its typed event, or None.
MapSlots = Callable[[Sequence[bytes], str], Event | None]
#: Whether this worker owns an element's container, and the element's event time.
Route = Callable[[Sequence[bytes], str], tuple[bool, int]]

#: Entries per intern table: a node runs a few hundred containers and a few thousand processes;
#: past this the table starts afresh (only costs re-creating the objects).
_CACHE_MAX = 4096
#: Compiled layouts kept; like the decoder cache, more than a cluster's gadget versions.
_LAYOUTS_MAX = 256


def _maker(cls: type[_T], count: int) -> Callable[..., _T]:
    """A positional constructor for a frozen slotted dataclass that fills the slots directly.

    The dataclass `__init__` of a frozen class calls `object.__setattr__` once per field; these
    events have no `__post_init__`, so setting the slots through their descriptors builds the
    same object for about 60% of the cost. It takes the first `count` fields in declaration
    order; fields added later to the contract get their defaults.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields[:count]]
    assert len(names) == count
    assert not {"_new", "_cls", "_o"} & {f.name for f in fields}
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = []
    for i, f in enumerate(fields):
        ns[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if i < count:
            value = f.name
        elif f.default is not dataclasses.MISSING:
            ns[f"_default_{f.name}"] = f.default
            value = f"_default_{f.name}"
        else:
            ns[f"_factory_{f.name}"] = f.default_factory
            value = f"_factory_{f.name}()"
        body.append(f"    _set_{f.name}(_o, {value})\n")
    source = f"def make({', '.join(names)}):\n    _o = _new(_cls)\n{''.join(body)}    return _o\n"
    exec(compile(source, f"<maker {cls.__name__}>", "exec"), ns)
    make: Callable[..., _T] = ns["make"]
    return make


_make_process = _maker(Process, 10)
_make_exec = _maker(ExecEvent, 10)
_make_open = _maker(OpenEvent, 9)
_make_tcp = _maker(TcpEvent, 13)
_make_dns = _maker(DnsEvent, 11)
_make_capability = _maker(CapabilityEvent, 7)


def _paths(*dotted: str) -> tuple[Path, ...]:
    return tuple(tuple(d.split(".")) for d in dotted)


#: Everything `RecordMapper.container` reads.
CONTAINER_PATHS = _paths(
    "k8s.node",
    "k8s.namespace",
    "k8s.podName",
    "k8s.pod",
    "k8s.containerName",
    "k8s.container",
    "k8s.owner.kind",
    "k8s.owner.name",
    "k8s.podLabels",
    "k8s.hostnetwork",
    "runtime.containerId",
    "runtime.containerName",
    "runtime.containerImageName",
    "runtime.containerImageDigest",
    "runtime.containerStartedAt",
    "proc.mntns_id",
    "mntns_id",
    "mntns_id_raw",
)
#: Timestamps, then what `RecordMapper.process` reads in the `proc` layout (v0.35+), in the
#: order of the builders' unpacking below: values 2..12 are the Process key.
COMMON_PATHS = _paths(
    "timestamp_raw",
    "timestamp",
    "proc.pid",
    "proc.tid",
    "proc.comm",
    "task",
    "proc.creds.uid",
    "proc.creds.gid",
    "proc.parent.pid",
    "ppid",
    "proc.parent.comm",
    "pcomm",
    "cwd",
)
_N_COMMON = len(COMMON_PATHS)
_REQUIRED = _paths("proc.pid")
_ENDPOINT_K8S = ("kind", "name", "namespace", "labels")

SPECS: dict[str, ExtractorSpec] = {
    "exec": ExtractorSpec(
        key_paths=CONTAINER_PATHS,
        value_paths=COMMON_PATHS
        + _paths(
            "args",
            "exepath",
            "comm",
            "error",
            "upper_layer",
            "upperlayer",
            "parent_exepath",
            "tty",
            "tty_major",
        ),
        required_paths=_REQUIRED,
    ),
    "open": ExtractorSpec(
        key_paths=CONTAINER_PATHS,
        value_paths=COMMON_PATHS
        + _paths("flags", "flags_raw", "mode", "fpath", "fname", "path", "fd", "error", "err"),
        required_paths=_REQUIRED,
    ),
    "tcp": ExtractorSpec(
        key_paths=CONTAINER_PATHS,
        value_paths=COMMON_PATHS
        + _paths(
            "type",
            "type_raw",
            "src.addr",
            "src.port",
            "dst.addr",
            "dst.port",
            "dst.proto",
            "src.proto",
            "dst.version",
            "error",
        )
        + tuple(("src", "k8s", k) for k in _ENDPOINT_K8S)
        + tuple(("dst", "k8s", k) for k in _ENDPOINT_K8S),
        group_paths=_paths("src.k8s", "dst.k8s"),
        required_paths=_REQUIRED,
    ),
    "dns": ExtractorSpec(
        key_paths=CONTAINER_PATHS,
        value_paths=COMMON_PATHS
        + _paths(
            "qr",
            "qr_raw",
            "qtype",
            "addresses",
            "name",
            "rcode",
            "nameserver.addr",
            "dst.addr",
            "dst.port",
        ),
        required_paths=_REQUIRED,
    ),
    "capabilities": ExtractorSpec(
        key_paths=CONTAINER_PATHS,
        value_paths=COMMON_PATHS + _paths("cap", "syscall", "capable", "audit"),
        required_paths=_REQUIRED,
    ),
}
#: What a worker of several (`sharding.py`) reads to route an element before mapping it: the
#: container key (raw slots, as the builders' intern key) and the event time.
ROUTE_SPEC = ExtractorSpec(
    key_paths=CONTAINER_PATHS, value_paths=_paths("timestamp_raw", "timestamp")
)
#: Data source name -> spec name (trace_tcp's data source is `tracetcp`).
_SPEC_OF = {"exec": "exec", "open": "open", "tracetcp": "tcp", "tcp": "tcp", "dns": "dns"}
_SPEC_OF["capabilities"] = "capabilities"


def _timestamp(raw: Any, ts: Any) -> int:
    """`mapping.timestamp_ns` on the two values."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def _process(v: Sequence[Any], exe: str, args: tuple[str, ...]) -> Process:
    """`RecordMapper.process` (proc layout) on the common values."""
    (_, _, _, pid, tid, comm, task, uid, gid, ppid_p, ppid_r, pcomm_p, pcomm_r, cwd) = v[
        : _N_COMMON + 1
    ]
    if cwd is None:
        cwd = ""
    return _make_process(
        as_int(pid),  # pid
        as_int(tid),  # tid
        as_str(comm or task),  # comm
        exe,  # exe
        args,  # args
        cwd if type(cwd) is str else as_str(cwd),  # cwd
        as_int(uid),  # uid
        as_int(gid),  # gid
        as_int(ppid_p if ppid_p is not None else ppid_r),  # ppid
        as_str(pcomm_p if pcomm_p is not None else pcomm_r),  # pcomm
    )


class _Layout:
    """One compiled layout: its extractor and intern tables."""

    __slots__ = (
        "containers",
        "decoder",
        "extract",
        "flags",
        "mapper",
        "owned",
        "peers",
        "processes",
        "route",
    )

    def __init__(
        self,
        decoder: DataSourceDecoder,
        extract: Callable[[Sequence[bytes]], tuple[Any, ...]],
        mapper: RecordMapper,
    ) -> None:
        self.decoder = decoder
        self.extract = extract
        self.mapper = mapper
        self.containers: dict[tuple[str, tuple[Any, ...]], Container] = {}
        self.processes: dict[tuple[Any, ...], Process] = {}
        self.peers: dict[tuple[Any, ...], PeerIdentity] = {}
        self.flags: dict[Any, tuple[str, ...]] = {}
        #: `SlotMapper.router`: the key-and-time extractor (compiled on first use; None when
        #: the layout has none) and the owner decision per (node, container key).
        self.route: Callable[[Sequence[bytes]], tuple[Any, ...]] | None = None
        self.owned: dict[tuple[str, tuple[Any, ...]], bool] = {}

    def container(self, slots: Sequence[bytes], node: str, key: tuple[Any, ...]) -> Container:
        ckey = (node, key)
        found = self.containers.get(ckey)
        if found is not None:
            return found
        decoder = self.decoder
        repaired = decoder.repaired
        record = decoder.build(slots)  # once per container; repairs were counted already
        decoder.repaired = repaired
        c = self.mapper.container(record, node)
        if len(self.containers) >= _CACHE_MAX:
            self.containers.clear()
        self.containers[ckey] = c
        return c

    def process(self, v: Sequence[Any], exe: str = "", args: tuple[str, ...] = ()) -> Process:
        key = (v[3 : _N_COMMON + 1], exe, args)
        found = self.processes.get(key)
        if found is not None:
            return found
        if len(self.processes) >= _CACHE_MAX:
            self.processes.clear()
        p = self.processes[key] = _process(v, exe, args)
        return p

    def peer(self, present: bool, kind: Any, name: Any, ns: Any, labels: Any) -> PeerIdentity:
        if not present:
            return _NO_PEER
        key = (kind, name, ns, labels)
        found = self.peers.get(key)
        if found is None:
            if len(self.peers) >= _CACHE_MAX:
                self.peers.clear()
            found = self.peers[key] = PeerIdentity(
                kind=as_str(kind),
                name=as_str(name),
                namespace=as_str(ns),
                labels=parse_labels(labels),
            )
        return found

    # -- builders: each is the matching `RecordMapper` method on the extracted values ------

    def exec_event(self, slots: Sequence[bytes], node: str) -> ExecEvent:
        v = self.extract(slots)
        (args_v, exepath, comm_flat, error, ul, ul_old, parent_exe, tty, tty_major) = v[
            _N_COMMON + 1 :
        ]
        args = split_args(as_str(args_v))
        exe = as_str(exepath) or self.mapper.unresolved_exec(args, as_str(v[5] or comm_flat))
        return _make_exec(
            _timestamp(v[1], v[2]),  # timestamp_ns
            self.container(slots, node, v[0]),  # container
            self.process(v, exe, args),  # process
            exe,  # path
            args,  # args
            as_str(v[13]),  # cwd
            as_str(error),  # error
            bool(ul if ul is not None else ul_old if ul_old is not None else False),  # upper_layer
            as_str(parent_exe),  # parent_exe
            as_int(tty) > 0 or bool(as_int(tty_major)),  # tty
        )

    def open_event(self, slots: Sequence[bytes], node: str) -> OpenEvent:
        v = self.extract(slots)
        (flags, flags_raw, mode, fpath, fname, path, fd, error, err) = v[_N_COMMON + 1 :]
        names = self.flags.get(flags)
        if names is None:
            if len(self.flags) >= _CACHE_MAX:
                self.flags.clear()
            names = self.flags[flags] = flag_names_of(flags)
        if flags_raw is None:
            flags_raw = flags if isinstance(flags, int) else 0
        process = self.process(v)
        return _make_open(
            _timestamp(v[1], v[2]),  # timestamp_ns
            self.container(slots, node, v[0]),  # container
            process,  # process
            normalise_path(as_str(fpath) or as_str(fname or path), process.cwd),  # path
            names,  # flags
            as_int(flags_raw),  # flags_raw
            as_int(fd),  # fd
            as_str(error) or ("" if not err else "ERROR"),  # error
            mode if isinstance(mode, str) else "",  # mode
        )

    def tcp_event(self, slots: Sequence[bytes], node: str) -> TcpEvent:
        v = self.extract(slots)
        (
            kind,
            kind_raw,
            src_addr,
            src_port,
            dst_addr,
            dst_port,
            dst_proto,
            src_proto,
            dst_version,
            error,
            sk_kind,
            sk_name,
            sk_ns,
            sk_labels,
            dk_kind,
            dk_name,
            dk_ns,
            dk_labels,
            src_k8s,
            dst_k8s,
        ) = v[_N_COMMON + 1 :]
        proto = dst_proto if dst_proto is not None else src_proto
        return _make_tcp(
            _timestamp(v[1], v[2]),  # timestamp_ns
            self.container(slots, node, v[0]),  # container
            self.process(v),  # process
            tcp_type_of(kind, kind_raw if kind_raw is not None else kind),  # type
            as_str(src_addr),  # src_addr
            as_int(src_port),  # src_port
            as_str(dst_addr),  # dst_addr
            as_int(dst_port),  # dst_port
            proto_of(proto if proto is not None else "TCP"),  # proto
            as_int(dst_version if dst_version is not None else 4) or 4,  # ip_version
            self.peer(src_k8s, sk_kind, sk_name, sk_ns, sk_labels),  # src_peer
            self.peer(dst_k8s, dk_kind, dk_name, dk_ns, dk_labels),  # dst_peer
            as_str(error),  # error
        )

    def dns_event(self, slots: Sequence[bytes], node: str) -> DnsEvent:
        v = self.extract(slots)
        (qr, qr_raw, qtype, addresses, name, rcode, nameserver, dst_addr, dst_port) = v[
            _N_COMMON + 1 :
        ]
        return _make_dns(
            _timestamp(v[1], v[2]),  # timestamp_ns
            self.container(slots, node, v[0]),  # container
            self.process(v),  # process
            as_str(name).rstrip(".").lower(),  # name
            qr == "R" or qr_raw is True or (isinstance(qr, int) and qr == 1),  # is_response
            qtype_of(qtype),  # qtype
            as_str(rcode) if isinstance(rcode, str) else "",  # rcode
            tuple(a for a in as_str(addresses).split(",") if a),  # addresses
            as_str(nameserver),  # nameserver
            as_str(dst_addr),  # dst_addr
            as_int(dst_port),  # dst_port
        )

    def capability_event(self, slots: Sequence[bytes], node: str) -> CapabilityEvent:
        v = self.extract(slots)
        (cap, syscall, capable, audit) = v[_N_COMMON + 1 :]
        return _make_capability(
            _timestamp(v[1], v[2]),  # timestamp_ns
            self.container(slots, node, v[0]),  # container
            self.process(v),  # process
            as_str(cap),  # capability
            as_str(syscall),  # syscall
            bool(capable if capable is not None else True),  # capable
            as_int(audit if audit is not None else 1),  # audit
        )


_NO_PEER = PeerIdentity()
_BUILDERS: dict[str, Callable[[_Layout], MapSlots]] = {
    "exec": lambda layout: layout.exec_event,
    "open": lambda layout: layout.open_event,
    "tcp": lambda layout: layout.tcp_event,
    "dns": lambda layout: layout.dns_event,
    "capabilities": lambda layout: layout.capability_event,
}


class SlotMapper:
    """Typed events from element slots, per data source layout (see the module docstring)."""

    def __init__(self, mapper: RecordMapper | None = None) -> None:
        self.mapper = mapper if mapper is not None else RecordMapper()
        self._compiled: dict[DataSourceDecoder, MapSlots] = {}

    def for_decoder(self, decoder: DataSourceDecoder) -> MapSlots:
        """The slot mapper of one data source (compiled on first use)."""
        fn = self._compiled.get(decoder)
        if fn is None:
            if len(self._compiled) >= _LAYOUTS_MAX:
                self._compiled.clear()
            fn = self._compiled[decoder] = self._compile(decoder)
        return fn

    def router(self, decoder: DataSourceDecoder, owns: Callable[[Container], bool]) -> Route | None:
        """For one of several workers: `(owned, timestamp_ns)` of an element from its container
        slots and time only, so an element another worker owns costs no mapping. The owner is
        decided once per container (`owns(container)`, as after mapping).
        None for layouts mapped through the dict (the caller filters after mapping)."""
        layout = getattr(self.for_decoder(decoder), "__self__", None)
        if type(layout) is not _Layout:
            return None
        route = layout.route
        if route is None:
            route = layout.route = decoder.extractor(ROUTE_SPEC)
            if route is None:
                return None
        owned = layout.owned
        container = layout.container

        def routed(slots: Sequence[bytes], node: str) -> tuple[bool, int]:
            key, raw, ts = route(slots)
            ckey = (node, key)
            mine = owned.get(ckey)
            if mine is None:
                if len(owned) >= _CACHE_MAX:
                    owned.clear()
                mine = owned[ckey] = owns(container(slots, node, key))
            return mine, _timestamp(raw, ts)

        return routed

    def direct(self, decoder: DataSourceDecoder) -> bool:
        """Whether the layout is mapped straight from slots (else through the dict)."""
        fn = self.for_decoder(decoder)
        return getattr(fn, "__self__", None).__class__ is _Layout

    def _compile(self, decoder: DataSourceDecoder) -> MapSlots:
        name = decoder.name
        mapper = self.mapper
        spec_name = _SPEC_OF.get(name)
        if not mapper.handles(name):
            return _nothing
        extract = decoder.extractor(SPECS[spec_name]) if spec_name is not None else None
        if extract is None or spec_name is None:

            def via_dict(slots: Sequence[bytes], node: str) -> Event | None:
                return mapper.map(name, decoder.build(slots), node)

            return via_dict
        return _BUILDERS[spec_name](_Layout(decoder, extract, mapper))


def _nothing(slots: Sequence[bytes], node: str) -> Event | None:
    return None


__all__ = ["MapSlots", "Route", "SlotMapper"]
