"""`gadgetwatch run --events -`: a session's JSON output piped into the agent, end to end.

The bundled capture's lines (capture format: each names its gadget) are written into the
agent's stdin with a broken line among them; the stdin pipe stays open until the alerts are out,
so they come from live processing, not from EOF. Closing it is a clean shutdown: exit 0, profiles
flushed, and the summary names the bad line by number.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.e2e.harness import GADGETWATCH, REPO, RUN_DEADLINE_S, eventually
from tests.e2e.scenario import CAPTURE, EXPECTED, LEARNING_PERIOD, expected_of


async def test_piped_session_is_processed_live_and_eof_is_a_clean_shutdown(
    tmp_path: Path, env: dict[str, str]
) -> None:
    lines = CAPTURE.read_bytes().splitlines()
    bad_at = 5
    lines.insert(bad_at - 1, b'{"gadget": "trace_exec", "data": ')  # cut off mid-line
    profiles = tmp_path / "profiles"
    proc = await asyncio.create_subprocess_exec(
        GADGETWATCH, "run", "--events", "-", "--stdout", "--no-metrics", "--summary",
        "--learning-period", LEARNING_PERIOD, "--profiles-dir", str(profiles),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(REPO),
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    alerts: list[dict[str, Any]] = []
    stderr: list[bytes] = []

    async def read_out() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            alerts.append(json.loads(line))

    async def read_err() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            stderr.append(line)

    readers = [asyncio.create_task(read_out()), asyncio.create_task(read_err())]
    try:
        for line in lines:
            proc.stdin.write(line + b"\n")
        await proc.stdin.drain()
        # The pipe is still open: alerts out now were produced live.
        await eventually(lambda: len(alerts) >= len(EXPECTED), what="alerts before EOF")
        assert proc.returncode is None
        proc.stdin.close()
        async with asyncio.timeout(RUN_DEADLINE_S):
            code = await proc.wait()
        await asyncio.gather(*readers)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for r in readers:
            r.cancel()
    text = b"".join(stderr).decode()
    assert code == 0, text[-3000:]
    assert f"bad input lines: 1: line {bad_at} (not JSON" in text
    assert "complete: yes" in text
    assert list(profiles.glob("*/*.yaml"))
    # The same alerts as the gRPC path gives for this capture (tests/e2e/test_host.py).
    assert sorted(expected_of(a) for a in alerts) == sorted(EXPECTED)
