"""Detector throughput and per-event latency under the default binding.

A mixed stream (open 40%, tcp 25%, dns 20%, exec 15%) from 60 containers of 20 workloads with
completed profiles: almost every event is allowed by its profile (the steady state of a
cluster), and about 0.5% are anomalies or signature hits, which go through exceptions,
dedup and alert building. Prints events/s on one core (the detector is single-threaded and
pure CPU) and the p50/p99/max evaluation time per event.

    .venv/bin/python benchmarks/bench_detector.py [--events 400000] [--batch 256] [--guards]

`--guards` puts the example guards of deploy/guards (R3000) in force for every container: the
cost of guard checks and of the acting-process look-ups they do on a match.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import default_catalogue
from detector.ruleset import RuleSet, load_files
from detector.selectors import LabelSelector
from detector.stats import DetectorStats
from gadgetclient.events import (
    Container,
    ContainerId,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    Process,
    TcpEvent,
    TcpEventType,
)
from profiler.identity import WorkloadKey
from tests.detector.builders import PodMeta
from tests.detector.profiles import MemoryProfile, MemoryProfiles

T0 = 1_767_225_600 * 1_000_000_000


def build(n_events: int, seed: int = 7) -> tuple[list[Event], MemoryProfiles]:
    rnd = random.Random(seed)
    profiles = MemoryProfiles()
    containers = []
    for w in range(20):
        key = WorkloadKey(f"ns{w % 5}", "Deployment", f"app{w}", "main")
        execs: dict[str, list[tuple[str, ...]]] = {f"/usr/bin/tool{i}": [] for i in range(8)}
        opens = {f"/etc/app{w}/f{i}.conf": {"O_RDONLY", "O_CLOEXEC"} for i in range(40)}
        domains = {f"svc{i}.example.com" for i in range(10)}
        egress = {(f"52.1.{w}.{i}", 443, "TCP") for i in range(10)}
        profiles.add(MemoryProfile(key, execs=execs, opens=opens, domains=domains, egress=egress))
        for r in range(3):
            containers.append(
                (
                    Container(
                        node="n1",
                        namespace=key.namespace,
                        pod=f"app{w}-abc12-{r}",
                        container="main",
                        container_id=ContainerId(f"cid-{w}-{r}"),
                        owner_kind="ReplicaSet",
                        owner_name=f"app{w}-abc12",
                        pod_labels=(("app", f"app{w}"), ("pod-template-hash", "abc12")),
                    ),
                    w,
                )
            )
    events: list[Event] = []
    for i in range(n_events):
        c, w = containers[rnd.randrange(len(containers))]
        p = Process(pid=1000 + rnd.randrange(50), comm="main", ppid=1, pcomm="init")
        t = T0 + i * 10_000  # 100k events/s of event time
        anomaly = rnd.random() < 0.005
        roll = rnd.random()
        if roll < 0.40:
            path = "/etc/shadow" if anomaly else f"/etc/app{w}/f{rnd.randrange(40)}.conf"
            events.append(OpenEvent(t, c, p, path, ("O_RDONLY", "O_CLOEXEC")))
        elif roll < 0.65:
            addr = "45.33.32.156" if anomaly else f"52.1.{w}.{rnd.randrange(10)}"
            events.append(TcpEvent(t, c, p, TcpEventType.CONNECT, "10.0.0.1", 40000, addr, 443))
        elif roll < 0.85:
            name = "xmr.nanopool.org" if anomaly else f"svc{rnd.randrange(10)}.example.com"
            events.append(DnsEvent(t, c, p, name, False, "A"))
        else:
            path = "/dev/shm/x" if anomaly else f"/usr/bin/tool{rnd.randrange(8)}"
            events.append(ExecEvent(t, c, p, path, (path, "--run")))
    return events, profiles


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--memo", type=int, default=4096, help="clean-event memo size, 0: off")
    parser.add_argument("--guards", action="store_true", help="deploy/guards in force")
    args = parser.parse_args()
    events, profiles = build(args.events)
    rules: RuleSet | None = None
    if args.guards:
        guards = load_files([Path(__file__).resolve().parents[1] / "deploy" / "guards"],
                            catalogue=default_catalogue())  # fmt: skip
        # Opt-in label of the token guard: every pod takes part.
        rules = RuleSet(
            guards=tuple(replace(g, pod_selector=LabelSelector()) for g in guards.guards)
        )

    def detector() -> tuple[Detector, DetectorStats]:
        stats = DetectorStats()
        settings = DetectorSettings(
            global_rate_limit=0, per_rule_rate_limit=0, clean_event_memo_size=args.memo
        )
        return (
            Detector(
                settings=settings,
                profiles=profiles,
                pod_metadata=PodMeta(),
                stats=stats,
                rules=rules,
            ),
            stats,
        )

    # Throughput: batches as the pipeline delivers them.
    d, stats = detector()
    d.evaluate(events[:10_000])  # warm-up: plans compiled, memos filled
    gc.collect()
    best = 0.0
    alerts = 0
    for _ in range(3):
        d, stats = detector()
        start = time.perf_counter()
        for i in range(0, len(events), args.batch):
            alerts += len(d.evaluate(events[i : i + args.batch]))
        elapsed = time.perf_counter() - start
        best = max(best, len(events) / elapsed)
    # Latency: each event timed on its own (includes the call; an upper bound).
    d, stats = detector()
    d.evaluate(events[:10_000])
    samples = []
    clock = time.perf_counter_ns
    for ev in events[10_000:110_000]:
        one = [ev]
        t = clock()
        d.evaluate(one)
        samples.append(clock() - t)
    samples.sort()
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    print(f"events: {len(events)}  batch: {args.batch}  python: {sys.version.split()[0]}")
    print(f"throughput (1 core, best of 3): {best:,.0f} events/s")
    print(f"alerts per run: {alerts // 3}  memo hits: {sum(stats.memo_hits.values())}")
    print(
        f"per-event latency: p50 {p50:.2f} us  p99 {p99:.2f} us  "
        f"max {samples[-1] / 1000:.1f} us  mean {statistics.fmean(samples) / 1000:.2f} us"
    )


if __name__ == "__main__":
    main()
