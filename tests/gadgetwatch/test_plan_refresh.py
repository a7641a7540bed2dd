"""The detector's per-container plans follow the pod cache (labels, mounts, owner)."""

from __future__ import annotations

import asyncio
import dataclasses

from detector.config import DetectorSettings
from detector.evaluating import Detector
from detector.stats import DetectorStats
from gadgetwatch.agent import Agent
from gadgetwatch.k8s import KubeClient, PodCache
from tests.detector.builders import WEB, exec_ev
from tests.detector.profiles import MemoryProfiles
from tests.gadgetwatch.test_k8s import _pod
from tests.standins.fixtures import KubeApi

WAIT_S = 10.0


async def test_an_exec_from_a_mount_is_caught_once_the_pod_cache_learns_the_mount(
    kube_api: KubeApi,
) -> None:
    container = dataclasses.replace(WEB, node="node-a", pod="web-1")
    kube = KubeClient.from_settings(api_server=kube_api.url)
    pods = PodCache(kube, node_name="node-a", retry_delay=0.05, max_retry_delay=0.2)
    detector = Detector(
        settings=DetectorSettings(),
        profiles=MemoryProfiles(),
        pod_metadata=pods,
        stats=DetectorStats(),
    )
    cache_task = asyncio.create_task(pods.run())
    refresh = asyncio.create_task(Agent._refresh_plans(pods, detector))
    try:
        await asyncio.wait_for(pods.ready.wait(), WAIT_S)
        # The pod is not known yet: its plan has no mounts, so R1004 cannot fire.
        first = detector.evaluate([exec_ev("/data/tool", "/data/tool", t=1, c=container)])
        assert "R1004" not in {a.rule.id for a in first}
        kube_api.add(_pod("web-1"))  # mounts /data into container "app"
        await asyncio.wait_for(
            pods.wait_until(lambda: pods.pod("shop", "web-1") is not None), WAIT_S
        )
        # The refresh task waited on the cache before this test did, and asyncio wakes waiters
        # in order: by the time we resume, it has invalidated the plans.
        later = detector.evaluate([exec_ev("/data/tool2", "/data/tool2", t=2, c=container)])
        assert "R1004" in {a.rule.id for a in later}
    finally:
        for task in (refresh, cache_task):
            task.cancel()
        await asyncio.gather(refresh, cache_task, return_exceptions=True)
        await pods.aclose()
        await kube.aclose()
