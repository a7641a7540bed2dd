"""Kubernetes mode end to end: stand-in API server + replay-server process + agent process.

The agent (`kubernetes.mode=on`, `profiler.store=kubernetes`) reads the capture over real gRPC
from a separate `gadgetwatch replay-server` on a unix socket, watches the node's pods, the
cluster's RuntimeRuleAlertBinding and RuntimeAlertException, writes ApplicationProfile
resources (the stand-in enforces the CRD schema) and delivers alerts to a webhook.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from profiler import documents
from tests.e2e.cluster import seed
from tests.e2e.harness import Agent, eventually, start_replay_server
from tests.e2e.kube_agent import (
    completed_profiles,
    create_rules,
    dns_events,
    profile_states,
    start_agent,
)
from tests.e2e.scenario import (
    CAPTURE,
    EXPECTED,
    LEARNED_EXECS,
    NAMESPACE,
    PROFILE_NAMES,
    SILENCED_BY_EXCEPTION,
    expected_of,
)
from tests.exporters.receivers import HttpReceiver
from tests.standins.fixtures import KubeApi
from tests.standins.kube_schema import validate_custom_object

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy" / "crds" / f"{documents.CRD_NAME}.yaml"
#: Replay pace of the outage test: the 95 payloads take about 2.5 s, several flush periods.
OUTAGE_RATE = 40
#: Payloads decoded while the server is down before it comes back: most of the capture.
PROCESSED_IN_OUTAGE = 80


async def test_profiles_land_as_resources_and_the_exception_silences_one_alert(
    sockdir: Path, env: dict[str, str], kube_api: KubeApi, webhook: HttpReceiver
) -> None:
    seed(kube_api)
    await create_rules(kube_api)
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env)
    agent: Agent | None = None
    try:
        agent = await start_agent(env, kube_api, socket, webhook)
        ready = await agent.wait_ready()
        assert ready["checks"]["pod-cache"]["ready"] is True

        # -- alerts: all expected ones but the finding the exception allows -------------------
        want = sorted(e for e in EXPECTED if e != SILENCED_BY_EXCEPTION)
        await eventually(lambda: len(webhook.alerts()) >= len(want), what="webhook alerts")
        metrics = await agent.wait_metrics(
            lambda m: (
                m.value("gadgetwatch_exporter_alerts_sent_total", exporter="http") >= len(want)
            ),
            what="alerts sent",
        )
        assert sorted(expected_of(a) for a in webhook.alerts()) == want
        suppressed = metrics.by(
            "gadgetwatch_detector_alerts_suppressed_total", "rule_id", reason="exception"
        )
        # Both DNS events of the allowed lookup (query and response) are suppressed by it.
        assert suppressed == {"R0005": dns_events("updates.example.org.")}
        assert metrics.by("gadgetwatch_detector_alerts_total", "rule_id") == Counter(
            e.rule_id for e in want
        )

        # -- profiles: one ApplicationProfile per workload container, completed ----------------
        await eventually(
            lambda: set(completed_profiles(kube_api)) == PROFILE_NAMES,
            what="completed ApplicationProfiles",
            context=lambda: str(
                [o["metadata"]["name"] for o in kube_api.objects(documents.CRD_NAME)]
            ),
        )
        schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        profiles = completed_profiles(kube_api)
        for name, obj in profiles.items():
            result = validate_custom_object(obj, schema)
            assert (result.causes, result.unknown) == ([], []), name
        workload = profiles["deployment-web-app"]["spec"]["workload"]
        assert (workload["namespace"], workload["kind"], workload["name"]) == (
            NAMESPACE, "Deployment", "web"
        )  # fmt: skip
        (app,) = profiles["deployment-web-app"]["spec"]["containers"]
        assert {e["path"] for e in app["execs"]} == LEARNED_EXECS
        # Owner resolution asked the API for the ReplicaSets.
        paths = {r.path for r in kube_api.request_log()}
        assert f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets/web-5d4f8c7b9" in paths

        assert await agent.terminate() == 0
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()


@pytest.mark.parametrize("watch_cluster", [False, True], ids=["no-rule-watch", "rule-watch"])
async def test_profile_writes_survive_an_api_server_outage(
    sockdir: Path,
    env: dict[str, str],
    kube_api: KubeApi,
    webhook: HttpReceiver,
    watch_cluster: bool,
) -> None:
    """The API server goes away after start: profile flushes fail (counted, kept), the agent
    keeps running, and once the server is back every profile is written.

    `rule-watch` (the binding/exception watcher, on by default in a cluster) once let urllib3's
    ProtocolError of a dropped watch escape and stop the agent (fixed in afb3ea4);
    `no-rule-watch` isolates the profile side."""
    seed(kube_api)
    socket = sockdir / "ig.sock"
    # Paced, so events (and profile changes to write) keep coming after the server goes down.
    server = await start_replay_server(CAPTURE, socket, env=env, rate=OUTAGE_RATE)
    agent: Agent | None = None
    try:
        env = {**env, "GADGETWATCH_DETECTOR__WATCH_CLUSTER": str(watch_cluster).lower()}
        agent = await start_agent(env, kube_api, socket, webhook)
        await agent.wait_ready()
        kube_api.set_down(True)
        await agent.wait_metrics(
            lambda m: (
                m.value("gadgetwatch_profiler_writes_total", store="kubernetes", result="failed")
                > 0
                and m.value("gadgetwatch_profiler_pending_deltas") > 0
            ),
            what="failed profile writes, kept as pending deltas",
        )
        # The outage lasts a few more flush periods (the replay goes on meanwhile).
        await agent.wait_metrics(
            lambda m: m.value("gadgetwatch_pipeline_events_processed_total") >= PROCESSED_IN_OUTAGE,
            what="events processed while the API server is down",
        )
        assert agent.proc.running, agent.proc.tail()
        kube_api.set_down(False)
        await eventually(
            lambda: set(completed_profiles(kube_api)) == PROFILE_NAMES,
            what="profiles written after the outage",
            context=lambda: f"{profile_states(kube_api)}\n{agent.proc.tail(20) if agent else ''}",
        )
        (app,) = completed_profiles(kube_api)["deployment-web-app"]["spec"]["containers"]
        assert {e["path"] for e in app["execs"]} == LEARNED_EXECS
        await agent.wait_metrics(
            lambda m: m.value("gadgetwatch_profiler_pending_deltas") == 0,
            what="no pending profile deltas",
        )
        assert await agent.terminate() == 0
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()
