"""Decoded IG records (the `ig run -o json` dicts) -> the typed events of `events.py`.

The mapping is keyed by data source name (`exec`, `open`, `tracetcp`, `dns`, `capabilities`,
`syscalls`), so it works for any image reference of a gadget. It is deliberately tolerant, because
field names and encodings change between gadget versions:

* `args` joined by U+00A0 (v0.45+) or by spaces (before);
* `proc.parent.tid` missing (before v0.47), or the pre-v0.35 flat layout (`comm`, `pid`, `uid` at
  the root, `mntns_id` at the root);
* endpoint `proto` as a string ("TCP") or as the IP protocol number (before v0.34);
* DNS names with IG's trailing dot, numeric `qr`/`qtype` of the 2024 layout;
* `k8s.podLabels` as IG's "k=v,k2=v2" string (or a mapping);
* a missing `timestamp_raw` (then `timestamp` when it is a number, else 0);
* open paths as the process spelled them (no ``--paths``): normalised lexically against the
  process's cwd (`pathnorm`), so the learner and the rules see one spelling.

An exec without IG's `exepath` (IG runs trace_exec without `paths`, an older IG, a user override)
does not fall back to `argv[0]`: the caller chooses `argv[0]`, so it is no evidence of the file
that ran. Its path becomes `unresolved:<argv[0]>` (`gadget_params.UNRESOLVED_PREFIX`), which no
absolute path pattern, exception or learned entry matches; the first one is logged with the rules
it weakens, and each is counted (`gadgetwatch_gadget_fields_unresolved_total`).

`Container` values are interned: events of one container share one frozen object, which saves an
allocation per event and makes the router's per-container keys cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from gadgetclient.events import (
    CapabilityEvent,
    Container,
    ContainerId,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    PeerIdentity,
    Process,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from gadgetclient.gadget_params import UNRESOLVED_PREFIX, defaults_for
from gadgetclient.pathnorm import normalise_path
from gadgetclient.stats import StreamStats
from gadgetclient.syscall_names import syscall_name

log = structlog.get_logger(__name__)

Record = Mapping[str, Any]
_EMPTY: Mapping[str, Any] = {}
NBSP = "\u00a0"

#: IP protocol numbers of the old numeric `proto` field.
_PROTOS = {6: "TCP", 17: "UDP"}
#: DNS qtype numbers of the 2024 layout, for the common types.
_QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA"}
_TCP_TYPES = {0: TcpEventType.CONNECT, 1: TcpEventType.ACCEPT, 2: TcpEventType.CLOSE}
_TCP_TYPE_NAMES = frozenset(t.value for t in TcpEventType)

#: Interned containers kept at most; beyond it the table starts afresh (a node runs a few hundred
#: containers, so 4096 is only reached under churn, and a reset merely costs re-allocation).
_CONTAINER_CACHE_MAX = 4096


def _obj(record: Record, key: str) -> Mapping[str, Any]:
    value = record.get(key)
    # `type(...) is dict` first: decoded records are plain dicts and the ABC check is slow.
    return value if type(value) is dict or isinstance(value, Mapping) else _EMPTY


def _str(value: Any) -> str:
    return value if type(value) is str else "" if value is None else str(value)


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return 0


#: Public names of the conversions, for the typed mappers that read slots (`slot_mapping.py`).
as_str = _str
as_int = _int


def split_args(args: str) -> tuple[str, ...]:
    """IG's joined argv: NBSP-separated since v0.45, space-separated before."""
    if not args:
        return ()
    if NBSP in args:
        return tuple(args.split(NBSP))
    return tuple(args.split(" "))


