"""Captures carry IG's losses: `seq` jumps and "lost N samples" log events, recorded, replayed
in place and accounted by the client exactly as on a live stream (capture format version 2)."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from gadgetclient.capture import (
    CAPTURE_VERSION,
    Capture,
    CaptureLine,
    CaptureLog,
    CaptureWriter,
    parse_capture,
    read_capture,
)
from gadgetclient.errors import CaptureError
from gadgetclient.source import GadgetSource, RawLog, RawRecord
from gadgetclient.stats import LossReason
from tests.gadgetclient.conftest import settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webshop-intrusion.capture.jsonl"


def _template(gadget: str) -> CaptureLine:
    return next(line for line in read_capture(EXAMPLE).lines if line.gadget == gadget)


def _lines(gadget: str, seqs: list[int], node: str = "") -> list[CaptureLine]:
    base = _template(gadget)
    out = []
    for i, seq in enumerate(seqs):
        data = copy.deepcopy(base.data)
        data["timestamp_raw"] = base.data["timestamp_raw"] + i
        out.append(CaptureLine(gadget, base.datasource, node, data, seq))
    return out


def _lossy_capture() -> Capture:
    """trace_exec lost 2 payloads (3, 4) and then 10 (8..17); trace_open logged a loss twice,
    once before its payloads and once after the last; a third gadget only lost samples."""
    execs = _lines("trace_exec", [1, 2, 5, 6, 7, 18])
    opens = _lines("trace_open", [1, 2, 3])
    lines = (
        execs[0],
        opens[0],
        execs[1],
        execs[2],
        opens[1],
        execs[3],
        execs[4],
        opens[2],
        execs[5],
    )
    logs = (
        CaptureLog("trace_open", "", "warning", "lost 7 samples", before=1),
        CaptureLog("trace_exec", "", "error", "lost 5 samples", before=3),
        CaptureLog("trace_open", "", "warning", "lost 1 samples", before=len(lines)),
        CaptureLog("trace_dns", "", "warning", "lost 3 samples", before=len(lines)),
    )
    return Capture(lines=tuple(lines), logs=logs)


def _write(capture: Capture, path: Path) -> Path:
    with path.open("wb") as out:
        CaptureWriter(out, header={"generator": "test"}).write_all(capture.lines, capture.logs)
    return path


# -- the format ---------------------------------------------------------------------------------


def test_writer_and_reader_keep_seq_and_log_lines_in_place(tmp_path: Path) -> None:
    capture = _lossy_capture()
    path = _write(capture, tmp_path / "lossy.jsonl")
    text = path.read_text().splitlines()
    assert orjson.loads(text[0])["gadgetwatchCapture"] == CAPTURE_VERSION == 2
    # The log line sits where it was received: after the first event line.
    assert orjson.loads(text[2]) == {
        "gadget": "trace_open",
        "node": "",
        "log": {"severity": "warning", "message": "lost 7 samples"},
    }
    back = read_capture(path)
    assert [line.seq for line in back.lines] == [line.seq for line in capture.lines]
    assert back.logs == capture.logs


def test_version_1_captures_still_read(tmp_path: Path) -> None:
    line = _template("trace_exec")
    text = orjson.dumps({"gadgetwatchCapture": 1}).decode() + "\n"
    text += orjson.dumps({"gadget": "trace_exec", "datasource": "exec", "data": line.data}).decode()
    capture = parse_capture(text)
    assert capture.lines[0].seq == 0
    assert capture.logs == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"gadget":"trace_exec","datasource":"exec","seq":-1,"data":{}}', "`seq` must be"),
        ('{"gadget":"trace_exec","datasource":"exec","seq":"7","data":{}}', "`seq` must be"),
        ('{"gadget":"trace_exec","datasource":"exec","seq":true,"data":{}}', "`seq` must be"),
        ('{"gadget":"trace_exec","log":{"severity":"loud","message":"x"}}', "`log.severity`"),
        ('{"gadget":"trace_exec","log":{"severity":"warning","message":7}}', "`log.message`"),
        ('{"gadget":"trace_exec","log":"lost 3 samples"}', "`log` must be an object"),
        ('{"gadgetwatchCapture":3}', "version 3 is not supported"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_line_names_file_and_line(line: str, message: str) -> None:
    first = '{"gadget":"trace_exec","datasource":"exec","data":{}}\n'
    text = "" if "Capture" in line else first
    with pytest.raises(CaptureError) as info:
        parse_capture(text + line + "\n", name="cap.jsonl")
    assert message in info.value.message
    assert info.value.where == f"cap.jsonl:{2 if text else 1}"


# -- replayed and accounted ---------------------------------------------------------------------


async def _run(address: str, gadgets: tuple[str, ...]) -> tuple[GadgetSource, list[Any]]:
    source = GadgetSource(settings_for(address, gadgets))
    raws: list[RawRecord] = []
    logs: list[RawLog] = []
    await asyncio.wait_for(source.run(on_raw=raws.append, on_log=logs.append), 30)
    return source, [*raws, *logs]


@pytest.mark.parametrize("ordered", [True, False])
async def test_replay_reproduces_gaps_and_log_events_and_the_client_counts_them(
    replay_factory: Any, sock_path: Path, ordered: bool
) -> None:
    capture = _lossy_capture()
    _, address = await replay_factory(capture, listen=f"unix://{sock_path}", ordered=ordered)
    source, got = await _run(address, ("trace_exec", "trace_open", "trace_dns"))
    lost = source.stats.lost
    # Exactly what a live stream with these gaps and log events makes the client count.
    assert lost[("trace_exec", LossReason.SEQ_GAP)] == 2 + 10
    assert lost[("trace_exec", LossReason.LOST_SAMPLES)] == 5
    assert lost[("trace_open", LossReason.LOST_SAMPLES)] == 7 + 1
    assert lost[("trace_dns", LossReason.LOST_SAMPLES)] == 3
    assert ("trace_open", LossReason.SEQ_GAP) not in lost
    raws = [r for r in got if isinstance(r, RawRecord)]
    assert [r.seq for r in raws if r.gadget == "trace_exec"] == [1, 2, 5, 6, 7, 18]
    assert [r.seq for r in raws if r.gadget == "trace_open"] == [1, 2, 3]
    losses = [(r.gadget, r.severity, r.message) for r in got if isinstance(r, RawLog)]
    assert sorted(m for m in losses if "lost" in m[2]) == sorted(
        [
            ("trace_exec", "error", "lost 5 samples"),
            ("trace_open", "warning", "lost 7 samples"),
            ("trace_open", "warning", "lost 1 samples"),
            ("trace_dns", "warning", "lost 3 samples"),
        ]
    )


async def test_a_log_event_is_replayed_before_the_next_payload_of_its_gadget(
    replay_factory: Any, sock_path: Path
) -> None:
    capture = _lossy_capture()
    _, address = await replay_factory(capture, listen=f"unix://{sock_path}")
    order: list[str] = []

    def on_raw(record: RawRecord) -> None:
        if record.gadget == "trace_exec":
            order.append(f"seq {record.seq}")

    def on_log(entry: RawLog) -> None:
        if entry.gadget == "trace_exec" and "lost" in entry.message:
            order.append(entry.message)

    source = GadgetSource(settings_for(address, ("trace_exec", "trace_open", "trace_dns")))
    await asyncio.wait_for(source.run(on_raw=on_raw, on_log=on_log), 30)
    assert order == ["seq 1", "seq 2", "lost 5 samples", "seq 5", "seq 6", "seq 7", "seq 18"]


async def test_record_of_a_lossy_replay_reproduces_the_capture(
    replay_factory: Any, sock_path: Path, tmp_path: Path
) -> None:
    original = _lossy_capture()
    _, address = await replay_factory(original, listen=f"unix://{sock_path}")
    out = tmp_path / "recorded.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gadgetwatch", "record", "--target", address,
        "--gadget", "trace_exec,trace_open,trace_dns", "-o", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    recorded = read_capture(out)
    assert recorded.header["gadgetwatchCapture"] == CAPTURE_VERSION
    by_gadget = {
        g: [line.seq for line in recorded.lines if line.gadget == g]
        for g in ("trace_exec", "trace_open")
    }
    assert by_gadget == {"trace_exec": [1, 2, 5, 6, 7, 18], "trace_open": [1, 2, 3]}
    lost = sorted((e.gadget, e.message) for e in recorded.logs if "lost" in e.message)
    assert lost == sorted(
        [
            ("trace_exec", "lost 5 samples"),
            ("trace_open", "lost 7 samples"),
            ("trace_open", "lost 1 samples"),
            ("trace_dns", "lost 3 samples"),
        ]
    )
    # The recorded log event sits between the payloads it came between on its stream.
    exec_index = [i for i, line in enumerate(recorded.lines) if line.gadget == "trace_exec"]
    loss = next(e for e in recorded.logs if e.message == "lost 5 samples")
    assert exec_index[1] < loss.before <= exec_index[2]


def test_run_replay_of_a_bad_capture_ends_with_one_line(tmp_path: Path) -> None:
    good = orjson.dumps(
        {"gadget": "trace_exec", "datasource": "exec", "data": _template("trace_exec").data}
    ).decode()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f"{good}\n{good}\n" + '{"gadget":"trace_exec","log":{"severity":"x"}}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "gadgetwatch", "run", "--replay", str(bad), "--profiles-dir",
         str(tmp_path / "p")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"gadgetwatch run: {bad}:3: `log.severity` must be one of"), lines
    assert "Traceback" not in proc.stderr


async def test_records_the_run_filters_out_make_no_gap(
    replay_factory: Any, sock_path: Path
) -> None:
    """IG numbers only what it sends: a failed exec that `ignore-failed=true` filters out was
    never given a `seq`, so replaying it filtered must not show a gap; a real jump still does."""
    execs = _lines("trace_exec", [1, 2, 3, 7])
    failed = copy.deepcopy(execs[1].data)
    failed.update(error="ENOENT", error_raw=2)
    lines = (execs[0], CaptureLine("trace_exec", "exec", "", failed, 2), execs[2], execs[3])
    _, address = await replay_factory(Capture(lines=lines), listen=f"unix://{sock_path}")
    params = {"operator.oci.ebpf.ignore-failed": "true"}
    source = GadgetSource(settings_for(address, ("trace_exec",), params=params))
    raws: list[RawRecord] = []
    await asyncio.wait_for(source.run(on_raw=raws.append), 30)
    assert [r.data["error_raw"] for r in raws] == [0, 0, 0]
    assert source.stats.lost[("trace_exec", LossReason.SEQ_GAP)] == 3  # 4, 5, 6 only
