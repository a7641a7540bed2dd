"""`gadgetwatch_gadget_decode_duration_seconds` is measured, sampled (issue 10, item 13)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.replay import ReplayServer
from gadgetclient.source import GadgetSource, running
from gadgetclient.streaming import DECODE_SAMPLE_EVERY
from tests.gadgetclient.conftest import sample_lines, settings_for

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")
PAYLOADS = 1000


async def test_decode_time_is_observed_for_one_payload_in_64(sock_path: Path) -> None:
    capture = Capture(tuple(CaptureLine("trace_exec", "exec", "", EXEC) for _ in range(PAYLOADS)))
    server = ReplayServer(capture, listen=f"unix://{sock_path}")
    await server.start()
    source = GadgetSource(settings_for(f"unix://{sock_path}", ("trace_exec",)))
    events: list[Any] = []
    try:
        async with running(source, on_batch=events.extend) as task:
            await asyncio.wait_for(task, 20)  # the replay ends, the stream ends
    finally:
        await server.stop(None)
    assert len(events) == PAYLOADS
    hist = source.stats.decode_seconds
    assert hist.count == 1 + (PAYLOADS - 1) // DECODE_SAMPLE_EVERY
    assert 0 < hist.sum / hist.count < 0.01  # a plausible per-event time (< 10 ms)
