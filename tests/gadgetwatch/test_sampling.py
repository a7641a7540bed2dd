"""The debug endpoint's stack sampler on a thread doing known work: the work's function is on
the sampled stacks, the weights add up to the wall time sampled, and both output formats agree."""

from __future__ import annotations

import threading

from gadgetwatch.sampling import SPEEDSCOPE_SCHEMA, StackSampler


def spin_marker(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1


def test_sampler_sees_a_busy_thread_and_weights_sum_to_the_window() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=spin_marker, args=(stop,), name="spinner")
    worker.start()
    sampler = StackSampler(interval_s=0.002)
    try:
        sampler.run(0.3)
    finally:
        stop.set()
        worker.join()
    assert sampler.samples > 10
    doc = sampler.speedscope()
    assert doc["$schema"] == SPEEDSCOPE_SCHEMA
    frames = doc["shared"]["frames"]
    spinner = next(p for p in doc["profiles"] if p["name"].startswith("spinner"))
    names = {frames[i]["name"] for stack in spinner["samples"] for i in stack}
    assert "spin_marker" in names
    assert abs(sum(spinner["weights"]) - sampler.duration_s) < 1e-6
    assert 0.25 <= sampler.duration_s < 5
    collapsed = sampler.collapsed().splitlines()
    spin_lines = [ln for ln in collapsed if ln.startswith("spinner;")]
    assert any("spin_marker_(test_sampling.py:" in ln for ln in spin_lines)
    total_us = sum(int(ln.rpartition(" ")[2]) for ln in spin_lines)
    assert abs(total_us - sampler.duration_s * 1e6) <= len(spin_lines)  # rounding only


def test_stop_ends_a_run_early() -> None:
    sampler = StackSampler(interval_s=0.001)
    runner = threading.Thread(target=sampler.run, args=(3600.0,))
    runner.start()
    sampler.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert sampler.duration_s < 3600
