"""`pipeline.workers: N`: one supervisor process and N worker processes on one node.

    supervisor (`gadgetwatch run`)                    worker i (`python -m gadgetwatch.worker`)
      /metrics /healthz /readyz ◄── report ─────────── Agent(shard=i/N): its own gadget streams,
      start, watch, restart with back-off               profiler, detector, exporters
      SIGTERM ──────────────────────────────────────► graceful stop (as `gadgetwatch run`)

Partitioning. Every worker runs every configured gadget stream and keeps the events of the
containers it owns: `gadgetclient.sharding` hashes the container's workload (namespace and
top-level owner; the container id when IG knows no owner) with CRC-32 modulo N, so each
container's events, from every gadget, go to exactly one worker, and so do all replicas of a
workload: that worker holds the workload's whole profile and each container's learning
period, detector plan and cooldowns. Workers never talk to each other. Profiles still meet in
the store, merged by set union with the store's optimistic concurrency exactly as profiles of
different nodes are (the directory store locks across processes, the Kubernetes store checks
resourceVersion): after a rollout under a new owner, or for bare pods of one name.
Rate limits (the detector's global and per-rule limits, each exporter's alerts per minute) are
divided among the workers, rounded up, so the node's total stays what was configured.

Metrics: one endpoint. Prometheus' multiprocess mode shares counters through mmap files, but
only for `prometheus_client` metric objects; the agent's counters are plain dicts read at scrape
time by custom collectors (`exporters.metrics`), which multiprocess mode does not aggregate. So
the supervisor serves `/metrics` and, at each scrape, asks every worker for its exposition over
a private pipe and re-exports every sample with a `worker` label ("0".."N-1", bounded by
`MAX_WORKERS`; "supervisor" for the supervisor's own process metrics), plus
`gadgetwatch_worker_up` and `gadgetwatch_worker_restarts_total`. Sums across workers are the
node's figures (`sum without (worker)`). `/readyz` is ready when every worker runs and reports
ready; its details carry each worker's own checks.

Control channel (private to the two processes): the supervisor writes a length-prefixed pickle
of the worker's `WorkerSpec` to the worker's stdin, then one line per report request
(`?<seq>\\n`); the worker answers on an inherited pipe (`--control-fd`) with length-prefixed JSON
carrying the same seq, so an answer that arrives after its request timed out is recognised and
skipped. The end of the worker's stdin (the supervisor died, even by SIGKILL) stops the worker
gracefully, so no worker outlives its supervisor.

Crashes: a worker that exits with an error or is killed is restarted after a back-off
(`pipeline.workerRestartInitial`, doubling to `workerRestartMax`, reset after it ran a minute),
counted by reason (`exit`, `signal`). A worker that ends by itself with 0 (its gadgets finished)
is not restarted. SIGTERM/SIGINT: the supervisor forwards SIGTERM to every worker and waits for
them within `pipeline.shutdownDeadline` plus a margin; a worker still running then is killed
and the run exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import io
import math
import os
import pickle
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from exporters.metrics import MetricsServer, StatsCollector
from gadgetclient.sharding import Shard
from gadgetwatch.agent import EXIT_INCOMPLETE
from gadgetwatch.config import Settings

log = structlog.get_logger(__name__)

#: Seconds a worker may take to answer a report request. A worker's event loop answers between
#: two batches (milliseconds); 5 s covers a profile flush of thousands of profiles on a busy
#: core, and a scrape that waits longer would hit Prometheus' own 10 s timeout.
REPORT_TIMEOUT_S = 5.0
#: Seconds a restarted worker must run before its back-off starts again from the initial value:
#: a worker that crashes at start (IG unreachable) keeps backing off, one that crashed once
#: after running normally comes back fast.
STABLE_RUN_S = 60.0
#: Seconds past `pipeline.shutdownDeadline` the supervisor waits for its workers on SIGTERM:
#: a worker's own deadline covers its stop; the margin covers interpreter exit. Kubernetes'
#: default grace (30 s) still exceeds the default deadline (20 s) plus this.
EXIT_MARGIN_S = 5.0
#: Largest control frame accepted (a worker's exposition): 64 MiB is orders of magnitude above
#: a real exposition (tens of KiB) and stops a corrupted length from allocating gigabytes.
MAX_FRAME = 64 << 20
_LENGTH = struct.Struct(">I")
#: The seq of the report a worker sends by itself as it exits (requests count from 1).
FINAL_SEQ = 0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs: which worker it is and its (derived) settings."""

    index: int
    count: int
    settings: Settings
    #: A file the workers lock (`flock`) around each write to the stdout and stderr they share.
    output_lock: str = ""


