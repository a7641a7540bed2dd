"""Processes and probes for the end-to-end tests: the agent, the replay server, /metrics.

Every process is started with asyncio subprocesses and waited for on conditions with deadlines
(a line on stdout, a log event on stderr, an HTTP answer), never with fixed sleeps. Their
output is read continuously into lists, so a test can wait for a line and a failing test shows
the agent's log tail in its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
_OWN_BIN = Path(sys.executable).with_name("gadgetwatch")
#: The console script of the virtualenv running the tests (`.venv`, or `.venv-floors` in the
#: minimum-versions job), so subprocesses run with the same dependency versions as the tests.
GADGETWATCH = str(_OWN_BIN if _OWN_BIN.exists() else REPO / ".venv" / "bin" / "gadgetwatch")

#: Deadline for anything a healthy agent does on loopback (start, deliver, stop). Generous
#: because CI machines stall; a passing run takes a fraction of it.
DEADLINE_S = 20.0
#: Deadline for a whole agent run to exit (a replay of the example capture: start-up, replay,
#: final flush, shutdown). A deadline, not a wait: a passing run exits in 5-15 s; seen at 22 s on
#: a 2-core machine with a load of 13.
RUN_DEADLINE_S = 90.0
#: Poll interval of condition waits: short enough to add no noticeable latency.
POLL_S = 0.02


async def eventually(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = DEADLINE_S,
    what: str = "condition",
    context: Callable[[], str] | None = None,
) -> None:
    """Re-check `predicate` (sync or async) until true; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            extra = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {within} s waiting for {what}{extra}")
        await asyncio.sleep(POLL_S)


@dataclass
class Proc:
    """A child process whose stdout and stderr lines are collected as they arrive."""

    name: str
    proc: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=str(REPO),
            # Its own process group: a test's Ctrl-C does not reach it, the fixture stops it.
            start_new_session=True,
        )
        self = cls(name, proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, self.stdout), name=f"{name}-stdout"),
            asyncio.create_task(self._read(proc.stderr, self.stderr), name=f"{name}-stderr"),
        ]
        return self

    @staticmethod
    async def _read(stream: asyncio.StreamReader, sink: list[str]) -> None:
        while line := await stream.readline():
            sink.append(line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def tail(self, n: int = 40) -> str:
        return f"--- {self.name} stderr (last {n} lines) ---\n" + "\n".join(self.stderr[-n:])

    def logs(self) -> list[dict[str, Any]]:
        """stderr lines that are structlog JSON objects."""
        out = []
        for line in self.stderr:
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def log_events(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in self.logs() if entry.get("event") == event]

    async def wait_stdout(self, predicate: Callable[[str], bool], *, what: str) -> str:
        found: list[str] = []

        def seen() -> bool:
            found[:] = [ln for ln in self.stdout if predicate(ln)]
            if not found and not self.running:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before {what}")
            return bool(found)

        await eventually(seen, what=what, context=self.tail)
        return found[0]

    async def wait_log(self, event: str) -> dict[str, Any]:
        def seen() -> bool:
            if not self.log_events(event) and not self.running:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before {event}")
            return bool(self.log_events(event))

        await eventually(seen, what=f"log event {event!r} from {self.name}", context=self.tail)
        return self.log_events(event)[0]

    async def signal(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    async def wait_exit(self, within: float = RUN_DEADLINE_S) -> int:
        try:
            async with asyncio.timeout(within):
                code = await self.proc.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.name} did not exit within {within} s\n{self.tail()}"
            ) from None
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL if it does not go; collect the readers."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(DEADLINE_S):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def child_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: no developer `GADGETWATCH_*`/kube settings, a private HOME
    (no ~/.kube/config is picked up), plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GADGETWATCH_", "KUBERNETES_")) and k not in ("KUBECONFIG",)
    }
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


