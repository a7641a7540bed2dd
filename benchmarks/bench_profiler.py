"""Profiler benchmark: events merged per second per core, and memory per profile.

Run: ``.venv/bin/python -m benchmarks.bench_profiler [--containers 1000] [--events 600000]
[--no-generalize] [--process-aware]`` (``--no-generalize``: learning without
`profiler.generalize`, to compare; ``--process-aware``: both measurements twice in one run,
with `profiler.processAware` off and on, side by side with the ratios and the load average).

Each container runs its 30 tools as 30 processes (one exec each); four of them do the opens
(every tenth path is opened by a second one too), two the DNS queries, three the connections,
so a process-aware profile records one or two executables per entry, as a service does.

1. Throughput: a steady-state mix (most events already known, as after the first minutes of a
   container's life, plus a trickle of new entries) for 200 containers is fed to
   `Learner.observe` in batches of 256, the pipeline's batch size, on one core.
   Goal: >= 300,000 events/s/core.
2. Memory: 1,000 realistic container profiles (30 execs, 150 opens, 60 syscalls, 10 DNS names,
   10 egress + 3 ingress peers, 4 capabilities each, every string a distinct object as the
   decoder produces them, in 10 directories so nothing collapses) are learned, then flushed
   to a directory store and loaded into the read-model cache. tracemalloc measures the
   learner's state and the cache per profile; the stored YAML size per profile is printed too.
   The opens are numbered file names (``module3/file13.so``), so file generalisation folds
   them into a pattern per directory at flush; ``--no-generalize`` shows the literal profile.
   Goal: <= 50 KiB per typical profile.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from gadgetclient.events import (
    CapabilityEvent,
    Container,
    ContainerId,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    PeerIdentity,
    Process,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from profiler.cache import ProfileCache
from profiler.config import ProfilerSettings
from profiler.dirstore import DirectoryStore
from profiler.identity import NoPodMetadata
from profiler.learning import Learner
from profiler.stats import ProfilerStats

S = 1_000_000_000
T0 = 1_700_000_000 * S
SYSCALLS = [f"sys_{i}" for i in range(300)]
FLAGS = [("O_RDONLY", "O_CLOEXEC"), ("O_RDONLY",), ("O_WRONLY", "O_CREAT", "O_TRUNC"), ("O_RDWR",)]
BATCH = 256


def make_container(i: int) -> Container:
    return Container(
        node="node-1",
        namespace=f"ns{i % 20}",
        pod=f"app{i}-5d4f-x{i}",
        container=f"c{i % 3}",
        container_id=ContainerId(f"cid{i:06d}"),
        image=f"registry.example/app{i}:1.{i % 7}",
        image_digest=f"sha256:{i:064x}",
        owner_kind="ReplicaSet",
        owner_name=f"app{i}-5d4f",
        pod_labels=(("app", f"app{i}"), ("pod-template-hash", "5d4f")),
        started_at_ns=T0,
    )


def profile_events(c: Container, rng: random.Random) -> list[Event]:
    """The distinct behaviour of one typical container (every string a fresh object)."""
    base = rng.randint(2, 60000)
    procs = [Process(pid=base + j, uid=1000, comm=f"tool{j}") for j in range(30)]
    ts = T0 + 1
    out: list[Event] = []
    for j in range(30):
        path = f"/usr/bin/tool{j}"
        out.append(ExecEvent(ts, c, procs[j], path, (path, f"--opt{j % 4}", "x")))
    for j in range(150):
        path = f"/usr/lib/app/module{j % 10}/file{j}.so"
        out.append(OpenEvent(ts, c, procs[j % 4], path, FLAGS[j % 4]))
        if j % 10 == 0:
            out.append(OpenEvent(ts, c, procs[(j + 1) % 4], path, FLAGS[j % 4]))
    out.append(SyscallsEvent(ts, c, procs[0], frozenset(rng.sample(SYSCALLS, 60))))
    for j in range(10):
        out.append(DnsEvent(ts, c, procs[j % 2], f"svc{j}.ns.svc.cluster.local", True,
                            addresses=(f"10.96.{j}.{rng.randint(1, 250)}",)))  # fmt: skip
    for j in range(10):
        peer = PeerIdentity("svc", f"svc{j}", "ns")
        out.append(TcpEvent(ts, c, procs[j % 3], TcpEventType.CONNECT, "10.0.0.1", 40000,
                            f"10.96.{j}.7", 5432 + j, dst_peer=peer))  # fmt: skip
    for j in range(3):
        out.append(TcpEvent(ts, c, procs[0], TcpEventType.ACCEPT, "10.0.0.1", 8080 + j,
                            f"10.1.{j}.9", 50000))  # fmt: skip
    for cap in ("CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SETUID", "CAP_DAC_OVERRIDE"):
        out.append(CapabilityEvent(ts, c, procs[0], cap, "SYS_BIND"))
    return out


#: Set from `--no-generalize`: learn with every generalisation off.
GENERALIZE = True
#: Set per measurement by `--process-aware`.
PROCESS_AWARE = False


def settings() -> ProfilerSettings:
    if GENERALIZE:
        return ProfilerSettings(learning_period=timedelta(days=365), process_aware=PROCESS_AWARE)
    return ProfilerSettings(
        learning_period=timedelta(days=365), generalize=(), process_aware=PROCESS_AWARE
    )


def new_learner(store: DirectoryStore, cache: ProfileCache) -> Learner:
    return Learner(
        settings=settings(),
        store=store,
        cache=cache,
        pod_metadata=NoPodMetadata(),
        stats=ProfilerStats(),
        attached_at_ns=T0,
    )


def throughput(n_events: int, clock: Callable[[], float] = time.perf_counter) -> float:
    rng = random.Random(1)
    containers = [make_container(i) for i in range(200)]
    known = {c.key: profile_events(c, rng) for c in containers}
    with tempfile.TemporaryDirectory() as tmp:
        lrn = new_learner(DirectoryStore(tmp), ProfileCache())
        for events in known.values():
            lrn.observe(events)
        # Steady state: events repeat known behaviour; 1 in 200 is new (fresh path).
        stream: list[Event] = []
        pool = [e for events in known.values() for e in events]
        for i in range(n_events):
            e = rng.choice(pool)
            if i % 200 == 0 and isinstance(e, OpenEvent):
                e = OpenEvent(e.timestamp_ns + i, e.container, e.process, f"/tmp/new{i}", e.flags)
            stream.append(e)
        batches = [stream[i : i + BATCH] for i in range(0, len(stream), BATCH)]
        gc.collect()
        start = clock()
        for batch in batches:
            lrn.observe(batch)
        elapsed = clock() - start
    return n_events / elapsed


async def memory(n_containers: int) -> tuple[float, float, float, float]:
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as tmp:
        store = DirectoryStore(tmp)
        cache = ProfileCache()
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        lrn = new_learner(store, cache)
        # Events are created under tracemalloc and dropped after merging, as in the agent: the
        # strings a profile keeps are counted, the event objects are not.
        for i in range(n_containers):
            events = profile_events(make_container(i), rng)
            lrn.observe(events)
            del events
        gc.collect()
        learned = tracemalloc.get_traced_memory()[0] - base
        await lrn.flush()  # deltas written and cleared; the cache holds what the store has
        gc.collect()
        total = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        learned_keys = lrn.keys()
        entries = 0
        for key in learned_keys:
            profile = lrn.profile(key)
            entries += profile.entries.total() if profile is not None else 0
        stored = await asyncio.to_thread(_stored_bytes, Path(tmp))
    profiles = len(learned_keys)
    per = (learned / profiles / 1024, total / profiles / 1024, entries / profiles)
    return (*per, stored / profiles / 1024)


def _stored_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.yaml"))


def compare(args: argparse.Namespace) -> None:
    """`--process-aware`: off and on side by side, throughput per CPU second (best of 3,
    alternating, so neighbours' load hits both alike)."""
    global PROCESS_AWARE
    rates = {False: 0.0, True: 0.0}
    for _ in range(3):
        for aware in (False, True):
            PROCESS_AWARE = aware
            rates[aware] = max(rates[aware], throughput(args.events, time.process_time))
    sizes = {}
    for aware in (False, True):
        PROCESS_AWARE = aware
        sizes[aware] = asyncio.run(memory(args.containers))
    for aware in (False, True):
        learned_kib, total_kib, entries, stored_kib = sizes[aware]
        print(
            f"process-aware {'on ' if aware else 'off'}: merge {rates[aware]:,.0f} events per "
            f"CPU second; {learned_kib:.1f} KiB per profile learning, {total_kib:.1f} KiB after "
            f"flush, {stored_kib:.1f} KiB stored, {entries:.0f} entries "
            f"({args.containers} profiles)"
        )
    off, on = sizes[False], sizes[True]
    print(
        f"on/off: merge throughput {rates[True] / rates[False]:.0%} (goal >= 80%); memory "
        f"x{on[0] / off[0]:.2f} learning, x{on[1] / off[1]:.2f} after flush (goal <= 1.5); "
        f"stored x{on[3] / off[3]:.2f}"
    )
    print("load average (1/5/15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--no-generalize", action="store_true", help="generalisations off")
    parser.add_argument(
        "--process-aware", action="store_true", help="profiler.processAware off and on"
    )
    args = parser.parse_args()
    global GENERALIZE
    GENERALIZE = not args.no_generalize
    if args.process_aware:
        compare(args)
        return
    rate = throughput(args.events)
    print(f"merge throughput: {rate:,.0f} events/s on one core ({args.events:,} events)")
    learned_kib, total_kib, entries, stored_kib = asyncio.run(memory(args.containers))
    print(
        f"memory: {learned_kib:.1f} KiB per profile while learning (with pending deltas), "
        f"{total_kib:.1f} KiB per profile after flush (learner state + read-model cache), "
        f"{entries:.0f} entries per profile, {stored_kib:.1f} KiB stored per profile, "
        f"{args.containers} profiles (generalisation {'on' if GENERALIZE else 'off'})"
    )


if __name__ == "__main__":
    main()
