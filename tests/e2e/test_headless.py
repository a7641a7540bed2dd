"""Headless instances end to end: the agent is SIGKILLed mid-stream and restarted, and the
result is the same as an uninterrupted run.

The IG stand-in (the replay server with its GadgetInstanceManager) runs in the test process in
hold mode: instances produce only the payloads the test releases, so "mid-stream" is a precise
point (half of every gadget's payloads handled and checkpointed, more released and possibly
processed but not checkpointed) without any timing. The agents are real `gadgetwatch run
--headless` processes on a unix socket.

Learning never completes in these runs (a learning period far beyond the capture), so the
profiles are the set union of everything processed, and alerts come from signature rules, which
do not depend on the order in which the independent gadget instances interleave.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import yaml

from gadgetclient.capture import read_capture
from gadgetclient.replay import ReplayServer
from gadgetclient.replay_instances import ReplayInstance
from tests.e2e.harness import Agent, eventually

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "examples" / "webshop-intrusion.capture.jsonl"
#: advise_seccomp stays on rolling windows (it reports only when stopped), so it is left out.
GADGETS = ("trace_exec", "trace_open", "trace_tcp", "trace_dns", "trace_capabilities")


def _config(path: Path, *, prefix: str, state: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "profiler": {"updatePeriod": "100ms"},
                "gadgetclient": {
                    "gadgets": list(GADGETS),
                    "headless": {"enabled": True, "namePrefix": prefix, "stateFile": str(state)},
                },
            }
        )
    )
    return path


def _mine(server: ReplayServer, prefix: str) -> list[ReplayInstance]:
    return [i for i in server.instances.instances.values() if i.name.startswith(prefix + "-")]


def _total(inst: ReplayInstance) -> int:
    return inst.seq + inst.remaining


def _state(path: Path) -> dict[str, int]:
    try:
        return dict(json.loads(path.read_text())["instances"])
    except (FileNotFoundError, ValueError, KeyError):
        return {}


def _checkpointed(path: Path, want: dict[str, int]) -> bool:
    state = _state(path)
    return all(state.get(id_, 0) >= seq for id_, seq in want.items())


def _specs(profiles: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(profiles)): yaml.safe_load(p.read_text())["spec"]
        for p in sorted(profiles.glob("*/*.yaml"))
    }


def _fingerprints(alerts: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["rule"]["id"], a["fingerprint"]) for a in alerts}


async def _agent(tmp: Path, name: str, socket: Path, env: dict[str, str], **kw: Any) -> Agent:
    config = _config(tmp / f"{name}.yaml", **kw)
    return await Agent.start(
        [
            "--config", str(config),
            "--target", f"unix://{socket}",
            "--learning-period", "100000h",
            "--profiles-dir", str(tmp / f"profiles-{kw['prefix']}"),
            "--stdout",
        ],
        env=env,
    )  # fmt: skip


async def test_sigkill_mid_stream_then_restart_processes_every_event_once(
    tmp_path: Path, sockdir: Path, env: dict[str, str]
) -> None:
    socket = sockdir / "ig.sock"
    server = ReplayServer(read_capture(CAPTURE), listen=f"unix://{socket}", hold_instances=True)
    await server.start()
    agents: list[Agent] = []
    try:
        # -- the reference: one uninterrupted run ---------------------------------------------
        state_a = tmp_path / "a-seq.json"
        agent = await _agent(tmp_path, "a", socket, env, prefix="gwa", state=state_a)
        agents.append(agent)
        await eventually(lambda: len(_mine(server, "gwa")) == len(GADGETS), what="instances")
        totals_a = {i.id: _total(i) for i in _mine(server, "gwa")}
        for inst in _mine(server, "gwa"):
            await server.instances.release(inst.id, _total(inst))
        await eventually(lambda: _checkpointed(state_a, totals_a), what="all checkpointed")
        await agent.proc.signal(signal.SIGTERM)
        assert await agent.proc.wait_exit() == 0
        reference_alerts = agent.stdout_alerts()
        reference = _specs(tmp_path / "profiles-gwa")
        assert reference
        assert reference_alerts

        # -- the same capture, with the agent killed mid-stream ---------------------------------
        state_b = tmp_path / "b-seq.json"
        first = await _agent(tmp_path, "b1", socket, env, prefix="gwb", state=state_b)
        agents.append(first)
        await eventually(lambda: len(_mine(server, "gwb")) == len(GADGETS), what="instances")
        mine = _mine(server, "gwb")
        totals = {i.id: _total(i) for i in mine}
        half = {i.id: totals[i.id] // 2 for i in mine}
        for inst in mine:
            await server.instances.release(inst.id, half[inst.id])
        await eventually(lambda: _checkpointed(state_b, half), what="half checkpointed")
        # More events reach the agent, maybe processed, maybe not yet checkpointed: SIGKILL.
        extra = {i.id: min(totals[i.id], half[i.id] + 10) for i in mine}
        for inst in mine:
            await server.instances.release(inst.id, extra[inst.id] - half[inst.id])
            await server.instances.wait_produced(inst.id, extra[inst.id])
        await first.proc.signal(signal.SIGKILL)
        assert await first.proc.wait_exit() == -signal.SIGKILL
        at_kill = _state(state_b)
        # The instances keep tracing into their ring buffers while no agent is attached.
        for inst in mine:
            await server.instances.release(inst.id, totals[inst.id] - extra[inst.id])
            await server.instances.wait_produced(inst.id, totals[inst.id])

        second = await _agent(tmp_path, "b2", socket, env, prefix="gwb", state=state_b)
        agents.append(second)
        await eventually(lambda: _checkpointed(state_b, totals), what="all checkpointed again")
        metrics = await second.metrics()
        await second.proc.signal(signal.SIGTERM)
        assert await second.proc.wait_exit() == 0

        # Nothing replayed twice past the checkpoint, nothing lost, the same instances reused.
        assert metrics.total("gadgetwatch_gadget_instance_replay_skipped_total") == sum(
            at_kill.values()
        )
        assert sum(at_kill.values()) >= sum(half.values())
        assert metrics.total("gadgetwatch_gadget_events_lost_total") == 0
        assert metrics.total("gadgetwatch_gadget_instances_created_total") == 0
        assert {i.id for i in _mine(server, "gwb")} == set(totals)
        # Profiles and alerts are those of the uninterrupted run.
        assert _specs(tmp_path / "profiles-gwb") == reference
        interrupted = first.stdout_alerts() + second.stdout_alerts()
        assert _fingerprints(interrupted) == _fingerprints(reference_alerts)
    finally:
        for a in agents:
            await a.proc.stop()
        await server.stop(None)
