"""The supervisor's pieces that need no process: worker settings, the merged exposition,
readiness. Processes, crashes and signals are tested end to end in tests/e2e/test_workers.py."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.metrics import StatsCollector, build_registry
from gadgetclient.stats import StreamStats
from gadgetwatch.config import load_settings
from gadgetwatch.pipeline import PipelineStats
from gadgetwatch.settings_loading import ConfigError
from gadgetwatch.workers import Supervisor, WorkersCollector, worker_settings


def test_each_worker_gets_a_share_of_every_limit_and_no_listener() -> None:
    s = load_settings(
        overrides={
            "pipeline": {"workers": 3},
            "detector": {"globalRateLimit": 600, "perRuleRateLimit": 0},
            "exporters": {"http": {"maxAlertsPerMinute": 100}},
            "debug": {"enabled": True, "address": "127.0.0.1:6060"},
        }
    )
    w = worker_settings(s, 2, 3)
    assert w.pipeline.workers == 1
    assert w.metrics.enabled is False
    assert w.detector.global_rate_limit == 200
    assert w.detector.per_rule_rate_limit == 0  # unlimited stays unlimited
    assert w.exporters.http.max_alerts_per_minute == 34  # rounded up: 3 x 34 >= 100
    assert w.exporters.syslog.max_alerts_per_minute == s.exporters.syslog.max_alerts_per_minute
    assert w.debug.address == "127.0.0.1:6062"
    assert w.gadgetclient == s.gadgetclient


@dataclass
class _Proc:
    pid: int
    returncode: int | None = None


@dataclass
class _FakeWorker:
    index: int
    proc: _Proc
    report: dict[str, Any] | None


def _exposition(processed: int, foreign: int) -> str:
    stream = StreamStats()
    stream.foreign["trace_exec"] = foreign
    pipeline = PipelineStats(processed=processed)
    return generate_latest(
        build_registry(StatsCollector(stream=stream, pipeline=pipeline))
    ).decode()


def test_one_endpoint_carries_every_worker_with_its_label() -> None:
    sup = Supervisor(load_settings(overrides={"pipeline": {"workers": 2}}))
    sup._workers = cast(
        dict[int, Any],
        {
            0: _FakeWorker(0, _Proc(10), {"ready": True, "metrics": _exposition(70, 30)}),
            1: _FakeWorker(1, _Proc(11), {"ready": False, "metrics": _exposition(30, 70)}),
        },
    )
    sup.stats.restarts[("1", "signal")] = 2
    sup.stats.up.update({"0": 1, "1": 1})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkersCollector(sup))
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}  # parses: no dupes
    processed = {
        s.labels["worker"]: s.value
        for s in families["gadgetwatch_pipeline_events_processed"].samples
    }
    assert processed == {"0": 70, "1": 30}
    foreign = {
        (s.labels["worker"], s.labels["gadget"]): s.value
        for s in families["gadgetwatch_gadget_events_foreign"].samples
    }
    assert foreign == {("0", "trace_exec"): 30, ("1", "trace_exec"): 70}
    cpu = {s.labels["worker"] for s in families["process_cpu_seconds"].samples}
    assert cpu == {"supervisor", "0", "1"}
    restarts = families["gadgetwatch_worker_restarts"].samples
    assert [(s.labels, s.value) for s in restarts] == [({"worker": "1", "reason": "signal"}, 2)]
    ready, details = sup.readiness()
    assert not ready  # worker 1 is not ready yet
    assert details["0"] == {"up": True, "ready": True, "pid": 10, "checks": {}}
    assert details["1"]["ready"] is False


def test_a_broken_worker_exposition_does_not_break_the_scrape() -> None:
    sup = Supervisor(load_settings(overrides={"pipeline": {"workers": 2}}))
    sup._workers = cast(
        dict[int, Any],
        {
            0: _FakeWorker(0, _Proc(10), {"ready": True, "metrics": "garbage{{{ 1\n"}),
            1: _FakeWorker(1, _Proc(11), {"ready": True, "metrics": _exposition(5, 0)}),
        },
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkersCollector(sup))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    processed = families["gadgetwatch_pipeline_events_processed"].samples
    assert [(s.labels["worker"], s.value) for s in processed] == [("1", 5)]


def test_workers_sharing_a_pipe_never_interleave_inside_a_line(tmp_path: Path) -> None:
    """Two processes write 16 KiB lines (longer than a pipe keeps whole) into one pipe at once
    through `LockedOutput`, as two workers' stdout exporters do; every line arrives whole."""
    lock = tmp_path / "output.lock"
    lock.touch()
    code = (
        "import io, sys\n"
        "from gadgetwatch.workers import LockedOutput\n"
        "out = io.BufferedWriter(LockedOutput(1, sys.argv[1]), buffer_size=1 << 16)\n"
        "for _ in range(100):\n"
        "    out.write((sys.argv[2] * 16384 + '\\n').encode() * 3)\n"
        "    out.flush()\n"
    )
    read_fd, write_fd = os.pipe()
    # The smallest pipe and small reads keep both writers blocked mid-write, where an
    # unlocked write interleaves (it does, in about a third of the lines, without the lock).
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(lock), mark], stdout=write_fd)
        for mark in ("a", "b")
    ]
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 512):
        chunks.append(chunk)
    os.close(read_fd)
    lines = b"".join(chunks).splitlines()
    assert [p.wait(30) for p in procs] == [0, 0]
    assert len(lines) == 600
    assert set(lines) == {b"a" * 16384, b"b" * 16384}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"pipeline": {"workers": 9}}, "pipeline.workers: Input should be less than or equal to 8"),
        ({"pipeline": {"workers": 0}}, "pipeline.workers: Input should be greater than or equal"),
        (
            {"pipeline": {"workers": 2}, "gadgetclient": {"headless": {"enabled": True}}},
            "pipeline.workers > 1 cannot share headless or attached instances",
        ),
        (
            {"pipeline": {"workers": 2}, "gadgetclient": {"attach": ["trace-exec-1"]}},
            "pipeline.workers > 1 cannot share headless or attached instances",
        ),
    ],
)
def test_worker_counts_are_bounded_and_instances_need_one(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides=overrides)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems
