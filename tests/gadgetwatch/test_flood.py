"""Memory stays bounded under a flood of distinct behaviour (issue 6 §1).

The real stages, in process: `Pipeline` -> `Learner` (directory store, `ProfileCache` read model)
-> `Detector` (default rules, cooldown table, rate limits) -> `Delivery` with the stdout exporter
writing into a counting null stream. One node, three containers of three workloads, 1,000,000
events (one per millisecond of event time), each with a value never seen before:

* `cache`: still learning, opens `/var/cache/app/req-<n>.json` (one directory): the profile
  collapses the directory into a wildcard at each flush, after which the pattern covers every
  further path and the profile stops growing;
* `crawler`: still learning, executes `/usr/bin/fetch` with distinct arguments and resolves
  distinct names: no collapse applies, so the profile hits the entry cap and becomes
  `too-large` with its reason; every event it could not take is counted (`too_large`);
* `api`: profile completed before the flood, opens distinct files, resolves distinct names and
  runs distinct programs: every event is an anomaly with a new dedup key, so the cooldown table
  fills to its bound and evicts (counted), and the per-rule and global rate limits suppress
  (counted) and announce themselves with one "limit reached" alert per window and scope.

Memory is measured with `tracemalloc` (Python allocations, after a full collection) at 200k
and at 1M events. Every bounded structure is full by 200k (profile cap 20,000 entries reached
after ~160k events, cooldown table 20,000 keys after ~40k), so between the two checkpoints
nothing may grow with the event count: the bound on the growth is 1 MiB, less than 2 bytes per
further event (any per-event leak costs at least a 16-byte object pointer plus the object,
800k x 50+ bytes = 40 MB). On failure the assertion message lists the allocation sites that
grew most (snapshot diff), which names the structure that leaks.

The flush (`updatePeriod`) is driven by the test every 100k events, as the learner's timer
would; the pipeline's queue is kept fed without overrunning it by yielding to the processing
task whenever 16 batches wait (a separate test overruns it on purpose and checks the count).
"""

from __future__ import annotations

import asyncio
import gc
import io
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from detector.alerts import Alert
from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.stats import DetectorStats
from exporters.config import ExportersSettings, StdoutSettings
from exporters.delivery import Delivery
from exporters.stats import DeliveryStats
from exporters.stdout import StdoutExporter
from gadgetclient.events import (
    Container,
    ContainerId,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    Process,
)
from gadgetwatch.pipeline import Pipeline, PipelineStats
from profiler.cache import ProfileCache
from profiler.config import ProfilerSettings
from profiler.dirstore import DirectoryStore
from profiler.identity import NoPodMetadata
from profiler.learning import Learner
from profiler.readmodel import ProfileStatus
from profiler.stats import ProfilerStats

MS = 1_000_000
T0 = 1_772_445_600_000_000_000
HOUR = 3_600_000 * MS
#: The flood starts when `api` has completed (learning period 1 h from T0) while `cache` and
#: `crawler`, started at T0 + 1 h, keep learning for the whole flood (1M ms < 1 h).
FLOOD_START = T0 + HOUR + 1_000 * MS
BATCH = 256
#: Events between two flushes: a whole number of batches, so no partial batch waits for the
#: pipeline's delay timer. 10,240 events is 10 s of event time; `cache` gets 1,280 new paths
#: per flush, fewer than the entry cap, so its directory collapses before the cap is reached.
CHUNK = BATCH * 40
#: Untraced warm-up (every cap is reached within its first 20k events), then the traced span.
#: tracemalloc makes each event ~3.5x dearer (29 -> 103 µs here), so the traced span is 160k
#: events to keep the test near 25 s; a run with 200k -> 1M (117 s) stayed within the bound.
CHECKPOINT = 10 * CHUNK
TRACE_FROM = CHECKPOINT - 2 * CHUNK
TOTAL = 26 * CHUNK
#: Caps smaller than the defaults (20,000 entries, 20,000 cooldown keys) so that each is
#: reached within the first 20k events and the profile documents stay small: the directory
#: store writes YAML with the pure-Python emitter, ~20 s for a 20,000-entry profile under
#: tracemalloc. The mechanism bounded here is the same for any cap value.
MAX_ENTRIES = 2_000
COOLDOWN_KEYS = 2_000
#: Growth allowed between the 200k and 1M checkpoints (see the module docstring).
GROWTH_BOUND = 1 << 20