class LockedOutput(io.RawIOBase):
    """One worker's side of a stdout or stderr shared with the other workers.

    In a pod, stdout is a pipe to the container runtime, and a pipe keeps a write whole only up
    to PIPE_BUF (4 KiB): two workers writing alert batches (or a long alert line) at once could
    interleave inside a JSON line. Each write here holds an exclusive `flock` on a file the
    supervisor created, which every worker opens itself (a lock taken through an inherited
    descriptor would be shared, not exclusive), and writes everything before releasing it, so
    every line arrives whole.
    """

    def __init__(self, fd: int, lock_path: str) -> None:
        super().__init__()
        self._fd = fd
        self._lock = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            done = 0
            while done < len(view):
                done += os.write(self._fd, view[done:])
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        return len(view)


def _shared_outputs(lock_path: str) -> None:
    """Route this worker's stdout (alerts) and stderr (logs) through `LockedOutput`; a buffer in
    front gathers each batch or log line into one locked write."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        raw = LockedOutput(fd, lock_path)
        buffered = io.BufferedWriter(raw, buffer_size=1 << 16)
        setattr(sys, name, io.TextIOWrapper(buffered, encoding="utf-8", line_buffering=True))


@dataclass
class SupervisorStats:
    #: worker restarts, by (worker, reason): `exit` (an error exit) or `signal` (killed)
    restarts: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: 1 while the worker's process runs, by worker
    up: dict[str, int] = field(default_factory=dict)
    #: exit codes of the workers' last runs, by worker
    exit_codes: dict[str, int] = field(default_factory=dict)


def _divided(limit: int, count: int) -> int:
    """A per-node rate limit as each worker's share (0 = unlimited stays unlimited)."""
    return 0 if limit == 0 else max(1, math.ceil(limit / count))


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    """The settings of worker `index`: one process, no listener of its own, a share of limits.

    The debug listener, when on, moves to port + index so the workers do not collide.
    """
    det = settings.detector.model_copy(
        update={
            "global_rate_limit": _divided(settings.detector.global_rate_limit, count),
            "per_rule_rate_limit": _divided(settings.detector.per_rule_rate_limit, count),
        }
    )
    ex = settings.exporters
    channels = {
        name: getattr(ex, name).model_copy(
            update={
                "max_alerts_per_minute": _divided(getattr(ex, name).max_alerts_per_minute, count)
            }
        )
        for name in ("stdout", "syslog", "http", "alertmanager", "otlp")
    }
    debug = settings.debug
    if debug.enabled and debug.port:
        debug = debug.model_copy(update={"address": f"{debug.host}:{debug.port + index}"})
    return settings.model_copy(
        update={
            "pipeline": settings.pipeline.model_copy(update={"workers": 1}),
            "metrics": settings.metrics.model_copy(update={"enabled": False}),
            "detector": det,
            "exporters": ex.model_copy(update=channels),
            "debug": debug,
        }
    )


def _frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if size > MAX_FRAME:
        raise ValueError(f"control frame of {size} bytes exceeds {MAX_FRAME}")
    return await reader.readexactly(size)


# -- supervisor side ---------------------------------------------------------------------------