def parse_labels(value: Any) -> tuple[tuple[str, str], ...]:
    """IG's `podLabels` ("k=v,k2=v2", unordered) as sorted pairs."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _str(v)) for k, v in value.items()))
    if not isinstance(value, str) or not value:
        return ()
    pairs = []
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if key and sep:
            pairs.append((key.strip(), val.strip()))
    return tuple(sorted(pairs))


def timestamp_ns(record: Record) -> int:
    raw = record.get("timestamp_raw")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    ts = record.get("timestamp")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


class RecordMapper:
    """Maps records of one source; holds the container intern table."""

    def __init__(self, *, stats: StreamStats | None = None) -> None:
        self._stats = stats
        self._warned_unresolved = False
        self._containers: dict[tuple[Any, ...], Container] = {}
        self._by_ds: dict[str, Callable[[Record, str], Event | None]] = {
            "exec": self.exec_event,
            "open": self.open_event,
            "tracetcp": self.tcp_event,
            "tcp": self.tcp_event,
            "dns": self.dns_event,
            "capabilities": self.capability_event,
        }

    def handles(self, datasource: str) -> bool:
        return datasource in self._by_ds

    def map(self, datasource: str, record: Record, node: str = "") -> Event | None:
        """The typed event of one record, or None for data sources gadgetwatch does not use.

        Raises `ValueError`/`TypeError`/`KeyError` only on records of a shape no IG version
        produces; the session counts those as unmappable.
        """
        fn = self._by_ds.get(datasource)
        return fn(record, node) if fn is not None else None

    # -- identity ----------------------------------------------------------------------------

    def container(self, record: Record, node: str) -> Container:
        k8s = record.get("k8s") or _EMPTY
        rt = record.get("runtime") or _EMPTY
        proc = record.get("proc") or _EMPTY
        mntns = proc.get("mntns_id", record.get("mntns_id", record.get("mntns_id_raw", 0)))
        # Cheap identity first: these six values pin a container; the rest (image, owner,
        # labels, start time) only change when the container does.
        fast = (
            k8s.get("node") or node,
            k8s.get("namespace"),
            k8s.get("podName"),
            k8s.get("containerName"),
            rt.get("containerId"),
            mntns,
        )
        found = self._containers.get(fast)
        if found is not None:
            return found
        if len(self._containers) >= _CONTAINER_CACHE_MAX:
            self._containers.clear()
        owner = _obj(k8s, "owner")
        labels = k8s.get("podLabels")
        c = Container(
            node=_str(k8s.get("node")) or node,
            namespace=_str(k8s.get("namespace")),
            pod=_str(k8s.get("podName") or k8s.get("pod")),
            container=_str(k8s.get("containerName") or k8s.get("container"))
            or _str(rt.get("containerName")),
            container_id=ContainerId(_str(rt.get("containerId"))),
            image=_str(rt.get("containerImageName")),
            image_digest=_str(rt.get("containerImageDigest")),
            owner_kind=_str(owner.get("kind")),
            owner_name=_str(owner.get("name")),
            mntns_id=_int(mntns),
            pod_labels=parse_labels(labels),
            started_at_ns=_int(rt.get("containerStartedAt")),
            host_network=bool(k8s.get("hostnetwork")),
        )
        self._containers[fast] = c
        return c

    @staticmethod
    def process(record: Record, *, exe: str = "", args: tuple[str, ...] = ()) -> Process:
        proc = _obj(record, "proc")
        if proc:
            creds = _obj(proc, "creds")
            parent = _obj(proc, "parent")
            src = proc
        else:  # pre-v0.35 flat layout
            creds = src = record
            parent = _EMPTY
        cwd = record.get("cwd", "")
        return Process(
            pid=_int(src.get("pid")),
            tid=_int(src.get("tid")),
            comm=_str(src.get("comm") or record.get("task")),
            exe=exe,
            args=args,
            cwd=cwd if type(cwd) is str else _str(cwd),
            uid=_int(creds.get("uid")),
            gid=_int(creds.get("gid")),
            ppid=_int(parent.get("pid", record.get("ppid"))),
            pcomm=_str(parent.get("comm", record.get("pcomm"))),
        )

    # -- per gadget --------------------------------------------------------------------------

    def unresolved_exec(self, args: tuple[str, ...], comm: str) -> str:
        """The path of an exec IG sent without `exepath` (see the module docstring)."""
        if self._stats is not None:
            self._stats.unresolved[("trace_exec", "exepath")] += 1
        if not self._warned_unresolved:
            self._warned_unresolved = True
            log.warning(
                "exec events arrive without exepath; executables are recorded as unresolved",
                gadget="trace_exec",
                degraded_rules=sorted({r for p in defaults_for("trace_exec") for r in p.rules}),
                hint="run trace_exec with operator.oci.ebpf.paths=true (IG >= v0.29 declares it)",
            )
        return UNRESOLVED_PREFIX + (args[0] if args else comm)

    def exec_event(self, record: Record, node: str) -> ExecEvent:
        args = split_args(_str(record.get("args")))
        exe = _str(record.get("exepath")) or self.unresolved_exec(
            args, _str(_obj(record, "proc").get("comm") or record.get("comm"))
        )
        return ExecEvent(
            timestamp_ns=timestamp_ns(record),
            container=self.container(record, node),
            process=self.process(record, exe=exe, args=args),
            path=exe,
            args=args,
            cwd=_str(record.get("cwd")),
            error=_str(record.get("error")),
            upper_layer=bool(record.get("upper_layer", record.get("upperlayer", False))),
            parent_exe=_str(record.get("parent_exepath")),
            tty=_int(record.get("tty")) > 0 or bool(_int(record.get("tty_major"))),
        )

    def open_event(self, record: Record, node: str) -> OpenEvent:
        flags = record.get("flags")
        flag_names = flag_names_of(flags)
        flags_raw = record.get("flags_raw", flags if isinstance(flags, int) else 0)
        mode = record.get("mode")
        process = self.process(record)
        path = _str(record.get("fpath")) or _str(record.get("fname") or record.get("path"))
        return OpenEvent(
            timestamp_ns=timestamp_ns(record),
            container=self.container(record, node),
            process=process,
            path=normalise_path(path, process.cwd),
            flags=flag_names,
            flags_raw=_int(flags_raw),
            fd=_int(record.get("fd")),
            error=_str(record.get("error")) or ("" if not record.get("err") else "ERROR"),
            mode=mode if isinstance(mode, str) else "",
        )

    def tcp_event(self, record: Record, node: str) -> TcpEvent:
        src, dst = _obj(record, "src"), _obj(record, "dst")
        kind = record.get("type")
        tcp_type = tcp_type_of(kind, record.get("type_raw", kind))
        return TcpEvent(
            timestamp_ns=timestamp_ns(record),
            container=self.container(record, node),
            process=self.process(record),
            type=tcp_type,
            src_addr=_str(src.get("addr")),
            src_port=_int(src.get("port")),
            dst_addr=_str(dst.get("addr")),
            dst_port=_int(dst.get("port")),
            proto=proto_of(dst.get("proto", src.get("proto", "TCP"))),
            ip_version=_int(dst.get("version", 4)) or 4,
            src_peer=_peer(src),
            dst_peer=_peer(dst),
            error=_str(record.get("error")),
        )

    def dns_event(self, record: Record, node: str) -> DnsEvent:
        qr = record.get("qr")
        is_response = qr == "R" or record.get("qr_raw") is True or (isinstance(qr, int) and qr == 1)
        qtype = qtype_of(record.get("qtype"))
        addresses = _str(record.get("addresses"))
        dst = _obj(record, "dst")
        return DnsEvent(
            timestamp_ns=timestamp_ns(record),
            container=self.container(record, node),
            process=self.process(record),
            name=_str(record.get("name")).rstrip(".").lower(),
            is_response=is_response,
            qtype=qtype,
            rcode=_str(record.get("rcode")) if isinstance(record.get("rcode"), str) else "",
            addresses=tuple(a for a in addresses.split(",") if a),
            nameserver=_str(_obj(record, "nameserver").get("addr")),
            dst_addr=_str(dst.get("addr")),
            dst_port=_int(dst.get("port")),
        )

    def capability_event(self, record: Record, node: str) -> CapabilityEvent:
        return CapabilityEvent(
            timestamp_ns=timestamp_ns(record),
            container=self.container(record, node),
            process=self.process(record),
            capability=_str(record.get("cap")),
            syscall=_str(record.get("syscall")),
            capable=bool(record.get("capable", True)),
            audit=_int(record.get("audit", 1)),
        )

    def syscalls_event(
        self, record: Record, *, node: str, window_start_ns: int, window_end_ns: int
    ) -> SyscallsEvent:
        """One advise_seccomp `syscalls` element (a container's per-syscall byte array)."""
        used = record.get("syscalls")
        names = frozenset(
            syscall_name(i) for i, v in enumerate(used if isinstance(used, list) else ()) if v
        )
        return SyscallsEvent(
            timestamp_ns=window_end_ns,
            container=self.container(record, node),
            process=Process(),
            syscalls=names,
            window_start_ns=window_start_ns,
            window_end_ns=window_end_ns,
        )


def tcp_type_of(kind: Any, raw: Any) -> TcpEventType:
    """trace_tcp's `type` ("connect", ...), else its numeric `type_raw` (or numeric `type`)."""
    if isinstance(kind, str) and kind in _TCP_TYPE_NAMES:
        return TcpEventType(kind)
    return _TCP_TYPES.get(_int(raw), TcpEventType.CONNECT)


def qtype_of(qtype: Any) -> str:
    if isinstance(qtype, str):
        return qtype
    return _QTYPES.get(_int(qtype), str(_int(qtype)) if qtype is not None else "")


def flag_names_of(flags: Any) -> tuple[str, ...]:
    """IG's "O_RDONLY|O_CLOEXEC" as a tuple of names."""
    return tuple(f for f in flags.split("|") if f) if isinstance(flags, str) else ()


def peer_of(k8s: Mapping[str, Any]) -> PeerIdentity:
    """An endpoint's KubeIPResolver `k8s` object (empty: no identity)."""
    if not k8s:
        return PeerIdentity()
    return PeerIdentity(
        kind=_str(k8s.get("kind")),
        name=_str(k8s.get("name")),
        namespace=_str(k8s.get("namespace")),
        labels=parse_labels(k8s.get("labels")),
    )


def proto_of(value: Any) -> str:
    if isinstance(value, str):
        return value.upper() or "TCP"
    return _PROTOS.get(_int(value), f"proto#{_int(value)}")


def _peer(endpoint: Mapping[str, Any]) -> PeerIdentity:
    return peer_of(_obj(endpoint, "k8s"))
