"""The Kubernetes store through the official client against the stand-in API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gadgetclient.events import ExecEvent, OpenEvent
from profiler.cache import ProfileCache
from profiler.errors import ConflictError, InvalidProfileError, ProfilerError, TooLargeError
from profiler.identity import WorkloadKey
from profiler.k8s_store import KubernetesStore
from profiler.profiles import NO_PEER, Profile, ProfileMeta
from profiler.readmodel import ProfileStatus
from tests.profiler.helpers import T0, FakePods, container, exec_, learner, open_
from tests.standins.fixtures import KubeApi

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")})


@pytest.fixture
async def k8s(kube_api: KubeApi) -> AsyncIterator[KubernetesStore]:
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    store = KubernetesStore(kube_api.api_client(), threads=4)
    yield store
    await store.aclose()


def sample() -> Profile:
    p = Profile(key=KEY, meta=ProfileMeta(learning_start_ns=T0, learning_period_ns=10))
    p.entries.add_exec("/bin/sh", ("/bin/sh", "-c", "true"))
    p.entries.add_open("/etc/hosts", ("O_RDONLY",))
    return p


async def test_crud_and_optimistic_concurrency(k8s: KubernetesStore, kube_api: KubeApi) -> None:
    assert await k8s.get(KEY) is None
    created = await k8s.create(sample())
    assert created.resource_version
    raw = kube_api.get("applicationprofiles.kubescape.io", "deployment-web-nginx", "shop")
    assert raw is not None
    assert raw["spec"]["workload"]["name"] == "web"
    with pytest.raises(ConflictError):
        await k8s.create(sample())
    fetched = await k8s.get(KEY)
    assert fetched == created
    fetched.entries.syscalls.add("read")
    updated = await k8s.update(fetched)
    assert updated.resource_version != created.resource_version
    stale = created.copy()
    stale.entries.syscalls.add("write")
    with pytest.raises(ConflictError):
        await k8s.update(stale)  # resourceVersion changed since it was read
    profiles, errors = await k8s.list("shop")
    assert [p.key for p in profiles] == [KEY]
    assert errors == []
    await k8s.delete(KEY)
    assert await k8s.get(KEY) is None


async def test_schema_rejection_and_size_limit(k8s: KubernetesStore) -> None:
    bad = sample()
    bad.entries.ingress.add((70000, "TCP", "1.2.3.4", NO_PEER))
    with pytest.raises(InvalidProfileError):
        await k8s.create(bad)
    huge = sample()
    for i in range(40_000):
        huge.entries.add_open(f"/data/some/long/directory/name/file-{i:06d}.bin", ("O_RDONLY",))
    with pytest.raises(TooLargeError):
        await k8s.create(huge)


async def test_concurrent_learners_with_injected_conflicts(
    k8s: KubernetesStore, kube_api: KubeApi
) -> None:
    learners = [
        learner(
            k8s,
            pods=PODS,
            attached_at_ns=T0,
            flush_attempts=3,
            collapse_threshold=1000,
            generalize=frozenset(),
        )
        for _ in range(4)
    ]
    expected: set[str] = set()
    for round_ in range(3):
        kube_api.inject_conflicts("applicationprofiles.kubescape.io", 3)
        for i, lrn in enumerate(learners):
            c = container(cid=f"c{i}", pod=f"web-5d4f-{i}")
            events: list[ExecEvent | OpenEvent] = [
                open_(c, T0 + j, f"/n{i}/r{round_}/f{j}", "O_RDONLY") for j in range(3)
            ]
            events.append(exec_(c, T0, f"/bin/n{i}-{round_}"))
            expected.update(e.path for e in events)
            lrn.observe(events)
        await asyncio.gather(*(lrn.flush() for lrn in learners))
    for _ in range(20):
        if all(lrn.stats.pending_deltas == 0 for lrn in learners):
            break
        await asyncio.gather(*(lrn.flush() for lrn in learners))
    stored = await k8s.get(KEY)
    assert stored is not None
    assert set(stored.entries.execs) | set(stored.entries.opens) == expected
    assert sum(lrn.stats.writes[("kubernetes", "conflict")] for lrn in learners) >= 9


class SignallingCache(ProfileCache):
    """A real cache that also wakes the test when something changes (no sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def upsert(self, profile: Profile) -> None:
        super().upsert(profile)
        self.changed.set()

    def remove(self, key: WorkloadKey) -> None:
        super().remove(key)
        self.changed.set()

    def invalid(self, error: ProfilerError) -> None:
        super().invalid(error)
        self.changed.set()


async def wait_for(cache: SignallingCache, predicate: object) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # type: ignore[operator]
            cache.changed.clear()
            await cache.changed.wait()


async def test_watch_feeds_the_cache(k8s: KubernetesStore, kube_api: KubeApi) -> None:
    cache = SignallingCache()
    task = asyncio.create_task(k8s.watch(cache))
    try:
        await asyncio.wait_for(cache.wait_synced(), 10)
        assert len(cache) == 0
        created = await k8s.create(sample())
        await wait_for(cache, lambda: cache.get(KEY) is not None)
        view = cache.get(KEY)
        assert view is not None
        assert view.allows_exec("/bin/sh", ["/bin/sh", "-c", "true"])
        done = created.copy()
        done.meta.status = ProfileStatus.COMPLETED
        await k8s.update(done)
        await wait_for(cache, lambda: cache.get(KEY).status is ProfileStatus.COMPLETED)  # type: ignore[union-attr]
        # A foreign object our parser rejects is counted, and the watch goes on.
        kube_api.add(
            {
                "apiVersion": "kubescape.io/v1",
                "kind": "ApplicationProfile",
                "metadata": {"name": "pod-legacy", "namespace": "shop"},
                "spec": {"containers": [{"name": "x", "syscalls": ["read"]}]},
            }
        )
        await wait_for(cache, lambda: cache.stats.errors[("cache", "invalid")] == 1)
        await k8s.delete(KEY)
        await wait_for(cache, lambda: cache.get(KEY) is None)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
