"""The on-demand debug listener: CPU profile, memory snapshot and asyncio task dump.

    GET /debug/                                   index (text)
    GET /debug/cpu?seconds=N[&format=speedscope|collapsed]
                                                  CPU profile of the event loop thread for N s
    GET /debug/memory?seconds=N[&top=K]           allocations made during N s (tracemalloc),
                                                  plus live objects by type (gc)
    GET /debug/tasks[?format=json]                every asyncio task with its stack

Why on demand and off by default: a production agent should pay nothing for being debuggable.
With `debug.enabled` the listener only accepts connections; no profiler hook, allocation
tracer or sampler runs until a request asks for one, and it stops when the request ends (or
is abandoned). One CPU profile and one memory trace at a time: a second request gets 409.

Why a stack sampler in a thread (`sampling.StackSampler`) and not pyinstrument or yappi:
measured by `benchmarks/bench_debug.py` (docs/debugging.md), both libraries hook every Python
call and return, which costs +150 % (pyinstrument) and +350 % (yappi) on the detector's hot
loop; the sampler costs per sample only. Its output is speedscope JSON (speedscope.app, and the
importers of Pyroscope and Grafana) or collapsed stacks (flamegraph.pl, inferno, speedscope).

What it sees: every thread (one profile each), the event loop thread first: that is where
detection, learning and delivery run.

The listener is bound to loopback by default: a profile reveals code paths, and a task dump
can show argument values. Reach it with `kubectl port-forward`.
"""

from __future__ import annotations

import asyncio
import gc
import linecache
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web

from gadgetwatch.config import DebugSettings
from gadgetwatch.sampling import StackSampler

log = structlog.get_logger(__name__)

#: CPU profile length when the request names none: long enough for a few pipeline batches and
#: a profile flush, short enough that a `curl` does not look hung.
DEFAULT_SECONDS = 10

#: File name offered for the CPU profile (speedscope recognises the suffix).
CPU_FILE = "gadgetwatch-cpu.speedscope.json"

#: Allocation sites returned when the request names no `top`.
DEFAULT_TOP = 25

#: Frames kept per traceback in the memory snapshot: the allocating line and its callers,
#: enough to tell which stage allocated without making tracemalloc's own cost grow.
TRACE_FRAMES = 8

#: Live object types listed in the memory snapshot.
TOP_TYPES = 25

_INDEX = """gadgetwatch debug endpoints
  /debug/cpu?seconds=10&format=speedscope   CPU profile (speedscope JSON; format=collapsed)
  /debug/memory?seconds=10&top=25           allocations during the window, live objects
  /debug/tasks                              asyncio tasks and their stacks (format=json)
"""


class QueryError(Exception):
    """A query parameter is wrong; the message says which and why."""


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}, got {value}")
    return value


def task_dump(loop: asyncio.AbstractEventLoop | None = None) -> list[dict[str, Any]]:
    """Every task of the loop: name, state, coroutine and its stack (innermost last)."""
    out: list[dict[str, Any]] = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        coro = task.get_coro()
        frames = []
        for frame in task.get_stack():
            code = frame.f_code
            lineno = frame.f_lineno or 0  # None while a generator is being set up
            line = linecache.getline(code.co_filename, lineno).strip() if lineno else ""
            frames.append(
                {
                    "function": code.co_qualname,
                    "file": code.co_filename,
                    "line": lineno,
                    "code": line,
                }
            )
        state = "cancelled" if task.cancelled() else "done" if task.done() else "pending"
        out.append(
            {
                "name": task.get_name(),
                "state": state,
                "coroutine": getattr(coro, "__qualname__", type(coro).__name__),
                "stack": frames,
            }
        )
    return out


def _tasks_text(tasks: list[dict[str, Any]]) -> str:
    lines = [f"{len(tasks)} asyncio task(s)"]
    for task in tasks:
        lines.append(f"\n{task['name']} [{task['state']}] {task['coroutine']}")
        for f in task["stack"]:
            lines.append(f'  File "{f["file"]}", line {f["line"]}, in {f["function"]}')
            if f["code"]:
                lines.append(f"    {f['code']}")
    return "\n".join(lines) + "\n"