async def start_replay_server(
    capture: Path,
    socket_path: Path,
    *,
    env: Mapping[str, str],
    rate: float = 0,
    ordered: bool = True,
) -> Proc:
    """`gadgetwatch replay-server CAPTURE --listen unix://... --hold-flush` in its own process.

    `--hold-flush` keeps advise_seccomp's run open like a live gadget, so the agent keeps
    running (and can be scraped) until it is stopped."""
    proc = await Proc.start(
        "replay-server",
        [
            GADGETWATCH,
            "replay-server",
            str(capture),
            "--listen",
            f"unix://{socket_path}",
            "--hold-flush",
            *(() if ordered else ("--no-ordered",)),
        ],
        env=env,
    )
    await proc.wait_stdout(lambda ln: ln.startswith("listening "), what="replay server listening")
    return proc


@dataclass
class Agent:
    """A running `gadgetwatch run` process and its metrics endpoint."""

    proc: Proc
    metrics_port: int = 0

    @classmethod
    async def start(cls, args: Sequence[str], *, env: Mapping[str, str]) -> Agent:
        """Start the agent with `--metrics-address 127.0.0.1:0` (a free port chosen by the kernel;
        the agent logs it) and wait until it serves."""
        argv = [GADGETWATCH, "run", "--metrics-address", "127.0.0.1:0", *args]
        agent = cls(await Proc.start("agent", argv, env=env))
        listening = await agent.proc.wait_log("metrics server listening")
        agent.metrics_port = int(listening["port"])
        return agent

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(self.base + path) as resp,
            ):
                return resp.status, await resp.read()
        except aiohttp.ClientConnectionError:
            # A closed metrics port means the agent is stopping: report its exit and log.
            code = await self.proc.wait_exit()
            raise AssertionError(f"agent exited ({code})\n{self.proc.tail()}") from None

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = await self.get("/readyz")
        return status, orjson.loads(body)

    async def wait_ready(self) -> dict[str, Any]:
        """Until /readyz answers 200 (gadgets tracing, profiles synced, pod cache listed)."""
        last: dict[str, Any] = {}

        async def ready() -> bool:
            if not self.proc.running:
                raise AssertionError(f"agent exited ({self.proc.proc.returncode})")
            status, last["body"] = await self.readyz()
            return status == 200

        await eventually(ready, what="/readyz 200", context=lambda: f"{last}\n{self.proc.tail()}")
        return dict(last["body"])

    async def metrics(self) -> Metrics:
        status, body = await self.get("/metrics")
        assert status == 200
        return Metrics.parse(body.decode())

    async def wait_metrics(
        self, predicate: Callable[[Metrics], bool], *, what: str, show: str = "gadgetwatch_"
    ) -> Metrics:
        """Scrape until `predicate` holds; on timeout show the last scrape's samples whose
        name starts with `show`, and the agent's log tail."""
        seen: list[Metrics] = []

        async def check() -> bool:
            seen[:] = [await self.metrics()]
            return predicate(seen[0])

        def context() -> str:
            shown = [
                f"{name}{dict(labels)} {value}"
                for (name, labels), value in (seen[0].samples.items() if seen else [])
                if name.startswith(show)
            ]
            return "\n".join(shown) + "\n" + self.proc.tail(10)

        await eventually(check, what=what, context=context)
        return seen[0]

    async def terminate(self, within: float = DEADLINE_S) -> int:
        await self.proc.signal(signal.SIGTERM)
        return await self.proc.wait_exit(within)

    def stdout_alerts(self) -> list[dict[str, Any]]:
        """Alerts printed by the stdout exporter (JSON objects with a `rule`)."""
        out = []
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict) and "rule" in obj:
                    out.append(obj)
        return out


@dataclass
class Metrics:
    """One scrape: `{(name, sorted label items): value}` over every sample."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return cls(samples)

    def by(self, name: str, label: str, **where: str) -> dict[str, float]:
        """Values of metric `name` keyed by `label`, over samples matching `where` (summed)."""
        out: dict[str, float] = {}
        for (n, labels), value in self.samples.items():
            d = dict(labels)
            if n != name or any(d.get(k) != v for k, v in where.items()):
                continue
            out[d.get(label, "")] = out.get(d.get(label, ""), 0.0) + value
        return out

    def total(self, name: str, **where: str) -> float:
        return sum(self.by(name, "", **where).values())

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)
