"""The capture format: recorded IG events as JSON lines (see docs/capture-format.md).

Each line is `{"gadget": "trace_exec", "datasource": "exec", "node": "...", "seq": 7, "data": ...}`
where `data` is exactly what `ig run <gadget> -o json` prints for one payload: an object for a
Single data source, an array for an Array one, and `seq` is the payload's `GadgetEvent.seq` on
its stream (format version 2; optional, so version-1 captures read unchanged). IG's log events
("lost 12 samples") are lines of their own kind, `{"gadget": ..., "node": ..., "log":
{"severity": "warning", "message": ...}}`, kept at the position IG sent them: with the `seq`
gaps they are how IG tells a client it lost events, so a replay must be able to say it too.
An optional first line `{"gadgetwatchCapture": 2, ...}` carries metadata (the IG version
recorded from, the target, the start time).
Pod records (`{"gadgetwatchPod": 1, ...}`, anywhere in the file) carry what IG does not: a
pod's labels, annotations, owner and the volume mounts of its containers, so a replay can
exercise rules that need them (R0002 ``ignoreMounts``, R1004) without a cluster;
`CapturePodMetadata` serves them to the profiler and the detector. Each record kind has its own
key and version, so readers skip kinds they do not know only by choice, never by accident.

`read_capture` also accepts a plain `ig run <gadget> -o json` (or `-o jsonpretty`) file when the
gadget is named: every top-level value is one payload of that gadget's main data source.
Bad lines raise `CaptureError` naming `file:line`: a capture is an input the user gave, so a
broken one is reported, not half-read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from gadgetclient.errors import CaptureError
from gadgetclient.layouts import SEVERITIES

#: Version 2 added `seq` on event lines and log lines (IG's losses); version 1 had neither.
CAPTURE_VERSION = 2
#: Versions this reader understands (a newer capture may hold records it would drop silently).
READABLE_VERSIONS = frozenset({1, 2})
HEADER_KEY = "gadgetwatchCapture"
#: IG's `GadgetEvent.seq` is a uint32.
_MAX_SEQ = 2**32 - 1
#: Pod-metadata side records: their key and format version.
POD_KEY = "gadgetwatchPod"
POD_VERSION = 1
_POD_FIELDS = frozenset(
    {POD_KEY, "namespace", "name", "labels", "annotations", "owner", "topOwner", "mounts", "podIP"}
)

#: The data source a plain `ig run <gadget> -o json` file holds, per gadget.
MAIN_DATASOURCE: dict[str, str] = {
    "trace_exec": "exec",
    "trace_open": "open",
    "trace_tcp": "tracetcp",
    "trace_dns": "dns",
    "trace_capabilities": "capabilities",
    "trace_bind": "bind",
    "trace_signal": "signal",
    "advise_seccomp": "syscalls",
}


@dataclass(frozen=True, slots=True)
class CaptureLine:
    gadget: str
    datasource: str
    node: str
    data: Any
    #: The payload's `GadgetEvent.seq` on its stream; 0 when the capture did not record it.
    seq: int = 0

    @property
    def is_array(self) -> bool:
        return isinstance(self.data, list)


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What a capture knows about one pod beyond IG's enrichment."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: The controller owner (kind, name) as IG reports it (a ReplicaSet), or None.
    owner: tuple[str, str] | None = None
    #: The top-level owner (kind, name) (the Deployment), or None to derive it.
    top_owner: tuple[str, str] | None = None
    #: Volume mount paths per container name (service-account token mount excluded).
    mounts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The pod's IP (`status.podIP`), "" when unknown (argument generalisation uses it).
    pod_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            POD_KEY: POD_VERSION,
            "namespace": self.namespace,
            "name": self.name,
            "labels": dict(sorted(self.labels.items())),
        }
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.owner is not None:
            out["owner"] = {"kind": self.owner[0], "name": self.owner[1]}
        if self.top_owner is not None:
            out["topOwner"] = {"kind": self.top_owner[0], "name": self.top_owner[1]}
        out["mounts"] = {c: list(m) for c, m in sorted(self.mounts.items())}
        if self.pod_ip:
            out["podIP"] = self.pod_ip
        return out


@dataclass(frozen=True, slots=True)
class CaptureLog:
    """One IG log event of a gadget's stream (e.g. "lost 12 samples")."""

    gadget: str
    node: str
    #: IG's severity name (`layouts.SEVERITIES`: "error", "warning", "info", ...).
    severity: str
    message: str
    #: Index in `Capture.lines` of the first event line after it: where it was received.
    before: int

    @property
    def level(self) -> int:
        """IG's numeric log level (the `GadgetEvent.type >> 16` it was sent with)."""
        return SEVERITIES.index(self.severity)