class DebugServer:
    """aiohttp listener for the debug endpoints. `start()`, then `aclose()`."""

    def __init__(self, settings: DebugSettings) -> None:
        self._settings = settings
        self._runner: web.AppRunner | None = None
        self._cpu_busy = False
        self._memory_busy = False
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/debug/", self._index)
        app.router.add_get("/debug/cpu", self._cpu)
        app.router.add_get("/debug/memory", self._memory)
        app.router.add_get("/debug/tasks", self._tasks)
        # A client that goes away cancels its handler, which stops the sampler or tracer at
        # once instead of at the end of the requested window.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(
                exc.errno, f"debug.address {self._settings.address}: {exc.strerror or exc}"
            ) from exc
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._settings.port
        log.warning(
            "debug endpoints listening",
            address=self._settings.address,
            port=self.port,
            note="profiles reveal code paths; keep this listener private",
        )

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- handlers -------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=_INDEX)

    @staticmethod
    def _bad(exc: QueryError) -> web.Response:
        return web.Response(status=400, text=f"{exc}\n")

    async def _cpu(self, request: web.Request) -> web.Response:
        try:
            seconds = _int_param(
                request.query, "seconds", DEFAULT_SECONDS, 1, self._settings.max_seconds
            )
            fmt = request.query.get("format", "speedscope")
            if fmt not in ("speedscope", "collapsed"):
                raise QueryError(f"format must be speedscope or collapsed, got {fmt[:40]!r}")
        except QueryError as exc:
            return self._bad(exc)
        if self._cpu_busy:
            return web.Response(status=409, text="a CPU profile is already running\n")
        self._cpu_busy = True
        sampler = StackSampler(self._settings.sample_interval.total_seconds())
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def run() -> None:
            try:
                sampler.run(seconds)
            finally:
                loop.call_soon_threadsafe(finished.set)

        log.info("cpu profile started", seconds=seconds)
        try:
            threading.Thread(target=run, name="debug-cpu-sampler", daemon=True).start()
            try:
                await finished.wait()
            finally:
                sampler.stop()  # the request was abandoned: stop sampling now
        finally:
            self._cpu_busy = False
        log.info("cpu profile done", seconds=seconds, samples=sampler.samples)
        if fmt == "collapsed":
            return web.Response(text=sampler.collapsed(), content_type="text/plain")
        return web.Response(
            body=orjson.dumps(sampler.speedscope()),
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{CPU_FILE}"'},
        )

    async def _memory(self, request: web.Request) -> web.Response:
        try:
            seconds = _int_param(
                request.query, "seconds", DEFAULT_SECONDS, 0, self._settings.max_seconds
            )
            top = _int_param(request.query, "top", DEFAULT_TOP, 1, 1000)
        except QueryError as exc:
            return self._bad(exc)
        if self._memory_busy:
            return web.Response(status=409, text="a memory trace is already running\n")
        self._memory_busy = True
        started_here = not tracemalloc.is_tracing()
        try:
            if started_here:
                tracemalloc.start(TRACE_FRAMES)
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            snapshot = tracemalloc.take_snapshot()
            current, peak = tracemalloc.get_traced_memory()
        finally:
            if started_here:
                tracemalloc.stop()
            self._memory_busy = False
        snapshot = snapshot.filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<*>"))
        )
        allocations = []
        for stat in snapshot.statistics("traceback")[:top]:
            allocations.append(
                {
                    "sizeBytes": stat.size,
                    "count": stat.count,
                    "traceback": [f"{f.filename}:{f.lineno}" for f in reversed(stat.traceback)],
                }
            )
        types = Counter(type(o).__name__ for o in gc.get_objects())
        body = {
            "windowSeconds": round(time.monotonic() - t0, 3),
            "tracedBytes": current,
            "tracedPeakBytes": peak,
            "topAllocations": allocations,
            "liveObjectsByType": dict(types.most_common(TOP_TYPES)),
            "gcCounts": list(gc.get_count()),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _tasks(self, request: web.Request) -> web.Response:
        tasks = task_dump()
        if request.query.get("format") == "json":
            return web.Response(body=orjson.dumps(tasks), content_type="application/json")
        return web.Response(text=_tasks_text(tasks))
