"""Detector throughput and per-event latency under the default binding.

A mixed stream (open 40%, tcp 25%, dns 20%, exec 15%) from 60 containers of 20 workloads with
completed profiles: almost every event is allowed by its profile (the steady state of a
cluster), and about 0.5% are anomalies or signature hits, which go through exceptions,
dedup and alert building. Prints events/s on one core (the detector is single-threaded and
pure CPU) and the p50/p99/max evaluation time per event.

    .venv/bin/python benchmarks/bench_detector.py [--events 400000] [--batch 256] [--guards]
        [--catalogue python|cel|both]

`--guards` puts the example guards of deploy/guards (R3000) in force for every container: the
cost of guard checks and of the acting-process look-ups they do on a match.

`--catalogue` picks the rules: the built-in Python ones (default), the same catalogue
re-expressed in CEL (deploy/rules, `detector.ruleCatalogueDir`), or both one after the other
on the same stream and profiles, printed side by side. The machine's load average is printed
with the figures: on a shared machine other work lowers them.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.rules import Catalogue, default_catalogue
from detector.ruleset import RuleSet, cel_catalogue, load_files
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
REPO = Path(__file__).resolve().parents[1]


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
    parser.add_argument(
        "--catalogue", choices=("python", "cel", "both"), default="python", help="which rules"
    )
    args = parser.parse_args()
    events, profiles = build(args.events)
    rules: RuleSet | None = None
    if args.guards:
        guards = load_files([REPO / "deploy" / "guards"], catalogue=default_catalogue())
        # Opt-in label of the token guard: every pod takes part.
        rules = RuleSet(
            guards=tuple(replace(g, pod_selector=LabelSelector()) for g in guards.guards)
        )
    names = ["python", "cel"] if args.catalogue == "both" else [args.catalogue]
    results = []
    for name in names:
        catalogue = (
            default_catalogue() if name == "python" else cel_catalogue(REPO / "deploy" / "rules")
        )
        results.append((name, measure(args, events, profiles, rules, catalogue)))
    load = os.getloadavg()
    print(
        f"events: {len(events)}  batch: {args.batch}  python: {sys.version.split()[0]}  "
        f"cpus: {os.cpu_count()}  load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"{'catalogue':<10} {'events/s (1 core)':>18} {'p50 us':>8} {'p99 us':>8} "
        f"{'max us':>8} {'mean us':>8} {'alerts':>7} {'memo hits':>10}"
    )
    for name, r in results:
        print(
            f"{name:<10} {r.best:>18,.0f} {r.p50:>8.2f} {r.p99:>8.2f} {r.max:>8.1f} "
            f"{r.mean:>8.2f} {r.alerts:>7} {r.memo_hits:>10}"
        )


@dataclass
class Result:
    best: float
    p50: float
    p99: float
    max: float
    mean: float
    alerts: int
    memo_hits: int


def measure(
    args: argparse.Namespace,
    events: list[Event],
    profiles: MemoryProfiles,
    rules: RuleSet | None,
    catalogue: Catalogue,
) -> Result:
    """Best-of-3 throughput over the whole stream, then each event of 100k timed alone."""

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
                catalogue=catalogue,
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
    return Result(
        best=best,
        p50=samples[len(samples) // 2] / 1000,
        p99=samples[int(len(samples) * 0.99)] / 1000,
        max=samples[-1] / 1000,
        mean=statistics.fmean(samples) / 1000,
        alerts=alerts // 3,
        memo_hits=sum(stats.memo_hits.values()),
    )


if __name__ == "__main__":
    main()
