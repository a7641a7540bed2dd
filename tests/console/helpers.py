"""Building blocks of the console tests: alerts in the webhook body's shape, a console served
in-process on loopback, and a console started as its own `gadgetwatch console` process."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from gadgetwatch.console.app import ConsoleState, build_app
from gadgetwatch.console.security import Auth
from gadgetwatch.console.store import AlertStore
from profiler.store import ProfileStore
from tests.e2e.harness import GADGETWATCH

TOKEN = "console-test-token"
INGEST = "ingest-test-token"


def alert(
    *,
    rule: str = "R0001",
    severity: str = "medium",
    namespace: str = "shop",
    workload: str = "web",
    time: str = "2026-01-01T00:00:00.000000000Z",
    message: str = "Unexpected process launched: /usr/bin/curl",
    alert_id: str = "",
    count: int = 1,
    fingerprint: str = "3f7c0a9d12e4b6a1",
    **extra: Any,
) -> dict[str, Any]:
    """An alert as `Alert.to_dict()` shapes it (docs/alerts.md), with the fields tests vary."""
    body: dict[str, Any] = {
        "id": alert_id or str(uuid.uuid4()),
        "kind": "rule",
        "fingerprint": fingerprint,
        "cluster": "test",
        "time": time,
        "rule": {
            "id": rule,
            "name": "Unexpected process launched",
            "severity": severity,
            "tags": ["exec"],
            "mitre": {"tactic": "TA0002", "technique": "T1059"},
        },
        "message": message,
        "fixSuggestion": "",
        "kubernetes": {
            "node": "node-a",
            "namespace": namespace,
            "workloadKind": "Deployment",
            "workloadName": workload,
            "pod": f"{workload}-5d4f9-abcde",
            "container": "app",
        },
        "runtime": {
            "containerId": "c0ffee",
            "image": "registry.example/web:1.2",
            "imageDigest": "",
        },
        "process": {
            "pid": 4242,
            "comm": "curl",
            "exe": "/usr/bin/curl",
            "args": ["/usr/bin/curl", "-s"],
            "cwd": "/",
            "uid": 0,
            "gid": 0,
            "ppid": 4200,
            "pcomm": "sh",
        },
        "event": {"type": "exec", "path": "/usr/bin/curl", "args": ["/usr/bin/curl", "-s"]},
        "profile": {"name": "deployment-web-app", "status": "completed"},
        "dedup": {"count": count, "firstSeen": time, "lastSeen": time},
    }
    body.update(extra)
    return body


@dataclass
class Served:
    url: str
    state: ConsoleState


@asynccontextmanager
async def served(
    tmp: Path,
    *,
    profiles: ProfileStore | None = None,
    kube_api: Any = None,
    disabled: bool = False,
    clock_ns: Any = None,
    max_alerts: int = 1_000_000,
) -> AsyncIterator[Served]:
    """The console application on 127.0.0.1 (a free port), in this event loop."""
    kwargs: dict[str, Any] = {} if clock_ns is None else {"clock": clock_ns}
    store = AlertStore(tmp / "alerts.db", max_alerts=max_alerts, **kwargs)
    state = ConsoleState(
        store=store,
        auth=Auth(
            token="" if disabled else TOKEN,
            ingest_token="" if disabled else INGEST,
            disabled=disabled,
        ),
        profiles=profiles,
        kube_api=kube_api,
    )
    runner = web.AppRunner(build_app(state), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Served(f"http://127.0.0.1:{port}", state)
    finally:
        await runner.cleanup()


class ConsoleProcess:
    """`gadgetwatch console` in its own process; `url` is read from its `listening` line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [GADGETWATCH, "console", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        # Blocks until the line is printed (or the process exits: then the line is empty).
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"console did not start: {line!r}\n{err}")
        self.url = line.split()[1]

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def python() -> str:
    return sys.executable
