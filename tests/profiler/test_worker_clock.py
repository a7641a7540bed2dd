"""A learner of some containers (one of N worker processes) keeps the event time of all of
them (`Learner(event_clock=...)`), so its decisions are those a single process would make."""

from __future__ import annotations

from dataclasses import dataclass

from profiler.cache import ProfileCache
from profiler.dirstore import DirectoryStore
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileStatus
from profiler.stats import ProfilerStats
from tests.profiler.helpers import T0, FakePods, S, container, exec_, settings

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")})
HOUR = 3600 * S


@dataclass
class Clock:
    """What `GadgetSource` reports: its first event and its latest, of any container."""

    first_event_ns: int = 0
    event_clock_ns: int = 0


def make(store: DirectoryStore, clock: Clock | None) -> tuple[ProfileCache, object]:
    from profiler.learning import Learner

    stats = ProfilerStats()
    cache = ProfileCache(stats)
    lrn = Learner(
        settings=settings(),
        store=store,
        cache=cache,
        pod_metadata=PODS,
        stats=stats,
        event_clock=clock,
    )
    return cache, lrn


async def test_a_worker_attaches_at_the_first_event_of_any_container(
    store: DirectoryStore,
) -> None:
    """The container started at T0, the node's first event came at T0 + 1 s, but this worker's
    first own event only 5 minutes later (other workers' containers were busy). Seen from the
    node's first event, its start-up was observed: the profile is complete, not partial."""
    c = container(started=T0)
    events = [exec_(c, T0 + 300 * S, "/bin/a"), exec_(c, T0 + HOUR + 1, "/bin/after")]
    clock = Clock(first_event_ns=T0 + S, event_clock_ns=T0 + HOUR + 1)
    cache, lrn = make(store, clock)
    lrn.observe(events)  # type: ignore[attr-defined]
    view = cache.get(KEY)
    assert view is not None
    assert view.status is ProfileStatus.COMPLETED
    # Without the node's clock the same learner judges the start-up unseen: learning starts
    # at its first event and ends partial an hour after it.
    cache_alone, alone = make(store, None)
    alone.observe([*events, exec_(c, T0 + 300 * S + HOUR, "/bin/later")])  # type: ignore[attr-defined]
    alone_view = cache_alone.get(KEY)
    assert alone_view is not None
    assert alone_view.status is ProfileStatus.PARTIAL


async def test_a_flush_closes_learning_at_the_time_of_every_stream(
    store: DirectoryStore,
) -> None:
    """The worker's container went quiet during its learning period; the other containers'
    events moved event time past its end, so the next flush completes it, as in one process."""
    c = container(started=T0)
    clock = Clock(first_event_ns=T0 + 1, event_clock_ns=T0 + 2)
    cache, lrn = make(store, clock)
    lrn.observe([exec_(c, T0 + 2, "/bin/a")])  # type: ignore[attr-defined]
    await lrn.flush()  # type: ignore[attr-defined]
    view = cache.get(KEY)
    assert view is not None
    assert view.status is ProfileStatus.LEARNING
    clock.event_clock_ns = T0 + HOUR + 5
    await lrn.flush()  # type: ignore[attr-defined]
    view = cache.get(KEY)
    assert view is not None
    assert view.status is ProfileStatus.COMPLETED
    stored = await store.get(KEY)
    assert stored is not None
    assert stored.meta.status is ProfileStatus.COMPLETED
