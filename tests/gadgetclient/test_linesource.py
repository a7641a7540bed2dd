"""`LineSource`: `ig run -o json` / `kubectl gadget run -o json` piped in live.

The writer is a real subprocess whose stdout is the source's pipe. It writes one line each time
the test sends it a byte on its stdin, so the test knows a line's event was delivered while the
writer was still waiting for the go to write the next: processed as it arrives, not at EOF.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gadgetclient.events import Event, ExecEvent
from gadgetclient.linesource import LineSource
from gadgetclient.stats import DropReason
from tests.gadgetclient.conftest import sample_lines

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")

WRITER = """
import sys
lines = sys.argv[1:]
for line in lines:
    if not sys.stdin.buffer.read(1):
        break
    sys.stdout.buffer.write(line.encode() + b"\\n")
    sys.stdout.buffer.flush()
"""


def _exec_line(i: int) -> str:
    data = copy.deepcopy(EXEC)
    data["args"] = f"/usr/bin/sleep\u00a0{i}"
    return json.dumps(data)


class _Sink:
    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.changed = asyncio.Event()

    def __call__(self, batch: Sequence[Event]) -> None:
        for e in batch:
            assert isinstance(e, ExecEvent)
            self.numbers.append(int(e.args[1]))
        self.changed.set()

    async def until(self, n: int) -> None:
        while len(self.numbers) < n:
            self.changed.clear()
            await self.changed.wait()


async def test_a_slow_pipe_is_processed_line_by_line_bad_lines_counted_eof_ends() -> None:
    lines = [
        _exec_line(1),
        "{not json",
        _exec_line(2),
        '"a string"',
        json.dumps(
            {"gadget": "trace_exec", "datasource": "exec", "data": json.loads(_exec_line(3))}
        ),
        "",
        json.dumps({"gadget": 7, "data": {}}),
        _exec_line(4),
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        *lines,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    sink = _Sink()
    source = LineSource(reader=proc.stdout, gadget="trace_exec")
    task = asyncio.create_task(source.run(sink))
    try:
        expected = 0
        for line in lines:
            proc.stdin.write(b"g")  # let exactly one more line through
            await proc.stdin.drain()
            if line.startswith("{") and "sleep" in line:
                expected += 1
                # Delivered while the writer is blocked before the next line: live, not at EOF.
                await sink.until(expected)
                assert not task.done()
        assert sink.numbers == [1, 2, 3, 4]
        proc.stdin.close()  # the writer exits: EOF on the pipe ends the source cleanly
        await task
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert source.lines == len(lines)
    assert source.stats.dropped[("trace_exec", DropReason.BAD_LINE)] == 3
    assert [n for n, _ in source.bad_lines] == [2, 4, 7]
    assert "not JSON" in source.bad_lines[0][1]


async def test_lines_without_a_gadget_need_the_flag() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(_exec_line(1).encode() + b"\n")
    reader.feed_eof()
    sink = _Sink()
    source = LineSource(reader=reader)
    await source.run(sink)
    assert sink.numbers == []
    assert source.bad_lines == [(1, "the line names no gadget; give --gadget")]


async def test_stop_ends_a_stream_that_never_ends() -> None:
    reader = asyncio.StreamReader()
    source = LineSource(reader=reader, gadget="trace_exec")
    task = asyncio.create_task(source.run(_Sink()))
    await source.ready.wait()
    await source.stop()
    await task
    assert source.lines == 0


async def test_a_regular_file_and_dev_null_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    path.write_text(_exec_line(1) + "\n" + _exec_line(2) + "\n")
    for name in (path, Path(os.devnull)):
        sink = _Sink()
        with name.open("rb") as f:
            await LineSource(f, gadget="trace_exec").run(sink)
        assert sink.numbers == ([1, 2] if name == path else [])


async def test_capture_records_that_are_not_events_are_taken_as_such() -> None:
    reader = asyncio.StreamReader()
    for value in (
        {"gadgetwatchCapture": 2},
        {"gadgetwatchPod": 1, "namespace": "shop", "name": "web-1"},
        {"gadget": "trace_exec", "log": {"severity": "warning", "message": "lost 3 samples"}},
        {"gadget": "trace_exec", "datasource": "exec", "data": json.loads(_exec_line(1))},
    ):
        reader.feed_data(json.dumps(value).encode() + b"\n")
    reader.feed_eof()
    sink = _Sink()
    source = LineSource(reader=reader)
    await source.run(sink)
    assert sink.numbers == [1]
    assert source.bad_lines == []
    assert source.stats.lost == {("trace_exec", "lost_samples"): 3}
