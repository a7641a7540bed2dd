"""The whole agent under load: `gadgetwatch run` fed by a replay server over a unix socket.

    .venv/bin/python benchmarks/bench_pipeline.py [--rates 1000,2000,4000,8000,max]
        [--seconds 15] [--max-steady 150000] [--profile RATE] [--keep DIR]
        [--feeder go|replay] [--transports native,grpcio] [--mixes realistic,exec]
        [--feeder-check] [--workers 1,2]

Feeders: `go` (default) is the grpc-go IG stand-in of `tests/igfixture` (IG's own gRPC
implementation, pre-encoded events, each gadget paced at its share of the rate; `--feeder-check`
measures what it sustains alone: it must not be the bottleneck); `replay` is the grpcio replay
server below (ordered, but it tops out near 5k payloads/s). Each rate runs once per transport
(`gadgetclient.transport`) and per mix: `realistic` (the 500-container node below) and `exec`
(its trace_exec lines only: an exec flood).

`--workers 1,2` runs every case once per `pipeline.workers` value: the agent is then a
supervisor and N worker processes, and its CPU and memory are those of the whole process tree.

Three kinds of process, all separate from this one (which only generates, watches and prints):

* the replay server (`ReplayServer`, ordered mode: every gadget stream released in capture
  order, `rate` payloads per second in total), on `unix://<tmp>/ig.sock`;
* the agent, `.venv/bin/gadgetwatch run --target unix://... --profiles-dir <tmp>
  --metrics-address 127.0.0.1:<port>` (stdout exporter into a file, directory store);
* the floor: `bench_client.client(..., mode "a")` (gRPC receive only, nothing decoded), one
  process per gadget, run right after the agent against the same server at the same rate, so
  it receives exactly the stream the agent received.

The stream is `pipeline_capture.py`'s node: 500 containers of 25 workloads (40 profiles), a
learning phase of 12k lines, then steady traffic that matches the profiles plus one anomaly per
400 lines. Each rate gets a prefix of the capture with `rate x seconds` steady lines; `max`
gets the whole capture with the server unpaced.

Figures, over the measured window (from the first scrape at which all 40 profiles are completed,
i.e. detection runs, until 97 % of the stream is processed):

* agent CPU µs/event: utime+stime from /proc/<pid>/stat over the window, divided by the
  events the agent processed in it (`gadgetwatch_pipeline_events_processed_total`); scrapes
  once a second, whose cost is included (Prometheus scrapes every 15-60 s);
* floor µs/event: the receive-only clients' CPU (their own `process_time`, whole stream)
  divided by the payloads they received; "over floor" is the difference;
* RSS / HWM: VmRSS and VmHWM from /proc/<pid>/status at the end of the window;
* alert latency p50/p99: from the `gadgetwatch_pipeline_alert_latency_seconds` histogram
  (batch arrival in the pipeline to the alert handed to delivery), interpolated within buckets
  like PromQL's `histogram_quantile`, so values are as coarse as the buckets (1, 5, 10, 50 ms);
* lost: IG-side sequence gaps and lost samples (`gadget_events_lost_total`), events dropped by
  the client (`gadget_events_dropped_total`) and inside the agent
  (`pipeline_events_dropped_total`), read after the stream ended; `processed` must equal the
  events of the capture (checked and printed).

Why the server is started from here and not with `gadgetwatch replay-server`: that command
loads the capture with `gadgetclient.capture.read_capture`, whose line numbering is quadratic
in the file size (`text.count("\\n", 0, i)` per value), which takes minutes for these captures.
The server class, the ordered timeline and the wire are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HERE = Path(__file__).resolve().parent
GADGETWATCH = ROOT / ".venv" / "bin" / "gadgetwatch"
PYSPY = ROOT / ".venv" / "bin" / "py-spy"
GADGETS = (
    "trace_exec",
    "trace_open",
    "trace_tcp",
    "trace_dns",
    "trace_capabilities",
    "advise_seccomp",
)
TRACE_GADGETS = GADGETS[:-1]
#: Workload containers of `pipeline_capture.py` (15 x 2 + 10 x 1): profiles to complete.
PROFILES = 40
#: Seconds between samples of /proc and /metrics: fine enough to place the window within
#: ~1 % of a 15 s run, coarse enough that scraping costs the agent < 1 % of its CPU.
SAMPLE_S = 1.0
#: Fraction of the stream after which the window ends: the tail (end of stream, shutdown)
#: is not steady state.
WINDOW_END = 0.97
#: Seconds after all profiles completed before the window opens: the completion flush writes
#: every profile and the directory store's watch (polling every 5 s) re-reads what was written;
#: that one-off work is not the steady state (a real agent does it once per learning period).
SETTLE_S = 7.0
GOAL_OVER_FLOOR_US = 40.0
GOAL_RSS_MIB = 150.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- helper processes ---------------------------------------------------------------------------


def serve(capture: str, sock: str, rate: float) -> None:
    """Replay server process: load the capture (linear time), serve until SIGTERM."""
    import orjson

    from gadgetclient.capture import Capture, CaptureLine
    from gadgetclient.replay import ReplayServer

    lines = []
    with open(capture, "rb") as f:
        header = orjson.loads(f.readline())
        for raw in f:
            v = orjson.loads(raw)
            lines.append(CaptureLine(v["gadget"], v["datasource"], v.get("node", ""), v["data"]))
    cap = Capture(lines=tuple(lines), header=header)
    kwargs: dict[str, Any] = {"listen": f"unix://{sock}", "rate": rate or None}
    if "ordered" in inspect.signature(ReplayServer).parameters:
        kwargs["ordered"] = True

    async def run() -> None:
        server = ReplayServer(cap, **kwargs)
        await server.start()
        print("listening", flush=True)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        await done.wait()
        await server.stop(0)

    asyncio.run(run())


def floor(sock: str, gadget: str) -> None:
    """One receive-only client: `bench_client` mode (a), asyncio API, one gadget."""
    # Imported by name: mypy checks `benchmarks/` as loose modules (no package).
    bench_client: Any = importlib.import_module("benchmarks.bench_client")
    bench_client.GADGETS[gadget] = gadget
    print(json.dumps(bench_client.client(sock, gadget, "a", "aio")), flush=True)


# -- measurement ----------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (a supervisor's workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU of `pid` and its children (workers that exited are not counted)."""
    total_s = proc_cpu_s(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total_s += proc_cpu_s(child)
    return total_s


def tree_mem_mib(pid: int) -> tuple[float, float]:
    rss, hwm = proc_mem_mib(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            r, h = proc_mem_mib(child)
            rss, hwm = rss + r, hwm + h
    return rss, hwm


def proc_mem_mib(pid: int) -> tuple[float, float]:
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


Series = dict[str, float]


def scrape(port: int) -> dict[str, Series]:
    """`/metrics` as {family name: {label string: value}}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, Series] = defaultdict(dict)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[s.name][labels] = s.value
    return out


def total(m: dict[str, Series], name: str) -> float:
    return sum(m.get(name, {}).values())


def quantile(q: float, start: dict[str, Series], end: dict[str, Series]) -> float | None:
    """`histogram_quantile` over the buckets' increase between two scrapes."""
    name = "gadgetwatch_pipeline_alert_latency_seconds_bucket"
    b0, b1 = start.get(name, {}), end.get(name, {})
    by_le: defaultdict[float, float] = defaultdict(float)  # summed over `worker` labels
    for k, v in b1.items():
        labels = dict(part.split("=", 1) for part in k.split(","))
        by_le[float(labels["le"])] += v - b0.get(k, 0.0)
    buckets: list[tuple[float, float]] = sorted(by_le.items())
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lo_bound, lo_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lo_bound
            return lo_bound + (bound - lo_bound) * (rank - lo_count) / max(count - lo_count, 1e-9)
        lo_bound, lo_count = bound, count
    return None


@dataclass
class Sample:
    t: float
    cpu: float
    metrics: dict[str, Series]
    mem: tuple[float, float] = (0.0, 0.0)

    @property
    def processed(self) -> float:
        return total(self.metrics, "gadgetwatch_pipeline_events_processed_total")

    @property
    def completed(self) -> float:
        # Summed over the workers' `worker` label when there are several.
        by = self.metrics.get("gadgetwatch_profiler_profiles", {})
        return sum(v for k, v in by.items() if "status=completed" in k.split(","))


@dataclass
class Result:
    rate: str
    events: int = 0
    window_s: float = 0.0
    achieved: float = 0.0
    cpu_us: float = 0.0
    cores: float = 0.0
    floor_us: float = 0.0
    floor_rate: float = 0.0
    rss: float = 0.0
    hwm: float = 0.0
    p50: float | None = None
    p99: float | None = None
    alerts: int = 0
    lost: float = 0.0
    dropped: float = 0.0
    processed: float = 0.0
    expected: int = 0
    server_cpu_us: float = 0.0
    #: 1-minute load average at the end of the run: the machine is shared, figures under a
    #: high load are the machine's, not the agent's
    load: float = 0.0
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefix_capture(
    src: Path, dst: Path, lines: int, keep: tuple[str, ...] = (), cycle: bool = False
) -> tuple[int, int]:
    """Header + the first `lines` capture lines (of the gadgets in `keep`, when given; with
    `cycle`, the kept lines again from the start until there are `lines`); returns
    (lines, events the agent will see)."""
    n = events = 0
    prefixes = tuple(f'{{"gadget":"{g}"'.encode() for g in keep)
    with src.open("rb") as f, dst.open("wb") as out:
        out.write(f.readline())
        body = f.readlines()
        if prefixes:
            body = [raw for raw in body if raw.startswith(prefixes)]
        while body and n < lines:
            for raw in body:
                if n >= lines:
                    break
                out.write(raw)
                n += 1
                # An advise_seccomp array holds one syscall set (one event) per container.
                events += raw.count(b'"syscalls":[') if raw.startswith(b'{"gadget":"advise') else 1
            if not cycle:
                break
    return n, events


def start_server(capture: Path, sock: Path, rate: float, log: Path) -> subprocess.Popen[str]:
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(capture), str(sock), str(rate)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "listening":
        raise SystemExit(f"replay server did not start; see {log}")
    return proc


def start_go_feeder(
    capture: Path, sock: Path, rate: float, log: Path, loops: int = 1
) -> subprocess.Popen[str]:
    """The grpc-go IG stand-in serving the capture `loops` times, each gadget at its share of
    `rate`."""
    import orjson

    from gadgetclient.capture import Capture, CaptureLine
    from tests import igfixture

    events = capture.with_suffix(".events")
    share: Counter[str] = Counter()
    with capture.open("rb") as f:
        f.readline()
        for raw in f:
            share[raw[11 : raw.index(b'"', 11)].decode()] += 1
    total_lines = sum(share.values())
    if not events.exists():  # compiled once per capture, shared by the transports' runs
        lines = []
        with capture.open("rb") as f:
            f.readline()
            for raw in f:
                v = orjson.loads(raw)
                lines.append(
                    CaptureLine(v["gadget"], v["datasource"], v.get("node", ""), v["data"])
                )
        events.mkdir()
        igfixture.write_events(events, Capture(lines=tuple(lines)))
    rates = ",".join(f"{g}={rate * n / total_lines:.3f}" for g, n in share.items()) if rate else ""
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    proc = subprocess.Popen(
        [str(igfixture.binary()), "-listen", f"unix:{sock}", "-events-dir", str(events),
         "-rates", rates, "-loops", str(loops)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("LISTENING"):
        raise SystemExit(f"grpc-go feeder did not start; see {log}")
    return proc


def feeder_check(work: Path, capture: Path, events: int) -> float:
    """Events/s the grpc-go feeder sends alone, unpaced, to a receive-only native client."""
    from gadgetclient.config import GadgetClientSettings
    from gadgetclient.h2stream import WireEvent, run_call
    from gadgetclient.targets import Endpoint
    from gadgetclient.wire import run_request, stop_request

    cap = work / "feeder-check.jsonl"
    prefix_capture(capture, cap, events, keep=("trace_exec",), cycle=True)
    sock = work / "feeder.sock"
    proc = start_go_feeder(cap, sock, 0.0, work / "feeder-check.log")
    got = 0

    def count(batch: list[WireEvent]) -> None:
        nonlocal got
        got += len(batch)

    async def receive() -> None:
        req = run_request(image="trace_exec", params={}, log_level=1, timeout_ns=0)
        await run_call(
            Endpoint(address=f"unix://{sock}"),
            GadgetClientSettings(read_coalesce=timedelta(0)),
            path="/api.GadgetManager/RunGadget",
            first=req.SerializeToString(),
            on_events=count,
            stop=asyncio.Event(),
            stop_message=stop_request().SerializeToString(),
        )

    try:
        t, c = time.perf_counter(), time.process_time()
        asyncio.run(receive())
        elapsed, client_cpu = time.perf_counter() - t, time.process_time() - c
        feeder_cpu = proc_cpu_s(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    print(
        f"feeder check: {got} events in {elapsed:.1f} s; the feeder's CPU "
        f"{feeder_cpu / max(got, 1) * 1e6:.1f} µs/event (one core: "
        f"{got / max(feeder_cpu, 1e-9):.0f} events/s); the receive-only native client's "
        f"{client_cpu / max(got, 1) * 1e6:.1f} µs/event",
        flush=True,
    )
    return got / elapsed


def run_agent(
    *, work: Path, sock: Path, rate_label: str, expected: int, learning_events: int,
    profile_s: float, transport: str = "native", gadgets: tuple[str, ...] = GADGETS,
    workers: int = 1,
) -> tuple[Result, dict[str, Series]]:  # fmt: skip
    res = Result(rate=rate_label, expected=expected)
    port = free_port()
    profiles = work / f"profiles-{rate_label}"
    profiles.mkdir()
    config = work / "agent.yaml"
    config.write_text(
        "profiler:\n"
        "  updatePeriod: 1s  # profiles complete (and reach the detector) within a second\n"
        'kubernetes:\n  mode: "off"\n'
        f"gadgetclient:\n  transport: {transport}\n  gadgets: [{', '.join(gadgets)}]\n"
        f"pipeline:\n  workers: {workers}\n"
    )
    cmd = [
        str(GADGETWATCH), "run", "--config", str(config), "--target", f"unix://{sock}",
        "--profiles-dir", str(profiles), "--learning-period", "2m",
        "--metrics-address", f"127.0.0.1:{port}", "--summary",
    ]  # fmt: skip
    alerts_file = work / f"alerts-{rate_label}.jsonl"
    with alerts_file.open("w") as out, (work / f"agent-{rate_label}.log").open("w") as err:
        agent = subprocess.Popen(cmd, stdout=out, stderr=err)
    samples: list[Sample] = []
    start: Sample | None = None
    end: Sample | None = None
    completed_at: float | None = None
    trace = (work / f"samples-{rate_label}.tsv").open("w")
    spy: subprocess.Popen[str] | None = None
    last_change = time.monotonic()
    try:
        while agent.poll() is None:
            time.sleep(SAMPLE_S)
            try:
                cpu = tree_cpu_s(agent.pid)
                m = scrape(port)
                mem = tree_mem_mib(agent.pid)
            except (OSError, ValueError):
                continue
            s = Sample(time.monotonic(), cpu, m, mem)
            if samples and s.processed < samples[-1].processed:
                # A worker (`--workers`) exited at the end of its streams: its counters and CPU
                # left the sums; the steady window ended before this sample.
                break
            if samples and s.processed > samples[-1].processed:
                last_change = s.t
            samples.append(s)
            print(
                f"{s.t:.2f}\t{s.cpu:.2f}\t{s.processed:.0f}\t{s.completed:.0f}\t"
                f"{total(m, 'gadgetwatch_profiler_writes_total'):.0f}",
                file=trace, flush=True,
            )  # fmt: skip
            # With workers, replicas of a workload may sit on different workers (each holds its
            # own profile): the count is not known in advance, so the window opens at half of
            # the steady phase instead.
            if completed_at is None and s.completed >= PROFILES and workers == 1:
                completed_at = s.t
            if start is None and (
                (completed_at is not None and s.t >= completed_at + SETTLE_S)
                or s.processed >= learning_events + (expected - learning_events) * 0.5
            ):
                start = s
                if s.completed < PROFILES and workers == 1:
                    res.notes.append(f"only {s.completed:.0f} profiles completed at start")
                if profile_s > 0 and PYSPY.exists():
                    spy = subprocess.Popen(
                        [str(PYSPY), "record", "--pid", str(agent.pid),
                         *(["--subprocesses"] if workers > 1 else []), "--duration",
                         str(int(profile_s)), "--rate", "200", "--format", "raw",
                         "--output", str(work / "agent.pyspy.txt"), "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                    )  # fmt: skip
            if start is not None and end is None and s.processed >= expected * WINDOW_END:
                end = s
            if end is not None and (s.processed >= expected or time.monotonic() - last_change > 5):
                break
            if time.monotonic() - last_change > 60:
                res.notes.append("agent stalled for 60 s")
                break
    finally:
        final = samples[-1].metrics if samples else {}
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        if spy is not None:
            spy.wait()
    res.alerts = sum(1 for _ in alerts_file.open())
    res.lost = total(final, "gadgetwatch_gadget_events_lost_total")
    res.dropped = total(final, "gadgetwatch_gadget_events_dropped_total") + total(
        final, "gadgetwatch_pipeline_events_dropped_total"
    )
    res.processed = samples[-1].processed if samples else 0.0
    # The agent exits when the streams end, often between two samples: its summary has the
    # final totals ("events: received N, processed N, lost upstream N, dropped N").
    for line in (work / f"agent-{rate_label}.log").read_text().splitlines():
        if line.strip().startswith("events: received"):
            nums = [int(w.strip(",")) for w in line.split() if w.strip(",").isdigit()]
            res.processed, res.lost, summary_dropped = nums[1], nums[2], nums[3]
            res.dropped = max(res.dropped, summary_dropped)
    (work / f"metrics-{rate_label}.json").write_text(json.dumps(final, indent=1))
    if start is not None and end is None and samples and samples[-1].t > start.t + 2:
        end = samples[-1]  # the agent exited (end of stream) before the 97 % sample
        res.notes.append("window ends at the last sample before the agent exited")
    if start is None or end is None or end.t <= start.t:
        res.notes.append("no measurement window (stream too short or agent too slow)")
        return res, final
    events = end.processed - start.processed
    res.rss, res.hwm = end.mem
    res.events = int(events)
    res.window_s = end.t - start.t
    res.achieved = events / res.window_s
    res.cpu_us = (end.cpu - start.cpu) / events * 1e6 if events else 0.0
    res.cores = (end.cpu - start.cpu) / res.window_s
    res.p50 = quantile(0.5, start.metrics, final)
    res.p99 = quantile(0.99, start.metrics, final)
    return res, final


def run_floor(sock: Path) -> tuple[float, float]:
    """Receive-only clients for every gadget at once; (CPU µs per payload, payloads/s)."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--floor", str(sock), g],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g in GADGETS
    ]
    cpu = events = wall = 0.0
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"floor client failed: {err.strip()[-500:]}")
        r = json.loads(out.strip().splitlines()[-1])
        cpu += r["cpu_us"] * r["events"]
        events += r["events"]
        wall = max(wall, r["events"] / r["rate"] if r["rate"] else 0.0)
    return cpu / events, events / wall if wall else 0.0


def pyspy_top(path: Path, n: int = 25) -> list[str]:
    """Self and inclusive time per function from py-spy's raw (collapsed stack) output."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        samples += count
        frames = stack.split(";")
        # frames look like "function (path/file.py:line)"; fold line numbers.
        names = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in frames]
        self_t[names[-1]] += count
        for name in set(names):
            incl[name] += count
    if not samples:
        return ["(no py-spy samples)"]
    out = [f"py-spy: {samples} samples of the agent's threads"]
    out.append("  self %  function")
    out += [f"  {c / samples * 100:5.1f}  {name}" for name, c in self_t.most_common(n)]
    out.append("  incl %  function")
    out += [f"  {c / samples * 100:5.1f}  {name}" for name, c in incl.most_common(n)]
    return out


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="4000,8000,16000,max")
    parser.add_argument("--seconds", type=float, default=15.0, help="steady phase per rate")
    parser.add_argument("--max-steady", type=int, default=150_000, help="steady lines for max")
    parser.add_argument("--profile", default="", help="py-spy the agent at this rate (or max)")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: temporary)")
    parser.add_argument("--feeder", choices=("go", "replay"), default="go")
    parser.add_argument("--max-events", type=int, default=150_000, help="go feeder: for max")
    parser.add_argument("--transports", default="native,grpcio")
    parser.add_argument("--mixes", default="realistic,exec")
    parser.add_argument("--feeder-check", action="store_true", help="measure the go feeder alone")
    parser.add_argument("--workers", default="1", help="pipeline.workers values, e.g. 1,2")
    parser.add_argument("--serve", nargs=3, metavar=("CAPTURE", "SOCK", "RATE"))
    parser.add_argument("--floor", nargs=2, metavar=("SOCK", "GADGET"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], float(args.serve[2]))
        return
    if args.floor:
        floor(*args.floor)
        return

    pipeline_capture: Any = importlib.import_module("benchmarks.pipeline_capture")
    work = args.keep or Path(tempfile.mkdtemp(prefix="gwpipe-"))
    work.mkdir(parents=True, exist_ok=True)
    full = work / "node.capture.jsonl"
    t = time.perf_counter()
    with full.open("w", encoding="utf-8") as out:
        counts = pipeline_capture.generate(out, steady_events=args.max_steady)
    learning_lines = counts["learning"]
    print(
        f"capture: {learning_lines} learning + {counts['steady']} steady lines, "
        f"{counts['anomalies']} anomalies, generated in {time.perf_counter() - t:.0f} s ({work})",
        flush=True,
    )
    if args.feeder_check:
        rate = feeder_check(work, full, 60_000)
        print(f"feeder check: to a receive-only native client {rate:.0f} events/s", flush=True)
    results: list[Result] = []
    for mix in args.mixes.split(","):
        only = "trace_exec" if mix == "exec" else ""
        for label in args.rates.split(","):
            rate = 0.0 if label == "max" else float(label)
            steady = counts["steady"] if rate == 0 else int(rate * (args.seconds + SETTLE_S + 2))
            for transport in args.transports.split(","):
                for workers in (int(w) for w in args.workers.split(",")):
                    results.append(
                        run_one(args, work, full, mix, only, label, rate, transport,
                                learning_lines, steady, workers)
                    )  # fmt: skip
    print_table(results)
    spy = work / "agent.pyspy.txt"
    if args.profile and spy.exists():
        print("\n" + "\n".join(pyspy_top(spy)))


def run_one(
    args: Any, work: Path, full: Path, mix: str, only: str, label: str, rate: float,
    transport: str, learning_lines: int, steady: int, workers: int = 1,
) -> Result:  # fmt: skip
    tag = f"{mix}-{label}-{transport}" + (f"-w{workers}" if workers > 1 else "")
    # The go feeder runs each gadget on its own clock, so advise_seccomp's flush (sent at the
    # end of its run, i.e. at once) would not sit at its capture position: left out there.
    gadgets = (only,) if only else GADGETS if args.feeder == "replay" else TRACE_GADGETS
    learning = learning_lines // 5 if only else learning_lines
    _, learning_events = prefix_capture(full, work / "learning.jsonl", learning, keep=gadgets)
    loops = 1
    if args.feeder == "go":
        # One compiled capture per mix, sent as many times as the rate needs (`-loops`): the
        # later passes are steady traffic the profiles already hold.
        cap = work / f"capture-{mix}.jsonl"
        if not cap.exists():
            prefix_capture(full, cap, 10**9, keep=gadgets)
        lines, expected = prefix_capture(cap, work / "count.jsonl", 10**9)
        needed = learning_events + rate * (args.seconds + SETTLE_S + 2) if rate else args.max_events
        loops = max(1, -(-int(needed) // expected))
        lines, expected = lines * loops, expected * loops
    else:
        cap = work / f"capture-{mix}-{label}.jsonl"
        lines, expected = prefix_capture(full, cap, learning + steady, keep=gadgets)
    sock = work / "ig.sock"
    t = time.perf_counter()
    log = work / f"server-{tag}.log"
    if args.feeder == "go":
        server = start_go_feeder(cap, sock, rate, log, loops)
    else:
        server = start_server(cap, sock, rate, log)
    print(f"[{tag}] server ready in {time.perf_counter() - t:.0f} s; agent...", flush=True)
    try:
        server_cpu0 = proc_cpu_s(server.pid)
        res, _ = run_agent(
            work=work, sock=sock, rate_label=tag, expected=expected,
            learning_events=learning_events,
            profile_s=args.seconds * 0.6 if args.profile == tag else 0.0,
            transport=transport, gadgets=gadgets, workers=workers,
        )  # fmt: skip
        res.server_cpu_us = (proc_cpu_s(server.pid) - server_cpu0) / max(lines, 1) * 1e6
        if args.feeder == "replay":
            print(f"[{tag}] floor...", flush=True)
            res.floor_us, res.floor_rate = run_floor(sock)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    res.rate = tag
    res.load = os.getloadavg()[0]
    if args.feeder == "go":
        # The feeder's own count of IG-style drops (its channel full): drops after a stream's
        # last delivered event leave no seq gap, so no client can count those.
        fed = log.read_text()
        dropped = sum(int(w.removeprefix("dropped=")) for w in fed.split() if "dropped=" in w)
        if dropped:
            res.notes.append(f"feeder dropped {dropped} (its buffer full; IG's behaviour)")
    print(
        f"[{tag}] {res.achieved:.0f} ev/s, {res.cpu_us:.1f} µs/event, "
        f"lost {res.lost:.0f}, dropped {res.dropped:.0f}",
        flush=True,
    )
    return res


def print_table(results: list[Result]) -> None:
    print("\ncommand: " + " ".join([sys.executable, *sys.argv]))
    head = (
        f"{'mix-rate-transport':>24} {'ev/s':>6} {'cores':>5} {'µs/ev':>6} {'floor':>6} "
        f"{'over':>6} "
        f"{'RSS MiB':>7} {'HWM MiB':>7} {'p50 ms':>6} {'p99 ms':>6} {'alerts':>6} "
        f"{'lost':>5} {'drop':>5} {'processed':>17} {'load':>5}"
    )
    print(head)
    for r in results:
        print(
            f"{r.rate:>24} {r.achieved:6.0f} {r.cores:5.2f} {r.cpu_us:6.1f} {r.floor_us:6.1f} "
            f"{r.cpu_us - r.floor_us:+6.1f} {r.rss:7.1f} {r.hwm:7.1f} {fmt_ms(r.p50):>6} "
            f"{fmt_ms(r.p99):>6} {r.alerts:6d} {r.lost:5.0f} {r.dropped:5.0f} "
            f"{r.processed:8.0f}/{r.expected:<8d} {r.load:5.1f}"
        )
        for note in r.notes:
            print(f"      note: {note}")
    print("\nreplay server CPU µs per payload: " + ", ".join(
        f"{r.rate} {r.server_cpu_us:.0f}" for r in results))  # fmt: skip
    print("goals at 8000 ev/s: nothing lost; agent µs/event <= floor + 40; RSS <= 150 MiB")
    for r in results:
        if r.rate != "8000":
            continue
        ok_loss = r.lost == 0 and r.dropped == 0 and r.processed == r.expected
        ok_cpu = r.cpu_us <= r.floor_us + GOAL_OVER_FLOOR_US
        ok_mem = max(r.rss, r.hwm) <= GOAL_RSS_MIB
        print(
            f"  nothing lost: {'met' if ok_loss else 'MISSED'}; "
            f"CPU {r.cpu_us:.1f} <= {r.floor_us:.1f} + 40: {'met' if ok_cpu else 'MISSED'}; "
            f"memory {max(r.rss, r.hwm):.0f} MiB <= 150: {'met' if ok_mem else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