@dataclass(frozen=True, slots=True)
class Capture:
    lines: tuple[CaptureLine, ...]
    header: dict[str, Any] = field(default_factory=dict)
    logs: tuple[CaptureLog, ...] = ()
    #: Pod-metadata side records, in file order (a later record of the same pod replaces it).
    pods: tuple[PodRecord, ...] = ()

    def gadgets(self) -> list[str]:
        return sorted({line.gadget for line in self.lines})


def _values(text: str, name: str) -> Iterator[tuple[int, Any]]:
    """Top-level JSON values of a JSON-lines or concatenated pretty-JSON text, with line numbers."""
    decoder = json.JSONDecoder()
    i, n = 0, len(text)
    line, counted = 1, 0  # line number of offset `counted`, advanced incrementally
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return
        line += text.count("\n", counted, i)
        counted = i
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise CaptureError(f"not JSON: {exc.msg}", where=f"{name}:{line}") from exc
        except RecursionError as exc:
            # The decoder recurses once per nesting level; IG's payloads nest a few levels.
            raise CaptureError("not JSON: nested too deeply", where=f"{name}:{line}") from exc
        yield line, value


def parse_capture(text: str, *, gadget: str | None = None, name: str = "capture") -> Capture:
    """Parse capture text (or plain `ig run -o json` output when `gadget` is given)."""
    header: dict[str, Any] = {}
    lines: list[CaptureLine] = []
    logs: list[CaptureLog] = []
    pods: list[PodRecord] = []
    for lineno, value in _values(text, name):
        where = f"{name}:{lineno}"
        if isinstance(value, dict) and HEADER_KEY in value:
            if lines or header or logs or pods:
                raise CaptureError("header must be the first line", where=where)
            version = value[HEADER_KEY]
            if version not in READABLE_VERSIONS or isinstance(version, bool):
                known = ", ".join(str(v) for v in sorted(READABLE_VERSIONS))
                raise CaptureError(
                    f"capture format version {version!r} is not supported (readable: {known})",
                    where=where,
                )
            header = value
            continue
        if isinstance(value, dict) and POD_KEY in value:
            pods.append(parse_pod_record(value, where=where))
            continue
        if isinstance(value, dict) and "log" in value and "gadget" in value:
            logs.append(_log_line(value, before=len(lines), where=where))
            continue
        if isinstance(value, dict) and "data" in value and "gadget" in value:
            data = value["data"]
            if not isinstance(data, dict | list):
                raise CaptureError("`data` must be an object or an array", where=where)
            g = value["gadget"]
            ds = value.get("datasource") or MAIN_DATASOURCE.get(str(g), "")
            if not isinstance(g, str) or not g or not isinstance(ds, str) or not ds:
                raise CaptureError("`gadget` and `datasource` must be names", where=where)
            node = value.get("node") or ""
            seq = value.get("seq", 0)
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _MAX_SEQ:
                raise CaptureError(f"`seq` must be an integer 0..{_MAX_SEQ}", where=where)
            lines.append(CaptureLine(g, ds, str(node), data, seq))
            continue
        if gadget is None:
            raise CaptureError(
                "not a capture line; for plain `ig run -o json` output name the gadget",
                where=where,
            )
        if not isinstance(value, dict | list):
            raise CaptureError("expected a JSON object or array", where=where)
        ds = MAIN_DATASOURCE.get(gadget, gadget.removeprefix("trace_"))
        lines.append(CaptureLine(gadget, ds, "", value))
    return Capture(lines=tuple(lines), header=header, logs=tuple(logs), pods=tuple(pods))


