"""A wall-clock stack sampler: the CPU profile behind `/debug/cpu`.

A thread wakes every `interval`, reads every other thread's current frame
(`sys._current_frames()`), walks it to the root and counts the stack; nothing is hooked into
the profiled threads. Cost is per sample (one GIL hand-over and a walk of a few dozen frames,
tens of microseconds), independent of how many Python calls the agent makes, which is why it
was chosen over pyinstrument and yappi: both hook every call and return, and on the detector's
hot loop they cost +150 % and +350 % (`benchmarks/bench_debug.py`), far above the 10 % budget.

Output:
- speedscope JSON (https://www.speedscope.app/file-format-schema.json), one `sampled`
  profile per thread, weights in seconds of wall time (the time since the previous sample,
  so a sample delayed by a busy GIL still counts for the time it stood for). Identical stacks
  are merged, which speedscope's left-heavy and sandwich views do anyway;
- collapsed stacks (`root;caller;callee weight`, weight in microseconds, one line per stack and
  thread, the thread as the root frame) for flamegraph.pl, inferno and speedscope.

Frames are functions (`qualname`, file, first line), the granularity flame graphs show.
An idle event loop shows as time in `select`; time in C code is charged to the Python frame
that called it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"

#: Deepest stack recorded; deeper ones keep their innermost frames. Recursion in the agent is
#: shallow; the bound only caps a pathological stack's cost per sample.
MAX_DEPTH = 256


@dataclass
class ThreadSamples:
    name: str
    stacks: dict[tuple[CodeType, ...], float] = field(default_factory=dict)
    samples: int = 0


@dataclass
class StackSampler:
    """`run(seconds)` in a thread of its own (it blocks); then `speedscope()` or `collapsed()`.
    `stop()` ends a run early (the request was abandoned)."""

    interval_s: float
    clock: Callable[[], float] = time.perf_counter
    threads: dict[int, ThreadSamples] = field(default_factory=dict)
    duration_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self._stop.set()

    @property
    def samples(self) -> int:
        return sum(t.samples for t in self.threads.values())

    def run(self, seconds: float) -> None:
        me = threading.get_ident()
        start = last = self.clock()
        deadline = start + seconds
        while not self._stop.is_set():
            now = self.clock()
            self.sample(sys._current_frames(), weight=now - last, skip=me)
            last = now
            if now >= deadline:
                break
            self._stop.wait(min(self.interval_s, max(0.0, deadline - now)))
        self.duration_s = last - start

    def sample(self, frames: dict[int, FrameType], *, weight: float, skip: int = 0) -> None:
        """Count one sample of every thread in `frames` (thread id -> innermost frame)."""
        if weight <= 0:
            return
        names: dict[int | None, str] = {}
        for ident, frame in frames.items():
            if ident == skip:
                continue
            codes: list[CodeType] = []
            f: FrameType | None = frame
            while f is not None and len(codes) < MAX_DEPTH:
                codes.append(f.f_code)
                f = f.f_back
            codes.reverse()  # root first
            key = tuple(codes)
            samples = self.threads.get(ident)
            if samples is None:  # a thread not seen before: look its name up once
                names = names or {t.ident: t.name for t in threading.enumerate()}
                samples = ThreadSamples(names.get(ident, f"thread-{ident}"))
                self.threads[ident] = samples
            samples.stacks[key] = samples.stacks.get(key, 0.0) + weight
            samples.samples += 1

    def _ordered(self) -> list[ThreadSamples]:
        """The main thread (the event loop) first, then by name."""
        return sorted(self.threads.values(), key=lambda t: (t.name != "MainThread", t.name))

    def speedscope(self, *, name: str = "gadgetwatch") -> dict[str, Any]:
        frame_index: dict[CodeType, int] = {}
        frames: list[dict[str, Any]] = []
        profiles: list[dict[str, Any]] = []
        for thread in self._ordered():
            samples: list[list[int]] = []
            weights: list[float] = []
            for stack, weight in sorted(thread.stacks.items(), key=lambda kv: -kv[1]):
                indices = []
                for code in stack:
                    index = frame_index.get(code)
                    if index is None:
                        index = len(frames)
                        frame_index[code] = index
                        frames.append(
                            {
                                "name": code.co_qualname,
                                "file": code.co_filename,
                                "line": code.co_firstlineno,
                            }
                        )
                    indices.append(index)
                samples.append(indices)
                weights.append(weight)
            profiles.append(
                {
                    "type": "sampled",
                    "name": f"{thread.name} ({thread.samples} samples)",
                    "unit": "seconds",
                    "startValue": 0.0,
                    "endValue": sum(weights),
                    "samples": samples,
                    "weights": weights,
                }
            )
        return {
            "$schema": SPEEDSCOPE_SCHEMA,
            "name": name,
            "exporter": "gadgetwatch",
            "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": profiles,
        }

    def collapsed(self) -> str:
        lines: dict[str, float] = {}
        for thread in self._ordered():
            root = _label(thread.name)
            for stack, weight in thread.stacks.items():
                key = ";".join([root, *(_code_label(c) for c in stack)])
                lines[key] = lines.get(key, 0.0) + weight * 1e6
        return "".join(f"{k} {round(v)}\n" for k, v in sorted(lines.items()) if round(v) > 0)


def _label(text: str) -> str:
    """A folded-stack frame: no `;` (the separator) and no space (before the weight)."""
    return text.replace(";", ":").replace(" ", "_").replace("\n", "_")


def _code_label(code: CodeType) -> str:
    file = code.co_filename.rsplit("/", 1)[-1]
    return _label(f"{code.co_qualname} ({file}:{code.co_firstlineno})")
