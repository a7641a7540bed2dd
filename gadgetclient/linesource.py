"""`LineSource`: IG's JSON output read live from a stream, as a source of typed events.

`kubectl gadget run trace_exec -o json … | gadgetwatch run --events -` (or `ig run … -o json`):
each line is one payload as IG prints it, or a capture line (`docs/capture-format.md`) that
names its gadget. Plain lines do not say which gadget printed them, so the gadget comes from
`--gadget`. Lines are mapped to the same typed events as the binary path (`mapping.py`) and
handed on as they arrive, one line at a time, never held until EOF.

Bad input never stops the stream: a line that is not JSON, not an object/array, too long, or of
a shape no gadget prints is counted (`DropReason.BAD_LINE` / `UNMAPPABLE`, by gadget), logged
with its line number and kept in `bad_lines` (the first `MAX_BAD_LINES`) for the run's summary.
EOF ends `run()` normally: the agent then shuts down cleanly and flushes, as after a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import orjson
import structlog

from gadgetclient.capture import HEADER_KEY, MAIN_DATASOURCE, POD_KEY
from gadgetclient.events import Event
from gadgetclient.instances import SeqState
from gadgetclient.mapping import RecordMapper
from gadgetclient.stats import DropReason, LossReason, StreamStats

log = structlog.get_logger(__name__)

#: Longest line accepted (bytes): IG's largest single payloads (advise_seccomp's syscall lists,
#: trace_dns with its raw data) stay far below 1 MiB; 16 MiB bounds a hostile or broken writer.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Bad line numbers kept for the summary; more are only counted.
MAX_BAD_LINES = 100
#: Gadget label of lines whose gadget is unknown (no `gadget` field and no `--gadget`).
UNKNOWN_GADGET = "unknown"

OnBatch = Callable[[Sequence[Event]], None]
_LOST = re.compile(r"lost (\d+) samples")


class LineSource:
    """Typed events from JSON lines on a stream; `run()` returns at EOF."""

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        gadget: str = "",
        stats: StreamStats | None = None,
        name: str = "stdin",
        reader: asyncio.StreamReader | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.stream = stream if stream is not None or reader is not None else sys.stdin.buffer
        self.reader = reader
        self.gadget = gadget
        self.name = name
        self.stats = stats if stats is not None else StreamStats()
        self._mapper = RecordMapper(stats=self.stats)
        self._wall_clock_ns = wall_clock_ns
        self._latest_ns = 0
        self._stopping = asyncio.Event()
        #: (line number, reason) of the first bad lines.
        self.bad_lines: list[tuple[int, str]] = []
        self.lines = 0
        #: Set once reading started (the agent's readiness).
        self.ready = asyncio.Event()
        self.param_plans: dict[str, Any] = {}
        self.seq_state = SeqState(None)
        self._pump: asyncio.Future[None] | None = None

    # -- the agent's source interface ---------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready.is_set(), {"source": self.name, "lines": self.lines}

    def degraded_params(self) -> dict[str, dict[str, list[str]]]:
        return {}

    async def stop(self) -> None:
        self._stopping.set()

    async def run(
        self,
        on_batch: OnBatch | None = None,
        on_raw: Any = None,
        on_checkpoint: Any = None,
    ) -> None:
        """Read to EOF (or `stop()`), handing each line's events to `on_batch` as it arrives."""
        reader = self.reader or await self._open()
        self.ready.set()
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while True:
                read = asyncio.create_task(reader.readline())
                await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
                    return
                try:
                    raw = read.result()
                except ValueError:  # longer than MAX_LINE_BYTES: asyncio dropped it
                    self.lines += 1
                    self._bad("line too long", self.gadget or UNKNOWN_GADGET)
                    continue
                if not raw:
                    log.info("event stream ended", source=self.name, lines=self.lines)
                    return
                self.lines += 1
                events = self._line(raw)
                if events and on_batch is not None:
                    on_batch(events)
        finally:
            stopping.cancel()

    # -- reading ------------------------------------------------------------------------------

    async def _open(self) -> asyncio.StreamReader:
        """A StreamReader over the stream: a pipe, socket or tty is read by the event loop; a
        regular file (`< file`) or another device, which the loop cannot watch, is fed from a
        thread (they never block for long)."""
        assert self.stream is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        mode = os.fstat(self.stream.fileno()).st_mode
        # Character devices other than terminals (/dev/null) cannot be watched by epoll.
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(self.stream.fileno()):
            protocol = asyncio.StreamReaderProtocol(reader)
            await loop.connect_read_pipe(lambda: protocol, self.stream)
            return reader
        stream = self.stream

        def pump() -> None:
            while chunk := stream.read(1 << 16):
                loop.call_soon_threadsafe(reader.feed_data, chunk)
            loop.call_soon_threadsafe(reader.feed_eof)

        self._pump = loop.run_in_executor(None, pump)
        return reader

    def _bad(self, reason: str, gadget: str) -> None:
        self.stats.dropped[(gadget, DropReason.BAD_LINE)] += 1
        if len(self.bad_lines) < MAX_BAD_LINES:
            self.bad_lines.append((self.lines, reason))
        log.error("bad event line", source=self.name, line=self.lines, reason=reason)

    def _line(self, raw: bytes) -> list[Event]:
        fallback = self.gadget or UNKNOWN_GADGET
        if not raw.strip():
            return []
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._bad(f"not JSON: {exc}", fallback)
            return []
        if isinstance(value, dict) and (HEADER_KEY in value or POD_KEY in value):
            return []  # capture header / pod record: nothing to process live
        if isinstance(value, dict) and "log" in value and "gadget" in value:
            # A capture's IG log line: its "lost N samples" is a loss like on the gRPC path.
            body = value["log"]
            message = body.get("message") if isinstance(body, dict) else None
            m = _LOST.search(message) if isinstance(message, str) else None
            if m and isinstance(value["gadget"], str):
                self.stats.lost[(value["gadget"], LossReason.LOST_SAMPLES)] += int(m[1])
            return []
        if isinstance(value, dict) and "gadget" in value and "data" in value:
            gadget, ds, node, data = (
                value.get("gadget"),
                value.get("datasource"),
                value.get("node") or "",
                value["data"],
            )
            if not isinstance(gadget, str) or not gadget:
                self._bad("`gadget` must be a name", fallback)
                return []
            ds = ds or MAIN_DATASOURCE.get(gadget, "")
        elif self.gadget:
            gadget, ds, node, data = self.gadget, MAIN_DATASOURCE.get(self.gadget, ""), "", value
        else:
            self._bad("the line names no gadget; give --gadget", fallback)
            return []
        if not isinstance(ds, str) or not isinstance(node, str):
            self._bad("`datasource` and `node` must be strings", gadget)
            return []
        if not isinstance(data, dict | list):
            self._bad("expected a JSON object or array", gadget)
            return []
        self.stats.received[gadget] += 1
        records = data if isinstance(data, list) else [data]
        out: list[Event] = []
        for record in records:
            if not isinstance(record, dict):
                self._bad("array element is not an object", gadget)
                continue
            self.stats.decoded[gadget] += 1
            try:
                if ds == "syscalls":
                    # advise_seccomp's flush: the window is what the stream has covered so far.
                    now = self._latest_ns or self._wall_clock_ns()
                    event: Event | None = self._mapper.syscalls_event(
                        record, node=node, window_start_ns=now, window_end_ns=now
                    )
                else:
                    event = self._mapper.map(ds, record, node)
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                self.stats.dropped[(gadget, DropReason.UNMAPPABLE)] += 1
                if len(self.bad_lines) < MAX_BAD_LINES:
                    self.bad_lines.append((self.lines, f"unmappable: {exc}"))
                log.error("bad event line", source=self.name, line=self.lines, reason=str(exc))
                continue
            if event is None:
                continue
            self._latest_ns = max(self._latest_ns, event.timestamp_ns)
            out.append(event)
        return out


__all__ = ["LineSource"]