def _log_line(value: dict[str, Any], *, before: int, where: str) -> CaptureLog:
    g = value["gadget"]
    if not isinstance(g, str) or not g:
        raise CaptureError("`gadget` must be a name", where=where)
    body = value["log"]
    if not isinstance(body, dict):
        raise CaptureError("`log` must be an object with `severity` and `message`", where=where)
    severity, message = body.get("severity"), body.get("message")
    if severity not in SEVERITIES:
        raise CaptureError(
            f"`log.severity` must be one of {', '.join(SEVERITIES)}, got {severity!r}", where=where
        )
    if not isinstance(message, str):
        raise CaptureError("`log.message` must be a string", where=where)
    node = value.get("node") or ""
    return CaptureLog(g, str(node), str(severity), message, before)


def _text(value: Any, what: str, where: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise CaptureError(f"pod record: `{what}` must be a non-empty string", where=where)
    return value


def _string_map(value: Any, what: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise CaptureError(f"pod record: `{what}` must map strings to strings", where=where)
    return dict(value)


def _ref(value: Any, what: str, where: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"kind", "name"}:
        raise CaptureError(f"pod record: `{what}` must be {{kind, name}}", where=where)
    return (
        _text(value.get("kind"), f"{what}.kind", where, required=True),
        _text(value.get("name"), f"{what}.name", where, required=True),
    )


def parse_pod_record(value: dict[str, Any], *, where: str) -> PodRecord:
    """A validated pod record; every problem is a `CaptureError` naming the line."""
    version = value.get(POD_KEY)
    if version != POD_VERSION:
        raise CaptureError(
            f"pod record version {version!r} not supported (this reader knows {POD_VERSION})",
            where=where,
        )
    unknown = sorted(set(value) - _POD_FIELDS)
    if unknown:
        raise CaptureError(f"pod record: unknown field {unknown[0]!r}", where=where)
    mounts_raw = value.get("mounts") or {}
    if not isinstance(mounts_raw, dict):
        raise CaptureError("pod record: `mounts` must map container names to lists", where=where)
    mounts: dict[str, tuple[str, ...]] = {}
    for container, paths in mounts_raw.items():
        if not isinstance(paths, list) or not all(
            isinstance(p, str) and p.startswith("/") for p in paths
        ):
            raise CaptureError(
                f"pod record: `mounts.{container}` must list absolute paths", where=where
            )
        mounts[str(container)] = tuple(paths)
    return PodRecord(
        namespace=_text(value.get("namespace"), "namespace", where),
        name=_text(value.get("name"), "name", where, required=True),
        labels=_string_map(value.get("labels"), "labels", where),
        annotations=_string_map(value.get("annotations"), "annotations", where),
        owner=_ref(value.get("owner"), "owner", where),
        top_owner=_ref(value.get("topOwner"), "topOwner", where),
        mounts=mounts,
        pod_ip=_text(value.get("podIP"), "podIP", where),
    )


class CapturePodMetadata:
    """`profiler.identity.PodMetadata` served from a capture's pod records (offline replay).

    Owners: a record's ``topOwner`` is used when given; otherwise a ReplicaSet whose name is
    ``<deployment>-<pod-template-hash>`` (the hash from the pod's labels) resolves to its
    Deployment, as the pod cache's heuristic does, and any other owner resolves to itself.
    """

    def __init__(self, pods: Sequence[PodRecord]) -> None:
        self._pods = {(p.namespace, p.name): p for p in pods}
        self._owners: dict[tuple[str, str, str], tuple[str, str]] = {}
        for p in pods:
            if p.owner is None:
                continue
            top = p.top_owner
            if top is None and p.owner[0] == "ReplicaSet":
                pth = p.labels.get("pod-template-hash", "")
                if pth and p.owner[1].endswith("-" + pth):
                    top = ("Deployment", p.owner[1][: -len(pth) - 1])
            if top is not None:
                self._owners[(p.namespace, *p.owner)] = top

    def __len__(self) -> int:
        return len(self._pods)

    def top_owner(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        return self._owners.get((namespace, kind, name), (kind, name))

    def annotations(self, namespace: str, pod: str) -> Mapping[str, str]:
        record = self._pods.get((namespace, pod))
        return record.annotations if record is not None else {}

    def labels(self, namespace: str, pod: str) -> Mapping[str, str]:
        record = self._pods.get((namespace, pod))
        return record.labels if record is not None else {}

    def volume_mounts(self, namespace: str, pod: str, container: str) -> Sequence[str]:
        record = self._pods.get((namespace, pod))
        return record.mounts.get(container, ()) if record is not None else ()

    def pod_ip(self, namespace: str, pod: str) -> str:
        record = self._pods.get((namespace, pod))
        return record.pod_ip if record is not None else ""


def read_capture(path: str | Path, *, gadget: str | None = None) -> Capture:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureError(f"cannot read capture: {exc}", where=str(p)) from exc
    return parse_capture(text, gadget=gadget, name=str(p))


def encode_line(gadget: str, datasource: str, node: str, data: Any, seq: int = 0) -> bytes:
    """One capture line (with its newline); `data` keeps the decoder's key order."""
    line: dict[str, Any] = {"gadget": gadget, "datasource": datasource, "node": node}
    if seq:
        line["seq"] = seq
    line["data"] = data
    return orjson.dumps(line) + b"\n"


def encode_log(gadget: str, node: str, severity: str, message: str) -> bytes:
    """One log line (with its newline)."""
    body = {"severity": severity, "message": message}
    return orjson.dumps({"gadget": gadget, "node": node, "log": body}) + b"\n"


class CaptureWriter:
    """Appends capture lines to a binary stream; the header goes first when given."""

    def __init__(self, out: IO[bytes], *, header: dict[str, Any] | None = None) -> None:
        self.out = out
        self.lines = 0
        if header is not None:
            self.out.write(orjson.dumps({HEADER_KEY: CAPTURE_VERSION, **header}) + b"\n")

    def write(self, gadget: str, datasource: str, node: str, data: Any, seq: int = 0) -> None:
        self.out.write(encode_line(gadget, datasource, node, data, seq))
        self.lines += 1

    def write_pod(self, record: PodRecord) -> None:
        """One pod-metadata side record (not an event line: `lines` is not advanced)."""
        self.out.write(orjson.dumps(record.to_json()) + b"\n")

    def write_log(self, gadget: str, node: str, severity: str, message: str) -> None:
        self.out.write(encode_log(gadget, node, severity, message))
        self.lines += 1

    def write_all(self, lines: Sequence[CaptureLine], logs: Sequence[CaptureLog] = ()) -> None:
        """Event lines with the log lines at their positions (`CaptureLog.before`)."""
        pending = sorted(logs, key=lambda entry: entry.before)
        i = 0
        for index, line in enumerate(lines):
            while i < len(pending) and pending[i].before <= index:
                self._log(pending[i])
                i += 1
            self.write(line.gadget, line.datasource, line.node, line.data, line.seq)
        for entry in pending[i:]:
            self._log(entry)

    def _log(self, entry: CaptureLog) -> None:
        self.write_log(entry.gadget, entry.node, entry.severity, entry.message)
