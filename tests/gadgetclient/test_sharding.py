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
from gadgetclient.events import Container, ContainerId
from gadgetclient.replay import ReplayServer
from gadgetclient.sharding import Shard, owner_of, routing_key
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


def test_every_container_has_exactly_one_owner() -> None:
    shards = [Shard(i, 4) for i in range(4)]
    for n in range(1000):
        c = Container(container_id=ContainerId(f"cri-o://{n}"), namespace=f"ns{n % 7}")
        assert sum(s.owns(c) for s in shards) == 1


def test_replicas_of_a_workload_share_a_worker_and_bare_containers_spread() -> None:
    """One worker learns a workload's profile from all its replicas, as one process does."""

    def replica(n: int, owner: str = "web") -> Container:
        return Container(
            namespace="shop", pod=f"{owner}-{n}", container="nginx",
            container_id=ContainerId(f"containerd://{n}"),
            owner_kind="Deployment" if owner else "", owner_name=owner,
        )  # fmt: skip

    assert {routing_key(replica(n)) for n in range(20)} == {"shop/Deployment/web"}
    shards = [Shard(i, 3) for i in range(3)]
    owners = {next(i for i, s in enumerate(shards) if s.owns(replica(n))) for n in range(20)}
    assert len(owners) == 1
    # A direct ReplicaSet owner (another producer's capture) is its Deployment, so a
    # rollout's old and new replicas stay together; any other ReplicaSet name stays as it is.
    rs = Container(
        namespace="shop", owner_kind="ReplicaSet", owner_name="web-5d4f",
        pod_labels=(("app", "web"), ("pod-template-hash", "5d4f")),
    )  # fmt: skip
    assert routing_key(rs) == "shop/Deployment/web"
    other = Container(namespace="shop", owner_kind="ReplicaSet", owner_name="standalone")
    assert routing_key(other) == "shop/ReplicaSet/standalone"
    # Without an owner (a bare pod, a host process) the container itself is the unit.
    bare = {next(i for i, s in enumerate(shards) if s.owns(replica(n, ""))) for n in range(20)}
    assert bare == {0, 1, 2}


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
    one unsharded source gets; each workload's events all land on one shard; the skipped
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
    owners = [{routing_key(e.container) for e in events} for events, _ in parts]
    assert owners[0]
    assert owners[1]
    assert not owners[0] & owners[1]
    for events, source in parts:
        assert sum(source.stats.foreign.values()) == len(everything) - len(events)
        # Event time moves with every stream, the other worker's containers included.
        assert source.event_clock_ns == max(e.timestamp_ns for e in everything)
