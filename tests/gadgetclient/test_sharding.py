"""`Shard`: N workers partition a node's containers without coordination (`sharding.py`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gadgetclient.capture import read_capture
from gadgetclient.replay import ReplayServer
from gadgetclient.sharding import Shard, owner_of
from gadgetclient.source import GadgetSource, running
from tests.gadgetclient.conftest import settings_for

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "e2e" / "shop-small.capture.jsonl"
GADGETS = ("trace_exec", "trace_open", "trace_tcp", "trace_dns", "trace_capabilities")


def test_owner_is_the_same_in_every_process_whatever_the_hash_seed() -> None:
    keys = [f"containerd://{i:064x}" for i in range(50)] + ["node/ns/pod/c", "évil\udcff"]
    here = [owner_of(k, 3) for k in keys]
    code = (
        "import sys, json; from gadgetclient.sharding import owner_of; "
        "print(json.dumps([owner_of(k, 3) for k in json.loads(sys.stdin.read())]))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        import json

        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(keys),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert json.loads(out) == here
    assert set(here) == {0, 1, 2}  # 52 keys spread over every worker


def test_every_key_has_exactly_one_owner() -> None:
    shards = [Shard(i, 4) for i in range(4)]
    for n in range(1000):
        key = f"cri-o://{n}"
        assert sum(s.owns(key) for s in shards) == 1


@pytest.mark.parametrize(("index", "count"), [(0, 0), (2, 2), (-1, 2)])
def test_a_shard_outside_its_count_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="expected 0 <= index < count"):
        Shard(index, count)


async def _events(address: str, shard: Shard | None) -> tuple[list[Any], GadgetSource]:
    source = GadgetSource(settings_for(address, GADGETS), shard=shard)
    events: list[Any] = []
    async with running(source, on_batch=events.extend) as task:
        await asyncio.wait_for(task, 30)  # the replay ends, the streams end
    return events, source


def _identity(e: Any) -> tuple[Any, ...]:
    return (e.kind, e.timestamp_ns, e.container.key, e.process.pid, repr(e))


async def test_shards_partition_a_real_stream_by_container(tmp_path: Path) -> None:
    """Two sharded sources on the same streams get disjoint events whose union is exactly what
    one unsharded source gets; each container's events all land on one shard; the skipped
    ones are counted per gadget."""
    server = ReplayServer(read_capture(CAPTURE), listen=f"unix://{tmp_path}/ig.sock", ordered=False)
    address = await server.start()
    try:
        everything, _ = await _events(address, None)
        parts = [await _events(address, Shard(i, 2)) for i in range(2)]
    finally:
        await server.stop(None)
    assert len(everything) > 50
    got = [[_identity(e) for e in events] for events, _ in parts]
    assert Counter(got[0]) + Counter(got[1]) == Counter(_identity(e) for e in everything)
    owners = [{e.container.key for e in events} for events, _ in parts]
    assert owners[0]
    assert owners[1]
    assert not owners[0] & owners[1]
    for events, source in parts:
        assert sum(source.stats.foreign.values()) == len(everything) - len(events)
        # Event time moves with every stream, the other worker's containers included.
        assert source.event_clock_ns == max(e.timestamp_ns for e in everything)
