"""`pipeline.workers: 2` end to end: a supervisor and two worker processes against a replay
server process over real gRPC.

The replay server runs unordered, so every `RunGadget` call (each worker runs every gadget)
gets the whole capture, as every client of a live IG gets every event. The scenario's expected
alerts are exact, so an event processed by both workers shows as a duplicate alert, and one
processed by neither as a missing alert; profiles held per worker show that each container
lives on exactly one worker.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import Agent, Metrics, eventually, start_replay_server
from tests.e2e.scenario import (
    CAPTURE,
    EXPECTED,
    LEARNING_PERIOD,
    PROFILE_NAMES,
    capture_counts,
    expected_of,
)

#: The scenario's event gadgets; advise_seccomp runs too (it keeps the replay's runs open
#: until the stop, like live gadgets) but flushes only at the stop, after the counts are read.
GADGETS = ["trace_exec", "trace_open", "trace_tcp", "trace_dns", "trace_capabilities"]


def write_config(path: Path, **pipeline: Any) -> Path:
    config = {
        "kubernetes": {"mode": "off"},
        "pipeline": {"workers": 2, **pipeline},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def per_worker(m: Metrics, name: str) -> dict[str, float]:
    return {w: v for w, v in m.by(name, "worker").items() if w != "supervisor"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_workers_process_each_container_once_and_stop_on_sigterm(
    tmp_path: Path, sockdir: Path, env: dict[str, str]
) -> None:
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env, ordered=False)
    agent: Agent | None = None
    try:
        agent = await Agent.start(
            [
                "--config", str(write_config(tmp_path / "gadgetwatch.yaml")),
                "--target", f"unix://{socket}",
                "--learning-period", LEARNING_PERIOD,
                "--profiles-dir", str(tmp_path / "profiles"),
                "--stdout",
                "--summary",
            ],
            env=env,
        )  # fmt: skip
        ready = await agent.wait_ready()
        workers = ready["checks"]["workers"]["details"]
        assert set(workers) == {"0", "1"}
        pids = [workers[w]["pid"] for w in ("0", "1")]
        assert all(workers[w]["checks"]["gadgets"]["ready"] for w in ("0", "1"))

        _, decoded = capture_counts(CAPTURE)
        total = sum(n for g, n in decoded.items() if g in GADGETS)
        m = await agent.wait_metrics(
            lambda m: (
                sum(per_worker(m, "gadgetwatch_pipeline_events_processed_total").values()) >= total
            ),
            what=f"{total} events processed across the workers",
        )
        await eventually(
            lambda: len(agent.stdout_alerts()) >= len(EXPECTED),
            what="alerts",
            context=lambda: (
                "\n".join(str(expected_of(a)) for a in agent.stdout_alerts()) + agent.proc.tail()
            ),
        )
        m = await agent.metrics()

        # Every event reached every worker; each kept its own containers' and skipped the rest.
        processed = per_worker(m, "gadgetwatch_pipeline_events_processed_total")
        foreign = per_worker(m, "gadgetwatch_gadget_events_foreign_total")
        assert set(processed) == {"0", "1"}
        assert sum(processed.values()) == total
        assert all(processed[w] > 0 for w in processed), processed  # both own containers
        assert {w: processed[w] + foreign.get(w, 0) for w in processed} == {"0": total, "1": total}
        # Each container's profile lives on exactly one worker (a split container would show
        # twice), and the counts agree with the single-process run.
        profiles = per_worker(m, "gadgetwatch_profiler_profiles")
        assert sum(profiles.values()) == len(PROFILE_NAMES)
        assert m.by("gadgetwatch_detector_alerts_total", "rule_id") == Counter(
            e.rule_id for e in EXPECTED
        )
        assert m.total("gadgetwatch_gadget_events_lost_total") == 0
        assert m.total("gadgetwatch_pipeline_events_dropped_total") == 0
        assert m.by("gadgetwatch_worker_up", "worker") == {"0": 1, "1": 1}
        assert m.total("gadgetwatch_worker_restarts_total") == 0
        # The supervisor's own process metrics are there too, apart from the workers'.
        assert set(m.by("process_cpu_seconds_total", "worker")) == {"supervisor", "0", "1"}

        # SIGTERM: both workers stop gracefully (profiles flushed), the supervisor exits 0.
        assert await agent.terminate() == 0
        stopped = {e.get("worker") for e in agent.proc.log_events("agent stopped")}
        assert stopped == {0, 1}
        assert not any(alive(pid) for pid in pids)
        assert sorted(expected_of(a) for a in agent.stdout_alerts()) == sorted(EXPECTED)
        # The summary adds up the workers' final counts (sent as each worker exited).
        summary = agent.proc.stderr[agent.proc.stderr.index("gadgetwatch summary (2 workers)") :]
        assert summary[2] == f"  alerts: {len(EXPECTED)}"
        shares = [int(line.split("processed ")[1].split(",")[0]) for line in summary[3:5]]
        assert all(line.startswith(f"  worker {i}: exit code 0, restarts 0") for i, line in
                   enumerate(summary[3:5]))  # fmt: skip
        assert f"processed {sum(shares)}, lost upstream 0, dropped 0" in summary[1]
        assert sum(shares) >= total  # and advise_seccomp's last window, flushed at the stop
        files = {f.stem for f in (tmp_path / "profiles").rglob("*.yaml")}
        assert files == PROFILE_NAMES
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()


async def test_a_killed_worker_is_restarted_and_counted(
    tmp_path: Path, sockdir: Path, env: dict[str, str]
) -> None:
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env, ordered=False)
    agent: Agent | None = None
    try:
        config = write_config(tmp_path / "gadgetwatch.yaml", workerRestartInitial="50ms")
        agent = await Agent.start(
            ["--config", str(config), "--target", f"unix://{socket}",
             "--profiles-dir", str(tmp_path / "profiles")],
            env=env,
        )  # fmt: skip
        ready = await agent.wait_ready()
        first = ready["checks"]["workers"]["details"]["1"]["pid"]
        os.kill(first, signal.SIGKILL)

        m = await agent.wait_metrics(
            lambda m: (
                m.value("gadgetwatch_worker_restarts_total", worker="1", reason="signal") == 1
            ),
            what="the restart counted",
        )
        assert m.value("gadgetwatch_worker_restarts_total", worker="0", reason="signal") == 0
        again = await agent.wait_ready()
        details = again["checks"]["workers"]["details"]
        assert details["1"]["pid"] != first
        assert details["0"]["pid"] == ready["checks"]["workers"]["details"]["0"]["pid"]
        logged = agent.proc.log_events("worker ended, restarting")
        assert [(e["worker"], e["code"]) for e in logged] == [(1, -signal.SIGKILL)]

        assert await agent.terminate() == 0
        assert not alive(details["1"]["pid"])
        assert not alive(details["0"]["pid"])
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()


@pytest.mark.parametrize("source", [["--replay", "CAPTURE"], ["--events", "-"]])
async def test_workers_need_a_grpc_target(
    tmp_path: Path, env: dict[str, str], source: list[str]
) -> None:
    from tests.e2e.harness import GADGETWATCH, Proc

    argv = [GADGETWATCH, "run", "--config", str(write_config(tmp_path / "c.yaml"))]
    argv += [str(CAPTURE) if a == "CAPTURE" else a for a in source]
    proc = await Proc.start("agent", argv, env=env)
    assert await proc.wait_exit() == 2
    assert any("pipeline.workers > 1 needs a gRPC target" in ln for ln in proc.stderr)
