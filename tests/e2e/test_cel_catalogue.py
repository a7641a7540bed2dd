"""Whole captures replayed with the built-in rules and with their CEL re-expression (issue 15).

`gadgetwatch run --replay` (its own process, real gRPC to the in-process replay server) of the
scenario capture and of the example intrusion capture, once with the Python catalogue and once
with `--rule-catalogue deploy/rules`: learning, the profile gate, dedup and exporters are the
real ones, and the alerts must be identical in rule, workload, dedup key (the fingerprint
hashes workload, rule and key) and message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import GADGETWATCH, Proc
from tests.e2e.scenario import CAPTURE, EXAMPLE_CAPTURE, LEARNING_PERIOD, REPO


async def replay(tmp_path: Path, env: dict[str, str], capture: Path, *extra: str) -> list[Any]:
    name = "cel" if extra else "python"
    proc = await Proc.start(
        f"agent-{name}",
        [
            GADGETWATCH,
            "run",
            "--no-metrics",
            "--replay",
            str(capture),
            "--learning-period",
            LEARNING_PERIOD,
            "--profiles-dir",
            str(tmp_path / f"profiles-{capture.stem}-{name}"),
            *extra,
        ],
        env=env,
    )
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    alerts = [json.loads(line) for line in proc.stdout]
    return sorted(
        (
            a["rule"]["id"],
            a["kubernetes"]["namespace"],
            a["kubernetes"]["workloadName"],
            a["kubernetes"]["container"],
            a["fingerprint"],
            a["message"],
        )
        for a in alerts
    )


@pytest.mark.parametrize("capture", [CAPTURE, EXAMPLE_CAPTURE], ids=lambda p: p.stem)
async def test_cel_catalogue_replays_to_the_same_alerts(
    tmp_path: Path, env: dict[str, str], capture: Path
) -> None:
    python = await replay(tmp_path, env, capture)
    cel = await replay(tmp_path, env, capture, "--rule-catalogue", str(REPO / "deploy" / "rules"))
    assert len({a[0] for a in python}) >= 3, python  # several rules fire: a real comparison
    assert cel == python
