"""Lifecycle on an event-time clock: learning, completion, partial, annotation, rollouts."""

from __future__ import annotations

from profiler.cache import ProfileCache
from profiler.config import RolloutPolicy
from profiler.dirstore import DirectoryStore
from profiler.identity import WorkloadKey
from profiler.profiles import ManagedBy
from profiler.readmodel import ProfileStatus
from tests.profiler.helpers import T0, FakePods, S, container, exec_, learner

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")})
HOUR = 3600 * S


def status_of(lrn: object, key: WorkloadKey = KEY) -> ProfileStatus:
    profile = lrn.profile(key)  # type: ignore[attr-defined]
    assert profile is not None
    return profile.meta.status  # type: ignore[no-any-return]


async def test_completes_after_the_learning_period_in_event_time(store: DirectoryStore) -> None:
    cache = ProfileCache()
    lrn = learner(store, cache=cache, pods=PODS, attached_at_ns=T0)
    c = container(started=T0)
    lrn.observe([exec_(c, T0 + 1, "/bin/a"), exec_(c, T0 + HOUR - 1, "/bin/b")])
    assert status_of(lrn) is ProfileStatus.LEARNING
    # The first event at or past the end closes learning and is not learned.
    lrn.observe([exec_(c, T0 + HOUR, "/bin/late")])
    assert status_of(lrn) is ProfileStatus.COMPLETED
    assert lrn.stats.skipped[("exec", "profile_completed")] == 1
    view = cache.get(KEY)
    assert view is not None
    assert view.status is ProfileStatus.COMPLETED
    await lrn.flush()
    stored = await store.get(KEY)
    assert stored is not None
    assert stored.meta.status is ProfileStatus.COMPLETED
    assert stored.meta.reason == "learning period 1h elapsed"
    assert sorted(stored.entries.execs) == ["/bin/a", "/bin/b"]


