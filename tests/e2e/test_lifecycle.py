"""Lifecycle end to end: SIGTERM mid-stream, and a destination that is down at start.

SIGTERM must stop the sources, drain the pipeline, flush profiles and let the exporters deliver
what the detector emitted, within `pipeline.shutdownDeadline`, exiting 0. A dead AlertManager
must not stop the agent or the other exporters; it shows in /readyz and /metrics, and once it
comes up it receives what waited in its queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Agent, eventually, start_replay_server
from tests.e2e.scenario import (
    CAPTURE,
    EXPECTED,
    LEARNED_EXECS,
    LEARNING_PERIOD,
    NAMESPACE,
    capture_counts,
    expected_of,
)
from tests.e2e.test_host import check_profiles_dir, learned_paths, write_config
from tests.exporters.daemons import Alertmanager
from tests.exporters.helpers import free_port
from tests.exporters.receivers import HttpReceiver

#: Shutdown deadline given to the agent; the tests allow this plus interpreter start/stop.
SHUTDOWN_DEADLINE_S = 5
EXIT_MARGIN_S = 3
#: Replay pace of the SIGTERM test: the capture's 95 payloads take about 4 s, so the stop
#: lands in the middle of the intrusion and the normal traffic after it.
SIGTERM_RATE = 25


async def test_sigterm_mid_stream_flushes_profiles_and_delivers_every_alert(
    tmp_path: Path, env: dict[str, str], webhook: HttpReceiver
) -> None:
    profiles = tmp_path / "profiles"
    env = {**env, "GADGETWATCH_PIPELINE__SHUTDOWN_DEADLINE": f"{SHUTDOWN_DEADLINE_S}s"}
    agent = await Agent.start(
        [
            "--replay", str(CAPTURE),
            "--replay-rate", str(SIGTERM_RATE),
            "--learning-period", LEARNING_PERIOD,
            "--profiles-dir", str(profiles),
            "--stdout",
            "--webhook", webhook.url,
            "--summary",
        ],
        env=env,
    )  # fmt: skip
    try:
        await agent.wait_ready()
        # The intrusion has begun: alerts are on their way, events still streaming.
        await eventually(lambda: len(webhook.alerts()) >= 1, what="the first alert")
        assert agent.proc.running
        stopped_at = time.monotonic()
        code = await agent.terminate(within=SHUTDOWN_DEADLINE_S + EXIT_MARGIN_S)
        assert code == 0, agent.proc.tail()
        assert time.monotonic() - stopped_at < SHUTDOWN_DEADLINE_S + EXIT_MARGIN_S
    finally:
        await agent.proc.stop()

    log = agent.proc.stderr
    assert any('"event":"stop requested"' in line for line in log)
    summary = log[log.index("gadgetwatch summary") :]
    _, decoded = capture_counts(CAPTURE)
    processed = int(summary[1].split("processed ")[1].split(",")[0])
    assert 0 < processed < sum(decoded.values()), "the stop did not land mid-stream"
    emitted = int(summary[3].strip().removeprefix("alerts: "))

    # Everything the detector emitted reached both destinations (nothing dropped, nothing
    # unaccounted), and it is a part of the scenario's alerts: no false positive.
    stdout = agent.stdout_alerts()
    assert emitted == len(stdout) == len(webhook.alerts()) > 0
    assert {a["fingerprint"] for a in stdout} == {a["fingerprint"] for a in webhook.alerts()}
    assert {expected_of(a) for a in stdout} <= set(EXPECTED)

    # Profiles were flushed at the stop (the update period, 1 min, never elapsed).
    docs = check_profiles_dir(profiles)
    assert learned_paths(docs["deployment-web-app"], "execs") == LEARNED_EXECS


async def test_dead_alertmanager_at_start_then_recovers(
    tmp_path: Path,
    sockdir: Path,
    env: dict[str, str],
    webhook: HttpReceiver,
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    port = free_port()  # nothing listens here until the test starts Alertmanager on it
    am_url = f"http://127.0.0.1:{port}"
    # Fast retries, so the recovery is seen soon after AlertManager starts.
    fast = {"retryInitialBackoff": "50ms", "retryMaxBackoff": "200ms"}
    config = write_config(tmp_path / "gadgetwatch.yaml", alertmanager=fast)
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env)
    agent: Agent | None = None
    n = len(EXPECTED)
    try:
        agent = await Agent.start(
            [
                "--config", str(config),
                "--target", f"unix://{socket}",
                "--learning-period", LEARNING_PERIOD,
                "--profiles-dir", str(tmp_path / "profiles"),
                "--webhook", webhook.url,
                "--alertmanager", am_url,
            ],
            env={**env, "GADGETWATCH_PIPELINE__SHUTDOWN_DEADLINE": f"{SHUTDOWN_DEADLINE_S}s"},
        )  # fmt: skip
        # Readiness does not depend on a destination; /readyz shows its state and error.
        ready = await agent.wait_ready()
        am_health = ready["checks"]["exporters"]["details"]["alertmanager"]
        assert am_health["healthy"] is False
        assert am_health["lastError"]

        # The webhook still gets exactly the expected alerts.
        await eventually(lambda: len(webhook.alerts()) >= n, what="webhook alerts")
        assert sorted(expected_of(a) for a in webhook.alerts()) == sorted(EXPECTED)
        metrics = await agent.wait_metrics(
            lambda m: (
                m.value("gadgetwatch_exporter_alerts_sent_total", exporter="http") == n
                and m.total("gadgetwatch_exporter_send_failures_total", exporter="alertmanager") > 1
            ),
            what="webhook delivered, AlertManager retried",
            show="gadgetwatch_exporter",
        )
        # Nothing is lost: every alert waits for AlertManager, queued or in the batch under
        # retry, and the gauge shows them all.
        queued = metrics.value("gadgetwatch_exporter_queue_alerts", exporter="alertmanager")
        assert metrics.total("gadgetwatch_exporter_alerts_dropped_total") == 0
        assert queued == n
        assert metrics.value("gadgetwatch_exporter_up", exporter="alertmanager") == 0
        assert metrics.value("gadgetwatch_exporter_alerts_sent_total", exporter="alertmanager") == 0
        assert metrics.value("gadgetwatch_exporter_alerts_sent_total", exporter="http") == n
        _, body = await agent.readyz()
        assert body["checks"]["exporters"]["details"]["alertmanager"]["healthy"] is False

        # AlertManager comes up: what waited in the queue is delivered.
        am = alertmanager_factory(port=port)
        await agent.wait_metrics(
            lambda m: (
                m.value("gadgetwatch_exporter_alerts_sent_total", exporter="alertmanager") == n
            ),
            what="queued alerts delivered to AlertManager",
        )
        rules = {e.rule_id for e in EXPECTED}
        await eventually(
            lambda: {a["labels"]["rule_id"] for a in am.alerts()} == rules,
            what="every rule in Alertmanager",
        )
        assert {a["labels"]["namespace"] for a in am.alerts()} == {NAMESPACE}
        _, body = await agent.readyz()
        assert body["checks"]["exporters"]["details"]["alertmanager"]["healthy"] is True
        assert await agent.terminate(SHUTDOWN_DEADLINE_S + EXIT_MARGIN_S) == 0
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()