class _Worker:
    """One running worker process and its control channel.

    One task reads every frame the worker writes, so a request that times out never leaves
    half a frame behind for the next one: answers are matched to requests by seq.
    """

    def __init__(self, index: int, proc: asyncio.subprocess.Process, control: Any) -> None:
        self.index = index
        self.proc = proc
        self.control: asyncio.StreamReader = control
        self.seq = 0
        #: The last report (readiness and exposition), None until one arrived.
        self.report: dict[str, Any] | None = None
        #: The report the worker wrote as it exited (None when it was killed).
        self.final: dict[str, Any] | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self.reader = asyncio.create_task(self._read(), name=f"worker-{index}-control")

    async def _read(self) -> None:
        try:
            while True:
                report = orjson.loads(await _read_frame(self.control))
                seq = report.get("seq")
                if seq == FINAL_SEQ:
                    self.final = report
                    continue
                self.report = report
                waiter = self._waiting.pop(seq, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # the worker exited
        except ValueError as exc:  # a broken frame: the channel cannot be trusted any more
            log.error("worker control channel broken", worker=self.index, reason=str(exc))

    async def ask(self) -> None:
        """Ask for a report; keep the previous one when the worker does not answer in time."""
        stdin = self.proc.stdin
        if stdin is None or self.proc.returncode is not None or self.reader.done():
            return
        self.seq += 1
        seq = self.seq
        waiter = self._waiting[seq] = asyncio.get_running_loop().create_future()
        try:
            stdin.write(f"?{seq}\n".encode())
            await stdin.drain()
            await asyncio.wait_for(waiter, REPORT_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("worker report missing", worker=self.index, reason=repr(exc))
        finally:
            self._waiting.pop(seq, None)

    async def finish(self) -> None:
        """After the process exited: read what it wrote last (bounded), then stop reading."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.reader), REPORT_TIMEOUT_S)
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class WorkersCollector(Collector):
    """The supervisor's exposition: every worker's families with a `worker` label, the
    supervisor's own process metrics (`worker="supervisor"`) and the worker counters."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._own = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._own)
        PlatformCollector(registry=self._own)
        self._counters = StatsCollector(workers=supervisor.stats)

    def collect(self) -> Iterable[Metric]:
        yield from self._counters.collect()
        merged: dict[str, Metric] = {}
        sources: list[tuple[str, str]] = [
            ("supervisor", generate_latest(self._own).decode()),
        ]
        for worker in self._supervisor.running():
            report = worker.report
            if report is not None and report.get("metrics"):
                sources.append((str(worker.index), str(report["metrics"])))
        for label, text in sources:
            try:
                families = list(text_string_to_metric_families(text))
            except ValueError as exc:  # a worker's broken exposition must not break the scrape
                log.error("worker exposition unreadable", worker=label, reason=str(exc))
                continue
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for s in family.samples:
                    labels = {**s.labels, "worker": label}
                    into.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))
        yield from merged.values()