class CountingNull(io.RawIOBase):
    """A stdout stand-in that keeps nothing: counts lines and bytes."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.lines += bytes(b).count(b"\n")
        self.bytes += len(b)
        return len(b)


def container(name: str, started_at_ns: int) -> Container:
    return Container(
        node="node-a",
        namespace="flood",
        pod=f"{name}-7d9c5b6f4-x1x2x",
        container=name,
        container_id=ContainerId(f"{name:0<64}"[:64]),
        image=f"registry.example.com/{name}:1",
        image_digest="sha256:" + "ab" * 32,
        owner_kind="ReplicaSet",
        owner_name=f"{name}-7d9c5b6f4",
        pod_labels=(("app", name), ("pod-template-hash", "7d9c5b6f4")),
        started_at_ns=started_at_ns,
    )


API = container("api", T0)
CACHE = container("cache", T0 + HOUR)
CRAWLER = container("crawler", T0 + HOUR)
PROC = Process(pid=7, comm="worker", exe="/usr/local/bin/worker", uid=1000)
RO = ("O_RDONLY",)


def learning_of_api() -> Iterator[Event]:
    """`api`'s normal behaviour during its learning period, then one event after it."""
    for i in range(50):
        ts = T0 + (i + 1) * MS
        yield OpenEvent(ts, API, PROC, path=f"/app/module{i}.py", flags=RO)
        yield ExecEvent(ts, API, PROC, path="/usr/local/bin/worker", args=("worker", str(i)))
        yield DnsEvent(
            ts, API, PROC, name=f"db{i}.flood.svc.cluster.local", addresses=(), is_response=True
        )


def flood(start: int, stop: int) -> Iterator[Event]:
    """Events `start`..`stop`-1 of the flood; each carries a value never seen before."""
    for n in range(start, stop):
        ts = FLOOD_START + n * MS
        k = n % 8
        if k == 0:
            yield OpenEvent(ts, CACHE, PROC, path=f"/var/cache/app/req-{n}.json", flags=RO)
        elif k == 1:
            yield ExecEvent(ts, CRAWLER, PROC, path="/usr/bin/fetch", args=("fetch", f"u{n}"))
        elif k == 2:
            yield DnsEvent(
                ts, CRAWLER, PROC, name=f"h{n}.crawl.example.com", addresses=(), is_response=True
            )
        elif k in (3, 4):
            yield OpenEvent(ts, API, PROC, path=f"/srv/upload/{n}/data.bin", flags=RO)
        elif k == 5:
            yield DnsEvent(
                ts, API, PROC, name=f"x{n}.exfil.example.net", addresses=(), is_response=True
            )
        elif k == 6:
            yield ExecEvent(ts, API, PROC, path=f"/tmp/t{n}", args=(f"/tmp/t{n}",))
        else:
            yield OpenEvent(ts, API, PROC, path=f"/app/module{n % 50}.py", flags=RO)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.profiler_stats = ProfilerStats()
        self.detector_stats = DetectorStats()
        self.delivery_stats = DeliveryStats()
        self.pipeline_stats = PipelineStats()
        self.cache = ProfileCache(self.profiler_stats)
        self.learner = Learner(
            settings=ProfilerSettings(learning_period=timedelta(hours=1), max_entries=MAX_ENTRIES),
            store=DirectoryStore(tmp / "profiles"),
            cache=self.cache,
            pod_metadata=NoPodMetadata(),
            stats=self.profiler_stats,
        )
        self.detector = Detector(
            settings=DetectorSettings(cooldown_max_keys=COOLDOWN_KEYS),
            profiles=self.cache,
            pod_metadata=NoPodMetadata(),
            stats=self.detector_stats,
        )
        self.out = CountingNull()
        stdout = StdoutExporter(StdoutSettings(enabled=True), stream=self.out)  # type: ignore[arg-type]
        self.delivery = Delivery([stdout], stats=self.delivery_stats, settings=ExportersSettings())
        self.pipeline = Pipeline(
            profiler=self.learner,
            detector=self.detector,
            sink=self.delivery.submit,
            stats=self.pipeline_stats,
            queue_batches=256,
            batch_size=BATCH,
            batch_delay_s=0.02,
        )
        self.fed = 0

    async def feed(self, events: Iterator[Event]) -> None:
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) == BATCH:
                self.pipeline.feed(batch)
                self.fed += len(batch)
                batch = []
                # The pipeline has no queue-space event; yielding lets the processing task
                # run (cooperative scheduling, not a timed wait).
                while self.pipeline.backlog > 16:  # noqa: ASYNC110
                    await asyncio.sleep(0)  # yield to the processing task (not a timed wait)
        if batch:
            self.pipeline.feed(batch)
            self.fed += len(batch)

    async def settle(self) -> None:
        """Yield until the processing task has taken every event fed so far.

        A partial batch is handed on by the pipeline's delay timer; this waits on the
        condition (events processed), not on time.
        """
        while self.pipeline_stats.processed < self.fed:  # noqa: ASYNC110 (as in feed)
            await asyncio.sleep(0)


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> str:
    stats = after.compare_to(before, "lineno")[:8]
    return "\n".join(str(s) for s in stats)


