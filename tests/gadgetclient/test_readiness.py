"""Readiness follows the gadget streams (issue 10, item 9): ready once every stream traces,
still ready while a stream reconnects within the grace period, not ready once it has been down
longer, ready again when it is back. Real gRPC against the replay server; the grace period is
measured on a clock the test drives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.replay import ReplayServer
from gadgetclient.source import GadgetSource, running
from tests.gadgetclient.conftest import sample_lines, settings_for

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")
#: Deadline for loopback conditions; a passing run takes milliseconds.
DEADLINE_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition (the source has no event for it), failing after `DEADLINE_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        if predicate():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_readiness_fails_after_the_grace_and_recovers(sock_path: Path) -> None:
    # 2,000 payloads at 100/s: the streams outlive the test (which takes well under a second).
    capture = Capture(tuple(CaptureLine("trace_exec", "exec", "", EXEC) for _ in range(2_000)))
    first = ReplayServer(capture, listen=f"unix://{sock_path}", rate=100)
    await first.start()
    source = GadgetSource(settings_for(f"unix://{sock_path}", ("trace_exec",)))
    clock = Clock()
    source.monotonic = clock
    assert source.readiness()[0] is False  # nothing traces yet
    second: ReplayServer | None = None
    try:
        async with running(source, on_batch=lambda batch: None):
            await until(lambda: source.readiness()[0], "ready")
            await first.stop(None)  # every IG pod of the target goes away
            await until(lambda: bool(source.readiness()[1]["down"]), "the stream seen down")
            ready, details = source.readiness()
            assert ready, details  # a reconnect within the grace period does not flap
            clock.now += source.readiness_grace_s + 0.001
            ready, details = source.readiness()
            assert not ready
            assert "trace_exec@" in details["reason"]
            assert details["streamsUp"] == 0
            second = ReplayServer(capture, listen=f"unix://{sock_path}", rate=100)
            await second.start()
            await until(lambda: source.readiness()[0], "ready again")
            assert source.readiness()[1]["down"] == {}
    finally:
        if second is not None:
            await second.stop(None)
