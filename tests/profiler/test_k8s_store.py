"""The Kubernetes store through the official client against the stand-in API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gadgetclient.events import ExecEvent, OpenEvent
from gadgetwatch.k8s import agent_permissions
from profiler.cache import ProfileCache
from profiler.documents import API_VERSION, CRD_NAME, GROUP, PLURAL
from profiler.errors import (
    ConflictError,
    InvalidProfileError,
    ProfilerError,
    StoreError,
    TooLargeError,
)
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
    raw = kube_api.get(CRD_NAME, "deployment-web-nginx", "shop")
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
        kube_api.inject_conflicts(CRD_NAME, 3)
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
                "apiVersion": API_VERSION,
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


def _verb(method: str, path: str) -> str:
    """The RBAC verb of one request, as the API server's authorizer derives it."""
    if method == "GET":
        if "watch=true" in path.lower() or "watch=1" in path:
            return "watch"
        plural_last = path.split("?")[0].rstrip("/").endswith("/applicationprofiles")
        return "list" if plural_last else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]


async def test_rbac_grants_exactly_the_verbs_the_agent_calls(
    k8s: KubernetesStore, kube_api: KubeApi
) -> None:
    """Every operation of the store the agent uses (all but `delete`, which only the CLI
    calls), against an API server that enforces `agent_permissions` (what the chart and the
    kustomize base grant): nothing is refused, and every granted verb on applicationprofiles is
    one the code calls."""
    granted = {c.verb for c in agent_permissions() if c.resource == "applicationprofiles"}
    for verb in granted:
        kube_api.allow(verb, GROUP, PLURAL)
    kube_api.set_enforce_rbac(True)
    cache = SignallingCache()
    task = asyncio.create_task(k8s.watch(cache))
    try:
        await asyncio.wait_for(cache.wait_synced(), 10)
        await k8s.create(sample())
        # Synced before the create: only the watch stream can have delivered it.
        await wait_for(cache, lambda: cache.get(KEY) is not None)
        fetched = await k8s.get(KEY)
        assert fetched is not None
        fetched.entries.syscalls.add("read")
        await k8s.update(fetched)
        await k8s.list("shop")
        await k8s.list()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    log = [r for r in kube_api.request_log() if "/applicationprofiles" in r.path]
    assert all(r.status < 400 for r in log), log
    # The open watch request is logged by the stand-in only when it completes.
    used = {_verb(r.method, r.path) for r in log} | {"watch"}
    assert used == granted


@pytest.mark.parametrize("namespace", ["..", "a/b", "../kube-system", "Shop", "x\n"])
async def test_an_invalid_namespace_never_reaches_an_api_path(
    k8s: KubernetesStore, kube_api: KubeApi, namespace: str
) -> None:
    key = WorkloadKey(namespace, "Deployment", "web", "nginx")
    with pytest.raises(StoreError, match="not a valid Kubernetes namespace"):
        await k8s.create(Profile(key=key))
    with pytest.raises(StoreError, match="not a valid Kubernetes namespace"):
        await k8s.get(key)
    assert not [r for r in kube_api.request_log() if "/applicationprofiles" in r.path]
