"""The learner → read model contract on event time (`Learner.observe_until`, `ProfileCache`).

Specifications, not regressions: each lifecycle decision is what the read model answers for the
workload's very next event, before any flush; a store version older than a local decision
never undoes it; a late event of the learning period is learned, not judged.
"""

from __future__ import annotations

from profiler.cache import ProfileCache
from profiler.dirstore import DirectoryStore
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileStatus
from tests.profiler.helpers import T0, FakePods, S, container, exec_, learner, open_

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")})
HOUR = 3600 * S


def status(cache: ProfileCache) -> ProfileStatus | None:
    view = cache.get(KEY)
    return view.status if view is not None else None


async def test_observe_until_stops_before_the_event_that_closes_learning(
    store: DirectoryStore,
) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0)
    c = container()
    batch = [
        exec_(c, T0 + 1, "/bin/a"),
        exec_(c, T0 + 2, "/bin/b"),
        exec_(c, T0 + HOUR, "/bin/after"),
        exec_(c, T0 + HOUR + 1, "/bin/after2"),
    ]
    assert lrn.observe_until(batch, 0) == 2
    # The first two events are judged against the learning profile ...
    assert status(cache) is ProfileStatus.LEARNING
    # ... the third closes learning itself, and it and the rest see the completed profile.
    assert lrn.observe_until(batch, 2) == 4
    assert status(cache) is ProfileStatus.COMPLETED
    view = cache.get(KEY)
    assert view is not None
    assert view.allows_exec("/bin/b", ["/bin/b"])
    assert not view.allows_exec("/bin/after", ["/bin/after"])
    assert await store.get(KEY) is None  # no flush was needed for any of it


async def test_a_new_container_is_a_cut_point_and_a_rollout_reopens_at_once(
    store: DirectoryStore,
) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0)
    old = container()
    lrn.observe([exec_(old, T0 + 1, "/bin/a"), exec_(old, T0 + HOUR, "/bin/x")])
    completed = cache.get(KEY)
    assert completed is not None
    assert completed.status is ProfileStatus.COMPLETED
    new = container(cid="c2", pod="web-9e8d-zzzzz", digest="sha256:bbb", template_hash="9e8d",
                    owner=("ReplicaSet", "web-9e8d"), started=T0 + 2 * HOUR)  # fmt: skip
    pods = FakePods(owners={("ReplicaSet", "web-9e8d"): ("Deployment", "web"),
                            ("ReplicaSet", "web-5d4f"): ("Deployment", "web")})  # fmt: skip
    lrn._pods = pods
    batch = [exec_(old, T0 + 2 * HOUR, "/bin/y"), exec_(new, T0 + 2 * HOUR + 1, "/bin/new")]
    # The old revision's event is judged against the completed profile ...
    assert lrn.observe_until(batch, 0) == 1
    assert status(cache) is ProfileStatus.COMPLETED
    # ... the new revision's first event reopens learning, visible to it at once.
    assert lrn.observe_until(batch, 1) == 2
    assert status(cache) is ProfileStatus.LEARNING
    reopened = cache.get(KEY)
    assert reopened is not None
    assert reopened is not completed


async def test_a_stale_store_version_never_undoes_a_local_decision(
    store: DirectoryStore,
) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0)
    c = container()
    lrn.observe([exec_(c, T0 + 1, "/bin/a")])
    await lrn.flush()
    stored_learning = await store.get(KEY)
    assert stored_learning is not None
    assert stored_learning.meta.status is ProfileStatus.LEARNING
    lrn.observe([exec_(c, T0 + HOUR, "/bin/x")])
    assert status(cache) is ProfileStatus.COMPLETED
    # The watch delivers the learning version late (same or older resourceVersion).
    cache.upsert(stored_learning)
    assert status(cache) is ProfileStatus.COMPLETED
    # Removing the stored object keeps what this node decided.
    cache.remove(KEY)
    assert status(cache) is ProfileStatus.COMPLETED
    assert cache.stats.by_status == {"completed": 1, "learning": 0}


async def test_completion_collapses_before_the_detector_sees_the_profile(
    store: DirectoryStore,
) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0, collapse_threshold=5)
    c = container()
    lrn.observe([open_(c, T0 + 1 + i, f"/srv/sessions/{i:04x}", "O_RDWR") for i in range(8)])
    lrn.observe([open_(c, T0 + HOUR, "/srv/sessions/ffff", "O_RDWR")])
    view = cache.get(KEY)
    assert view is not None
    assert view.status is ProfileStatus.COMPLETED
    assert view.allows_open("/srv/sessions/new-one", ["O_RDWR"])
    assert not view.allows_open("/srv/sessions/new-one", ["O_WRONLY"])
    assert not view.allows_open("/srv/other", ["O_RDWR"])


async def test_a_late_event_of_the_learning_period_is_learned_and_published(
    store: DirectoryStore,
) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0)
    c = container()
    lrn.observe([exec_(c, T0 + 1, "/bin/a"), exec_(c, T0 + HOUR + 5, "/bin/after")])
    before = cache.get(KEY)
    assert before is not None
    assert not before.allows_open("/etc/app.conf", ["O_RDONLY"])
    # An open stamped inside the learning period arrives after the period closed (another
    # gadget stream lagging): learned, and the detector's view includes it at once.
    assert lrn.observe_until([open_(c, T0 + HOUR - 1, "/etc/app.conf", "O_RDONLY")], 0) == 1
    after = cache.get(KEY)
    assert after is not None
    assert after.allows_open("/etc/app.conf", ["O_RDONLY"])
    assert after.status is ProfileStatus.COMPLETED
    # An event after the end is still not learned.
    lrn.observe([open_(c, T0 + HOUR + 6, "/etc/other.conf", "O_RDONLY")])
    final = cache.get(KEY)
    assert final is not None
    assert not final.allows_open("/etc/other.conf", ["O_RDONLY"])
    await lrn.flush()
    stored = await store.get(KEY)
    assert stored is not None
    assert "/etc/app.conf" in stored.entries.opens


async def test_the_cap_applies_from_the_event_after_the_one_that_reached_it(
    store: DirectoryStore,
) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0, max_entries=100)
    c = container()
    batch = [exec_(c, T0 + 1 + i, f"/bin/x{i}") for i in range(101)]
    batch.append(exec_(c, T0 + 200, "/bin/y"))
    assert lrn.observe_until(batch, 0) == 101  # the 101st entry hit the cap
    assert status(cache) is ProfileStatus.LEARNING
    assert lrn.observe_until(batch, 101) == 102
    assert status(cache) is ProfileStatus.TOO_LARGE


async def test_flush_timing_does_not_change_the_cap_decision(store: DirectoryStore) -> None:
    """A directory that collapses keeps the profile under the cap, flushed or not."""
    outcomes = []
    for flush_midway in (False, True):
        cache = ProfileCache()
        sub = DirectoryStore(store.root / f"run-{flush_midway}")
        lrn = learner(sub, cache=cache, pods=PODS, attached_at_ns=T0, max_entries=100)
        c = container()
        first = [open_(c, T0 + 1 + i, f"/data/f{i}", "O_RDONLY") for i in range(80)]
        second = [open_(c, T0 + 100 + i, f"/data/g{i}", "O_RDONLY") for i in range(80)]
        lrn.observe(first)
        if flush_midway:
            await lrn.flush()
        lrn.observe(second)
        lrn.observe([open_(c, T0 + HOUR, "/x", "O_RDONLY")])
        outcomes.append(status(cache))
    assert outcomes == [ProfileStatus.COMPLETED, ProfileStatus.COMPLETED]
