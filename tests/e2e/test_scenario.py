"""The committed scenario capture is what `tests/e2e/scenario.py` generates, and it keeps the
property the exact assertions rely on: each container is seen by one gadget only."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tests.e2e.scenario import CAPTURE, EXPECTED, write


def test_committed_capture_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "capture.jsonl"
    write(fresh)
    assert fresh.read_bytes() == CAPTURE.read_bytes(), "run: python -m tests.e2e.scenario"


def test_each_container_is_seen_by_one_event_gadget() -> None:
    gadgets: dict[tuple[str, str], set[str]] = defaultdict(set)
    for raw in CAPTURE.read_text().splitlines()[1:]:
        line = json.loads(raw)
        records = line["data"] if isinstance(line["data"], list) else [line["data"]]
        for rec in records:
            if line["gadget"] != "advise_seccomp":
                gadgets[(rec["k8s"]["podName"], rec["k8s"]["containerName"])].add(line["gadget"])
    assert all(len(g) == 1 for g in gadgets.values()), dict(gadgets)
    assert {(e.pod, e.container) for e in EXPECTED} == set(gadgets)
