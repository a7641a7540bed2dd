"""`Shard`: which containers' events one worker process keeps when N workers share a node.

With `pipeline.workers: N` every worker runs every gadget stream of the node and keeps the
events of the containers it owns; the others are counted (`StreamStats.foreign`) and skipped,
before the typed mapping where the layout allows (`SlotMapper.router`). Ownership is a pure
function of `routing_key`: the workload (namespace and IG's top-level owner, e.g. a
Deployment) when IG knows it, else the container (`Container.key`). So

* every event of a container, from every gadget (exec, open, tcp, dns, capabilities,
  advise_seccomp's syscalls), lands on the same worker, which therefore holds the container's
  learning period, detector plan and cooldowns: nothing is split;
* the replicas of a workload land on the same worker too, so their shared profile is learned
  in one process exactly as a single process learns it (a worker per replica would learn two
  halves and judge each replica against its own half until the store merged them, as two
  nodes do);
* workers agree without talking to each other, and a restarted worker owns exactly what its
  predecessor owned.

Why filter after the receive instead of routing at the source: IG's container filters
(`operator.KubeManager.*`) select by namespace, pod or labels, not by a hash, and a set chosen
when a stream starts cannot follow pods as they come and go. The cost is that every worker
receives every event; `benchmarks/bench_pipeline.py --workers` measures what is left of the
gain (docs/gadgetclient.md).

Why CRC-32 and not `hash()`: Python randomises string hashes per process (PYTHONHASHSEED), and
workers are separate processes that must agree on the owner of every key.
"""

from __future__ import annotations

import zlib

from gadgetclient.events import Container

#: Owner decisions remembered per worker: containers on a node number in the hundreds; the
#: bound only matters when container ids churn (short jobs), and a cleared cache costs one
#: CRC per key to refill.
_CACHE_MAX = 65_536


def routing_key(container: Container) -> str:
    """The workload (namespace/kind/name of IG's top-level owner) when known, else the
    container: the unit whose events one worker keeps together.

    A direct ReplicaSet owner named `<deployment>-<pod-template-hash>` (captures from other
    producers; IG itself sends the Deployment) counts as its Deployment, so the replicas of
    the old and the new ReplicaSet of a rollout stay together, as `profiler.identity` keeps
    them in one profile."""
    kind, name = container.owner_kind, container.owner_name
    if not name:
        return container.key
    if kind == "ReplicaSet":
        template = dict(container.pod_labels).get("pod-template-hash", "")
        if template and name.endswith(f"-{template}"):
            kind, name = "Deployment", name[: -len(template) - 1]
    return f"{container.namespace}/{kind}/{name}"


def owner_of(key: str, count: int) -> int:
    """The index (0..count-1) of the worker that owns containers with routing key `key`."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % count


class Shard:
    """Worker `index` of `count`: `owns(container)` says whether this worker keeps it."""

    __slots__ = ("_owned", "count", "index")

    def __init__(self, index: int, count: int) -> None:
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"worker {index} of {count}: expected 0 <= index < count")
        self.index = index
        self.count = count
        self._owned: dict[str, bool] = {}

    def owns(self, container: Container) -> bool:
        """Whether this worker keeps `container`'s events."""
        key = routing_key(container)
        found = self._owned.get(key)
        if found is None:
            if len(self._owned) >= _CACHE_MAX:
                self._owned.clear()
            found = self._owned[key] = owner_of(key, self.count) == self.index
        return found

    def __repr__(self) -> str:
        return f"Shard({self.index}/{self.count})"


__all__ = ["Shard", "owner_of", "routing_key"]
