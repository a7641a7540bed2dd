"""Profile writes to the API server are paced by asyncio-throttle (profiler.writesPerSecond).

Driven against the Kubernetes API stand-in with the real client; the throttle's clock is the
event loop's, so the test measures the loop time that 3x the rate of writes took: pacing means
the last writes had to wait for the next period.
"""

from __future__ import annotations

import asyncio

import pytest

from profiler.identity import WorkloadKey
from profiler.k8s_store import KubernetesStore
from profiler.profiles import Profile, ProfileMeta
from tests.profiler.helpers import T0
from tests.standins.fixtures import KubeApi


def profile(name: str) -> Profile:
    p = Profile(
        key=WorkloadKey("shop", "Deployment", name, "app"),
        meta=ProfileMeta(learning_start_ns=T0, learning_period_ns=10),
    )
    p.entries.add_exec("/bin/sh", ("/bin/sh", "-c", "true"))
    return p


async def test_writes_are_paced_to_the_configured_rate(kube_api: KubeApi) -> None:
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    store = KubernetesStore(kube_api.api_client(), threads=4, writes_per_second=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        await asyncio.gather(*(store.create(profile(f"w{i}")) for i in range(11)))
    finally:
        await store.aclose()
    # 5 per second: writes 1-5 in the first second, 6-10 in the second, 11 in the third.
    assert loop.time() - start >= 2.0
    reader = KubernetesStore(kube_api.api_client())
    try:
        listed, errors = await reader.list("shop")
    finally:
        await reader.aclose()
    assert errors == []
    assert len(listed) == 11


def test_rate_must_be_positive(kube_api: KubeApi) -> None:
    with pytest.raises(ValueError, match="positive"):
        KubernetesStore(kube_api.api_client(), writes_per_second=0)
