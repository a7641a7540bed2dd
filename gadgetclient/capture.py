"""The capture format: recorded IG events as JSON lines (see docs/capture-format.md).

Each line is `{"gadget": "trace_exec", "datasource": "exec", "node": "...", "data": ...}` where
`data` is exactly what `ig run <gadget> -o json` prints for one payload: an object for a Single
data source, an array for an Array one. An optional first line `{"gadgetwatchCapture": 1, ...}`
carries metadata (the IG version recorded from, the target, the start time).

`read_capture` also accepts a plain `ig run <gadget> -o json` (or `-o jsonpretty`) file when the
gadget is named: every top-level value is one payload of that gadget's main data source.
Bad lines raise `CaptureError` naming `file:line`: a capture is an input the user gave, so a
broken one is reported, not half-read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from gadgetclient.errors import CaptureError

CAPTURE_VERSION = 1
HEADER_KEY = "gadgetwatchCapture"

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

    @property
    def is_array(self) -> bool:
        return isinstance(self.data, list)


@dataclass(frozen=True, slots=True)
class Capture:
    lines: tuple[CaptureLine, ...]
    header: dict[str, Any] = field(default_factory=dict)

    def gadgets(self) -> list[str]:
        return sorted({line.gadget for line in self.lines})


def _values(text: str) -> Iterator[tuple[int, Any]]:
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
            raise CaptureError(f"not JSON: {exc.msg}", where=f"line {line}") from exc
        except RecursionError as exc:
            # The decoder recurses once per nesting level; IG's payloads nest a few levels.
            raise CaptureError("not JSON: nested too deeply", where=f"line {line}") from exc
        yield line, value


def parse_capture(text: str, *, gadget: str | None = None, name: str = "capture") -> Capture:
    """Parse capture text (or plain `ig run -o json` output when `gadget` is given)."""
    header: dict[str, Any] = {}
    lines: list[CaptureLine] = []
    for lineno, value in _values(text):
        where = f"{name}:{lineno}"
        if isinstance(value, dict) and HEADER_KEY in value:
            if lines or header:
                raise CaptureError("header must be the first line", where=where)
            header = value
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
            lines.append(CaptureLine(g, ds, str(node), data))
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
    return Capture(lines=tuple(lines), header=header)


def read_capture(path: str | Path, *, gadget: str | None = None) -> Capture:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureError(f"cannot read capture: {exc}", where=str(p)) from exc
    return parse_capture(text, gadget=gadget, name=str(p))


def encode_line(gadget: str, datasource: str, node: str, data: Any) -> bytes:
    """One capture line (with its newline); `data` keeps the decoder's key order."""
    return (
        orjson.dumps({"gadget": gadget, "datasource": datasource, "node": node, "data": data})
        + b"\n"
    )


class CaptureWriter:
    """Appends capture lines to a binary stream; the header goes first when given."""

    def __init__(self, out: IO[bytes], *, header: dict[str, Any] | None = None) -> None:
        self.out = out
        self.lines = 0
        if header is not None:
            self.out.write(orjson.dumps({HEADER_KEY: CAPTURE_VERSION, **header}) + b"\n")

    def write(self, gadget: str, datasource: str, node: str, data: Any) -> None:
        self.out.write(encode_line(gadget, datasource, node, data))
        self.lines += 1

    def write_all(self, lines: Sequence[CaptureLine]) -> None:
        for line in lines:
            self.write(line.gadget, line.datasource, line.node, line.data)