async def test_idle_profile_completes_on_the_clock_of_other_events(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    idle = container(started=T0)
    busy = container(cid="x", name="sidecar", started=T0)
    lrn.observe([exec_(idle, T0 + 1, "/bin/a"), exec_(busy, T0 + 2 * HOUR, "/bin/b")])
    assert status_of(lrn) is ProfileStatus.LEARNING
    await lrn.flush()  # flush ticks the event clock
    assert status_of(lrn) is ProfileStatus.COMPLETED


async def test_attached_container_gives_a_partial_profile(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    old = container(started=T0 - 3 * HOUR)  # running long before the agent attached
    lrn.observe([exec_(old, T0 + 5 * S, "/bin/a")])
    profile = lrn.profile(KEY)
    assert profile is not None
    assert profile.meta.partial
    assert profile.meta.learning_start_ns == T0 + 5 * S  # starts at the first event, not 3h ago
    lrn.observe([exec_(old, T0 + 5 * S + HOUR, "/bin/b")])
    assert status_of(lrn) is ProfileStatus.PARTIAL


async def test_start_within_grace_is_not_partial(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    lrn.observe([exec_(container(started=T0 - 5 * S), T0 + 1, "/bin/a")])
    profile = lrn.profile(KEY)
    assert profile is not None
    assert not profile.meta.partial


async def test_one_replica_seen_from_start_clears_partial(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    old = container(cid="old", started=T0 - HOUR)
    new = container(cid="new", pod="web-5d4f-new", started=T0 + 60 * S)
    lrn.observe([exec_(old, T0 + 1, "/bin/a"), exec_(new, T0 + 61 * S, "/bin/b")])
    profile = lrn.profile(KEY)
    assert profile is not None
    assert not profile.meta.partial
    lrn.observe([exec_(old, T0 + 2 * HOUR, "/bin/c")])
    assert status_of(lrn) is ProfileStatus.COMPLETED


async def test_partial_profile_relearns_from_an_observed_start(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    old = container(cid="old", started=T0 - HOUR)
    lrn.observe([exec_(old, T0 + 1, "/bin/a"), exec_(old, T0 + 2 * HOUR, "/bin/x")])
    assert status_of(lrn) is ProfileStatus.PARTIAL
    fresh = container(cid="fresh", pod="web-5d4f-zz", started=T0 + 3 * HOUR)
    lrn.observe([exec_(fresh, T0 + 3 * HOUR + 1, "/bin/b")])
    profile = lrn.profile(KEY)
    assert profile is not None
    assert profile.meta.status is ProfileStatus.LEARNING
    assert profile.meta.series == 2
    lrn.observe([exec_(fresh, T0 + 5 * HOUR, "/bin/c")])  # rollout period (1h) elapsed
    assert status_of(lrn) is ProfileStatus.COMPLETED
    assert sorted(profile.entries.execs) == ["/bin/a", "/bin/b"]


async def test_learning_period_annotation_overrides(store: DirectoryStore) -> None:
    pods = FakePods(
        owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")},
        annotations={"web-5d4f-abcde": {"gadgetwatch.io/learning-period": "10m"}},
    )
    lrn = learner(store, pods=pods, attached_at_ns=T0)
    c = container(started=T0)
    lrn.observe([exec_(c, T0 + 1, "/bin/a"), exec_(c, T0 + 600 * S, "/bin/b")])
    assert status_of(lrn) is ProfileStatus.COMPLETED


async def test_bad_annotation_is_counted_and_the_default_applies(store: DirectoryStore) -> None:
    pods = FakePods(
        owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")},
        annotations={"web-5d4f-abcde": {"gadgetwatch.io/learning-period": "soon"}},
    )
    lrn = learner(store, pods=pods, attached_at_ns=T0)
    lrn.observe([exec_(container(), T0 + 1, "/bin/a")])
    profile = lrn.profile(KEY)
    assert profile is not None
    assert profile.meta.learning_period_ns == HOUR
    assert lrn.stats.errors[("annotation", "invalid")] == 1


async def _completed(store: DirectoryStore, policy: RolloutPolicy) -> object:
    lrn = learner(store, pods=PODS, attached_at_ns=T0, rollout_policy=policy)
    c = container(started=T0)
    lrn.observe([exec_(c, T0 + 1, "/bin/a"), exec_(c, T0 + HOUR, "/bin/x")])
    await lrn.flush()
    return lrn


async def test_rollout_relearn_reopens_and_merges(store: DirectoryStore) -> None:
    lrn = await _completed(store, RolloutPolicy.RELEARN)
    v2 = container(
        cid="v2", pod="web-77aa-q", owner=("ReplicaSet", "web-77aa"), template_hash="77aa",
        digest="sha256:bbb", started=T0 + 2 * HOUR,
    )  # fmt: skip
    pods = FakePods(owners={("ReplicaSet", "web-77aa"): ("Deployment", "web")})
    lrn._pods = pods  # type: ignore[attr-defined]  # the pod cache learned the new ReplicaSet
    lrn.observe([exec_(v2, T0 + 2 * HOUR + 1, "/bin/new")])  # type: ignore[attr-defined]
    profile = lrn.profile(KEY)  # type: ignore[attr-defined]
    assert profile.meta.status is ProfileStatus.LEARNING
    assert profile.meta.series == 2
    assert profile.meta.reason == "rollout: new image digest sha256:bbb"
    lrn.observe([exec_(v2, T0 + 3 * HOUR, "/bin/after")])  # type: ignore[attr-defined]
    await lrn.flush()  # type: ignore[attr-defined]
    stored = await store.get(KEY)
    assert stored is not None
    assert stored.meta.status is ProfileStatus.COMPLETED
    assert sorted(stored.entries.execs) == ["/bin/a", "/bin/new"]
    assert stored.meta.image_digests == {"sha256:aaa", "sha256:bbb"}
    assert stored.meta.revisions == {"5d4f", "77aa"}


async def test_rollout_keep_leaves_the_profile_completed(store: DirectoryStore) -> None:
    lrn = await _completed(store, RolloutPolicy.KEEP)
    v2 = container(cid="v2", digest="sha256:bbb", started=T0 + 2 * HOUR)
    lrn.observe([exec_(v2, T0 + 2 * HOUR + 1, "/bin/new")])  # type: ignore[attr-defined]
    assert status_of(lrn) is ProfileStatus.COMPLETED
    await lrn.flush()  # type: ignore[attr-defined]
    stored = await store.get(KEY)
    assert stored is not None
    assert sorted(stored.entries.execs) == ["/bin/a"]
    assert stored.meta.image_digests == {"sha256:aaa", "sha256:bbb"}  # provenance recorded


async def test_restart_of_same_revision_does_not_reopen(store: DirectoryStore) -> None:
    lrn = await _completed(store, RolloutPolicy.RELEARN)
    again = container(cid="again", started=T0 + 2 * HOUR)
    lrn.observe([exec_(again, T0 + 2 * HOUR + 1, "/bin/new")])  # type: ignore[attr-defined]
    assert status_of(lrn) is ProfileStatus.COMPLETED


async def test_agent_restart_continues_from_the_store(store: DirectoryStore) -> None:
    first = await _completed(store, RolloutPolicy.RELEARN)
    assert first is not None
    cache = ProfileCache()
    seen: dict[object, object] = {}
    await store.resync(cache, seen)  # type: ignore[arg-type]
    second = learner(store, cache=cache, pods=PODS, attached_at_ns=T0 + 5 * HOUR)
    c = container(cid="c9", started=T0 - HOUR)  # same revision, already running
    second.observe([exec_(c, T0 + 5 * HOUR, "/bin/other")])
    assert status_of(second) is ProfileStatus.COMPLETED
    assert second.stats.skipped[("exec", "profile_completed")] == 1


async def test_user_owned_profile_is_never_learned_into(store: DirectoryStore) -> None:
    from profiler.profiles import Profile, ProfileMeta

    user = Profile(
        key=KEY, meta=ProfileMeta(status=ProfileStatus.COMPLETED, managed_by=ManagedBy.USER)
    )
    user.entries.add_exec("/bin/only", ("/bin/only",))
    await store.create(user)
    # A learner that has not seen the user profile yet (cache empty) learns and flushes.
    lrn = learner(store, pods=PODS, attached_at_ns=T0)
    lrn.observe([exec_(container(), T0 + 1, "/bin/learned")])
    await lrn.flush()
    stored = await store.get(KEY)
    assert stored is not None
    assert list(stored.entries.execs) == ["/bin/only"]
    assert stored.resource_version == "1"
    assert lrn.stats.writes[("directory", "kept")] == 1
    lrn.observe([exec_(container(), T0 + 2, "/bin/more")])
    assert lrn.stats.skipped[("exec", "user_owned")] == 1