async def test_memory_plateaus_under_a_flood_of_distinct_paths(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.delivery.start()
    processing = asyncio.create_task(rig.pipeline.run())
    mem: dict[int, int] = {}
    snaps: dict[int, tracemalloc.Snapshot] = {}
    try:
        await rig.feed(learning_of_api())
        await rig.settle()
        rig.learner.tick(FLOOD_START)  # `api`'s learning period is over
        await rig.learner.flush()
        assert rig.cache.get(rig.learner.keys()[0]) is not None
        done = 0
        while done < TOTAL:
            await rig.feed(flood(done, done + CHUNK))
            done += CHUNK
            await rig.settle()
            await rig.learner.flush()  # what the `updatePeriod` timer does
            if done == TRACE_FROM:
                # Tracing starts two chunks before the first checkpoint: the bounded
                # structures churn (the cooldown table replaces all its keys every 4k
                # events), so by the checkpoint the traced memory holds their whole working
                # set, and what the last TOTAL - CHECKPOINT events add on top is the growth.
                tracemalloc.start(1)
            if done in (CHECKPOINT, TOTAL):
                mem[done] = traced()
                snaps[done] = tracemalloc.take_snapshot()
        tracemalloc.stop()
        await rig.pipeline.close()
        await processing
    finally:
        if not processing.done():
            processing.cancel()
        await rig.delivery.aclose(5.0)

    growth = mem[TOTAL] - mem[CHECKPOINT]
    print(f"traced memory {mem[CHECKPOINT]} B at {CHECKPOINT} events, {mem[TOTAL]} B at {TOTAL}")
    assert growth < GROWTH_BOUND, (
        f"traced memory grew {growth} bytes from {CHECKPOINT} to {TOTAL} events "
        f"({mem[CHECKPOINT]} -> {mem[TOTAL]}); largest growth:\n"
        + top_growth(snaps[CHECKPOINT], snaps[TOTAL])
    )

    # Profiles: `cache` collapsed its directory (numbered names fold into one `⟨n⟩` pattern,
    # file generalisation), `crawler` stopped at the cap with the reason.
    keys = rig.learner.keys()
    by_name = {k.display().rsplit("/", 1)[0].rsplit("/", 1)[-1]: k for k in keys}
    cache = rig.learner.profile(by_name["cache"])
    crawler = rig.learner.profile(by_name["crawler"])
    assert cache is not None
    assert crawler is not None
    assert cache.meta.status is ProfileStatus.LEARNING
    assert len(cache.entries.opens) < 100, sorted(cache.entries.opens)[:5]
    assert any("⋯" in p or "⟨n⟩" in p for p in cache.entries.opens), sorted(cache.entries.opens)
    assert crawler.meta.status is ProfileStatus.TOO_LARGE
    assert "cap" in crawler.meta.reason or "size" in crawler.meta.reason, crawler.meta.reason
    assert crawler.entries.total() <= MAX_ENTRIES
    skipped = rig.profiler_stats.skipped
    assert skipped[("exec", "too_large")] + skipped[("dns", "too_large")] > TOTAL // 5

    # Detection: the cooldown table is at its bound and evictions are counted.
    settings = DetectorSettings()
    assert len(rig.detector._dedup) <= COOLDOWN_KEYS
    assert rig.detector_stats.dedup_evictions["capacity"] > 0
    suppressed = rig.detector_stats.suppressed
    rate_limited = sum(n for (_, reason), n in suppressed.items() if reason == "rate_limit")
    assert rate_limited > TOTAL // 3
    # One "limit reached" alert (GW0001) per window and scope, never one per suppressed alert:
    # three anomaly rules fire here, each capped at `perRuleRateLimit` per one-minute window.
    alerts = rig.detector_stats.alerts
    windows = TOTAL // 60_000 + 2  # 1 ms per event; the flood straddles window boundaries
    assert 0 < alerts["GW0001"] <= windows * 3, alerts
    for rule in ("R0001", "R0002", "R0005"):
        assert 0 < alerts[rule] <= windows * settings.per_rule_rate_limit, alerts
    assert rig.out.lines == sum(alerts.values())

    # Every event and every alert is accounted for.
    assert rig.pipeline_stats.processed == rig.fed
    assert not rig.pipeline_stats.dropped
    handed = rig.pipeline_stats.alerts
    sent = rig.delivery_stats.sent["stdout"]
    dropped = sum(rig.delivery_stats.dropped.values())
    assert sent + dropped == handed, (sent, dropped, handed)
    assert rig.out.lines == sent


async def test_an_overrun_processing_queue_drops_and_counts_every_event() -> None:
    """The queue bound holds under a burst that the consumer cannot absorb: drops are counted."""
    stats = PipelineStats()
    seen = 0

    class Counting:
        def observe_until(self, events: Sequence[Event], start: int) -> int:
            nonlocal seen
            seen += len(events) - start
            return len(events)

        def evaluate(self, events: Sequence[Event]) -> list[Alert]:
            return []

    counting = Counting()
    pipe = Pipeline(
        profiler=counting,
        detector=counting,
        sink=lambda a: None,
        stats=stats,
        queue_batches=64,
        batch_size=BATCH,
        batch_delay_s=0.02,
    )
    fed = 0
    burst = list(flood(0, BATCH))
    for _ in range(1_000):  # no consumer runs meanwhile: 64 batches fit, the rest is dropped
        pipe.feed(burst)
        fed += len(burst)
    task = asyncio.create_task(pipe.run())
    await pipe.close()
    await task
    assert pipe.backlog == 0
    assert seen == 64 * BATCH
    assert stats.dropped[("processing", "queue_full")] == fed - seen