class Supervisor:
    """Starts N workers, keeps them running, serves their metrics, stops them on a signal."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_level: str = "info",
        install_signal_handlers: bool = True,
    ) -> None:
        self.settings = settings
        self.count = settings.pipeline.workers
        self.log_level = log_level
        self.install_signal_handlers = install_signal_handlers
        self.stats = SupervisorStats()
        self.metrics: MetricsServer | None = None
        self._workers: dict[int, _Worker] = {}
        #: The last report of each worker's last run, written as it exited (`--summary`).
        self.final: dict[int, dict[str, Any]] = {}
        self._stop = asyncio.Event()
        self._failure = ""
        self._output_lock = ""

    def request_stop(self) -> None:
        self._stop.set()

    def running(self) -> list[_Worker]:
        return [w for _, w in sorted(self._workers.items()) if w.proc.returncode is None]

    async def refresh(self) -> None:
        """Fresh reports from every running worker (before a scrape or a readiness probe)."""
        await asyncio.gather(*(w.ask() for w in self.running()))

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {}
        ready = True
        for index in range(self.count):
            worker = self._workers.get(index)
            if worker is None or worker.proc.returncode is not None:
                details[str(index)] = {"up": False, "ready": False}
                ready = False
                continue
            report = worker.report or {}
            ok = bool(report.get("ready"))
            details[str(index)] = {
                "up": True,
                "ready": ok,
                "pid": worker.proc.pid,
                "checks": report.get("checks", {}),
            }
            ready = ready and ok
        return ready, details

    async def run(self) -> int:
        s = self.settings
        if s.metrics.enabled:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(WorkersCollector(self))
            self.metrics = MetricsServer(s.metrics, registry=registry, refresh=self.refresh)
            self.metrics.add_readiness_check("workers", self.readiness)
            await self.metrics.start()
        if self.install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._stop.set)
        fd, self._output_lock = tempfile.mkstemp(prefix="gadgetwatch-output-", suffix=".lock")
        os.close(fd)
        log.info("supervisor starting workers", workers=self.count)
        slots = [asyncio.create_task(self._keep(i), name=f"worker-{i}") for i in range(self.count)]
        stop_wait = asyncio.create_task(self._stop.wait(), name="stop-signal")
        try:
            pending: set[asyncio.Task[Any]] = set(slots)
            while pending and not self._stop.is_set():
                done, pending = await asyncio.wait(
                    pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop_wait)
                for task in done:
                    if task is not stop_wait and task.exception() is not None:
                        self._failure = f"worker supervision failed: {task.exception()!r}"
                        self._stop.set()
            if self._stop.is_set():
                await self._stop_all(slots)
        finally:
            stop_wait.cancel()
            for task in slots:
                task.cancel()
            await asyncio.gather(*slots, stop_wait, return_exceptions=True)
            if self.metrics is not None:
                await self.metrics.aclose()
            with contextlib.suppress(OSError):
                os.unlink(self._output_lock)
        codes = self.stats.exit_codes
        log.info("supervisor stopped", exit_codes=codes, restarts=sum(self.stats.restarts.values()))
        if self._failure:
            log.error("supervisor stopping after a failure", reason=self._failure)
            return 1
        return max(codes.values(), default=0)

    async def _stop_all(self, slots: list[asyncio.Task[None]]) -> None:
        for worker in self.running():
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        within = self.settings.pipeline.shutdown_deadline.total_seconds() + EXIT_MARGIN_S
        _, late = await asyncio.wait(slots, timeout=within)
        if not late:
            return
        for worker in self.running():
            log.error("worker did not stop in time, killed", worker=worker.index, within_s=within)
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
        self._failure = f"{len(late)} worker(s) did not stop within {within:g}s"
        await asyncio.wait(late, timeout=EXIT_MARGIN_S)

    async def _spawn(self, index: int) -> _Worker:
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gadgetwatch.worker",
                "--control-fd",
                str(write_fd),
                "--log-level",
                self.log_level,
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_FRAME)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        spec = WorkerSpec(
            index,
            self.count,
            worker_settings(self.settings, index, self.count),
            output_lock=self._output_lock,
        )
        assert proc.stdin is not None
        proc.stdin.write(_frame(pickle.dumps(spec)))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        return _Worker(index, proc, reader)

    async def _take_final(self, worker: _Worker) -> None:
        """The report a worker wrote as it exited (none when it was killed)."""
        await worker.finish()
        if worker.final is not None:
            self.final[worker.index] = worker.final

    async def _keep(self, index: int) -> None:
        """Run worker `index` until a stop, restarting it after crashes with back-off."""
        name = str(index)
        initial = self.settings.pipeline.worker_restart_initial.total_seconds()
        longest = self.settings.pipeline.worker_restart_max.total_seconds()
        delay = initial
        while not self._stop.is_set():
            started = time.monotonic()
            worker = await self._spawn(index)
            self._workers[index] = worker
            self.stats.up[name] = 1
            log.info("worker started", worker=index, pid=worker.proc.pid)
            if self._stop.is_set():  # a stop that came while it was being started
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
            code = await worker.proc.wait()
            await self._take_final(worker)
            self.stats.up[name] = 0
            if code == -signal.SIGTERM and self._stop.is_set():
                # Our own SIGTERM, taken before the agent handled signals (still starting) or
                # after it finished (already flushed): a clean stop either way.
                code = 0
            self.stats.exit_codes[name] = code if code >= 0 else 1
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
            if self._stop.is_set():
                log.info("worker stopped", worker=index, code=code)
                return
            if code in (0, EXIT_INCOMPLETE):
                log.info("worker finished: its gadget streams ended", worker=index, code=code)
                return
            reason = "signal" if code < 0 else "exit"
            self.stats.restarts[(name, reason)] += 1
            if time.monotonic() - started >= STABLE_RUN_S:
                delay = initial
            log.error("worker ended, restarting", worker=index, code=code, retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, max(longest, initial))


# -- worker side -------------------------------------------------------------------------------


def _read_spec(fd: int) -> WorkerSpec:
    """The first frame on stdin, read unbuffered so nothing after it is consumed here."""

    def exactly(n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = os.read(fd, n - len(chunks))
            if not chunk:
                raise EOFError("the supervisor closed the control channel before the spec")
            chunks += chunk
        return bytes(chunks)

    (size,) = _LENGTH.unpack(exactly(_LENGTH.size))
    if size > MAX_FRAME:
        raise ValueError(f"spec frame of {size} bytes exceeds {MAX_FRAME}")
    spec = pickle.loads(exactly(size))
    if not isinstance(spec, WorkerSpec):
        raise TypeError(f"expected a WorkerSpec, got {type(spec).__name__}")
    return spec


def _report(agent: Any, seq: int) -> bytes:
    health: MetricsServer | None = agent.health
    if health is None or agent.registry is None:
        body = {"seq": seq, "ready": False, "checks": {"starting": True}, "metrics": ""}
    else:
        ready, checks = health.readiness()
        metrics = generate_latest(agent.registry).decode()
        body = {"seq": seq, "ready": ready, "checks": checks, "metrics": metrics}
    return _frame(orjson.dumps(body, default=str))


async def _serve(agent: Any, control_fd: int) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    transport, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(control_fd, "wb", buffering=0)
    )

    async def control() -> None:
        while True:
            line = await reader.readline()
            if not line:
                log.info("supervisor gone, stopping")
                agent.request_stop()
                return
            if line.startswith(b"?"):
                try:
                    seq = int(line[1:])
                except ValueError:
                    continue
                if not transport.is_closing():
                    transport.write(_report(agent, seq))

    controller = asyncio.create_task(control(), name="worker-control")
    try:
        code: int = await agent.run()
        return code
    finally:
        controller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await controller
        if not transport.is_closing():
            # The final counters, for the supervisor's summary (seq 0: asked by nobody).
            transport.write(_report(agent, FINAL_SEQ))
        transport.close()


def worker_main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process (started by `Supervisor`, never by hand)."""
    from gadgetwatch.agent import Agent, AgentError
    from gadgetwatch.logs import configure_logging

    parser = argparse.ArgumentParser(prog="gadgetwatch-worker")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        spec = _read_spec(0)
    except (EOFError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        print(f"gadgetwatch worker: no usable spec from the supervisor: {exc}", file=sys.stderr)
        return 1
    if spec.output_lock:
        _shared_outputs(spec.output_lock)
    structlog.contextvars.bind_contextvars(worker=spec.index)
    agent = Agent(spec.settings, environ=dict(os.environ), shard=Shard(spec.index, spec.count))
    try:
        return asyncio.run(_serve(agent, args.control_fd))
    except AgentError as exc:
        print(f"gadgetwatch worker {spec.index}: {exc}", file=sys.stderr)
        return 1
    finally:
        # The agent stopped (its loop's handlers are gone): a late SIGTERM from the supervisor
        # must not turn a finished run into a kill.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _final_totals(text: str) -> Counter[str]:
    """Sums per family of one worker's final exposition (unreadable text counts nothing)."""
    totals: Counter[str] = Counter()
    with contextlib.suppress(ValueError):
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if not s.name.endswith(("_created", "_bucket", "_count", "_sum")):
                    totals[s.name] += int(s.value)
    return totals


def summary_lines(supervisor: Supervisor) -> list[str]:
    """`--summary` with workers: the node's event counts (the sum of the workers' last runs),
    then each worker's exit code, restarts and share."""
    restarts: Mapping[tuple[str, str], int] = supervisor.stats.restarts
    per = {i: _final_totals(str(r.get("metrics", ""))) for i, r in supervisor.final.items()}
    node: Counter[str] = sum(per.values(), Counter())
    p = "gadgetwatch_"
    dropped = node[f"{p}gadget_events_dropped_total"] + node[f"{p}pipeline_events_dropped_total"]
    # Every worker receives every event: the node received what one worker received.
    received = max((t[f"{p}gadget_events_decoded_total"] for t in per.values()), default=0)
    lines = [
        f"gadgetwatch summary ({supervisor.count} workers)",
        f"  events: received {received}, "
        f"processed {node[f'{p}pipeline_events_processed_total']}, "
        f"lost upstream {node[f'{p}gadget_events_lost_total']}, dropped {dropped}",
        f"  alerts: {node[f'{p}detector_alerts_total']}",
    ]
    for index in range(supervisor.count):
        name = str(index)
        n = sum(v for (w, _), v in restarts.items() if w == name)
        code = supervisor.stats.exit_codes.get(name, "-")
        t = per.get(index, Counter())
        lines.append(
            f"  worker {name}: exit code {code}, restarts {n}, "
            f"processed {t[f'{p}pipeline_events_processed_total']}, "
            f"foreign {t[f'{p}gadget_events_foreign_total']}"
        )
    return lines
