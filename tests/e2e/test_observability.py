"""Observing the agent like its peers, end to end: OTLP export of a replay's alerts, and the
debug endpoints (CPU profile, memory snapshot, task dump) fetched while a replay runs.

Both run `gadgetwatch run --replay` as a process, configured only through the environment
(`GADGETWATCH_DEBUG_ENDPOINTS=1`, `GADGETWATCH_EXPORTERS__OTLP__...`), as the Helm chart does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.e2e.harness import GADGETWATCH, Proc, eventually
from tests.e2e.scenario import EXAMPLE_CAPTURE
from tests.exporters.otlp_receiver import OtlpReceiver

#: Replay pace: the example capture (about 2,300 events) then lasts several seconds, so a 2 s
#: profile taken as soon as the listener is up falls within the replay.
RATE = "300"


async def _get(port: int, path: str) -> tuple[int, bytes, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


def check_speedscope(doc: dict[str, Any]) -> list[str]:
    """Open a speedscope file as speedscope does (file-format-schema.json, sampled profiles):
    every sample a list of valid frame indices with one weight each, the weights adding up to
    the profile's span. Returns the names of the frames on any sampled stack."""
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    assert all(isinstance(f["name"], str) and f["name"] for f in frames)
    seen: list[str] = []
    assert doc["profiles"]
    assert 0 <= doc["activeProfileIndex"] < len(doc["profiles"])
    for profile in doc["profiles"]:
        assert profile["type"] == "sampled"
        assert profile["unit"] == "seconds"
        assert len(profile["samples"]) == len(profile["weights"])
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            assert weight > 0
            assert stack
            assert all(0 <= i < len(frames) for i in stack)
            seen.extend(frames[i]["name"] for i in stack)
        span = profile["endValue"] - profile["startValue"]
        assert abs(span - sum(profile["weights"])) < 1e-6
    return seen


async def test_profile_fetched_during_a_replay_opens_in_speedscope(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env = {
        **env,
        "GADGETWATCH_DEBUG_ENDPOINTS": "1",
        "GADGETWATCH_DEBUG__ADDRESS": "127.0.0.1:0",
    }
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH, "run", "--no-metrics", "--replay", str(EXAMPLE_CAPTURE),
            "--replay-rate", RATE, "--learning-period", "10m",
            "--profiles-dir", str(tmp_path / "profiles"),
        ],
        env=env,
    )  # fmt: skip
    try:
        listening = await proc.wait_log("debug endpoints listening")
        port = int(listening["port"])
        status, body, ctype = await _get(port, "/debug/cpu?seconds=2")
        assert status == 200, proc.tail()
        assert ctype.startswith("application/json")
        assert proc.running, "the replay ended before the profile did; lower RATE"
        names = check_speedscope(orjson.loads(body))
        # The agent's own code was sampled: the pipeline and the gadget stream decoding.
        assert any(n in ("run", "_process", "feed", "observe", "evaluate") for n in names), sorted(
            set(names)
        )
        status, text, _ = await _get(port, "/debug/cpu?seconds=1&format=collapsed")
        assert status == 200, proc.tail()
        lines = text.decode().splitlines()
        assert lines
        for line in lines:
            stack, _, weight = line.rpartition(" ")
            assert stack
            assert int(weight) > 0
        status, body, _ = await _get(port, "/debug/memory?seconds=1&top=5")
        assert status == 200, proc.tail()
        memory = orjson.loads(body)
        assert len(memory["topAllocations"]) <= 5
        assert memory["liveObjectsByType"]
        status, body, _ = await _get(port, "/debug/tasks?format=json")
        assert status == 200, proc.tail()
        tasks = {t["name"]: t for t in orjson.loads(body)}
        assert {"processing", "gadget-source", "profile-flush"} <= set(tasks)
        assert all(t["stack"] for t in tasks.values() if t["state"] == "pending")
        status, body, _ = await _get(port, "/debug/cpu?seconds=-3")
        assert status == 400
        assert b"seconds must be between" in body
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    assert proc.stdout, "the replay raised no alert"


async def test_debug_listener_is_off_by_default(tmp_path: Path, env: dict[str, str]) -> None:
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH, "run", "--no-metrics", "--replay", str(EXAMPLE_CAPTURE),
            "--learning-period", "10m", "--profiles-dir", str(tmp_path / "profiles"),
        ],
        env=env,
    )  # fmt: skip
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    assert not proc.log_events("debug endpoints listening")


async def test_replayed_alerts_reach_an_otlp_collector(tmp_path: Path, env: dict[str, str]) -> None:
    """`gadgetwatch run --replay` with stdout and OTLP enabled: the collector receives one
    log record per alert printed, with the same ids, fingerprints and Kubernetes names, and the
    agent's metrics."""
    receiver = await OtlpReceiver().start()
    env = {
        **env,
        "GADGETWATCH_EXPORTERS__STDOUT__ENABLED": "true",
        "GADGETWATCH_EXPORTERS__OTLP__ENABLED": "true",
        "GADGETWATCH_EXPORTERS__OTLP__HOST": "127.0.0.1",
        "GADGETWATCH_EXPORTERS__OTLP__PORT": str(receiver.port),
        "GADGETWATCH_EXPORTERS__OTLP__INSECURE": "true",
        "GADGETWATCH_EXPORTERS__OTLP__EXPORT_METRICS": "true",
    }
    config = tmp_path / "config.yaml"
    config.write_text("clusterName: shop-eu-1\n")
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH, "run", "--config", str(config), "--no-metrics",
            "--replay", str(EXAMPLE_CAPTURE),
            "--learning-period", "10m", "--profiles-dir", str(tmp_path / "profiles"),
        ],
        env=env,
    )  # fmt: skip
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
        await receiver.stop()
    alerts = [json.loads(line) for line in proc.stdout]
    assert alerts
    records = receiver.records()
    await eventually(lambda: len(records) == len(alerts), what="one record per alert")
    by_id = {r.attributes["gadgetwatch.alert.id"]: r for r in records}
    assert set(by_id) == {a["id"] for a in alerts}
    for alert in alerts:
        attrs = by_id[alert["id"]].attributes
        assert attrs["gadgetwatch.alert.fingerprint"] == alert["fingerprint"]
        assert attrs["k8s.namespace.name"] == alert["kubernetes"]["namespace"]
        assert attrs["k8s.pod.name"] == alert["kubernetes"]["pod"]
        assert attrs["gadgetwatch.rule.id"] == alert["rule"]["id"]
        assert by_id[alert["id"]].body == alert["message"]
        assert alert["cluster"] == "shop-eu-1"
        assert attrs["k8s.cluster.name"] == "shop-eu-1"
    # The agent's own metrics: the final push at shutdown carries the whole replay.
    processed = receiver.metric("gadgetwatch_pipeline_events_processed")
    assert processed is not None
    assert processed.sum.data_points[0].as_double > 0
    resource = {
        kv.key: kv.value.string_value
        for kv in receiver.metrics[-1].resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "gadgetwatch"
    assert resource["k8s.cluster.name"] == "shop-eu-1"
