"""Console benchmark: page load time with 100,000 stored alerts.

Run: ``.venv/bin/python -m benchmarks.bench_console [--alerts 100000] [--requests 30]``

A SQLite store is filled with `--alerts` alerts spread over 7 days, 40 namespaces, 400
workloads, 30 rules and the five severities (realistic bodies, the size the agent sends: about
1.5 KiB each). The console application is served on loopback in this process and each page is
fetched `--requests` times by an HTTP client in the same process (so the figure includes
rendering, HTTP and the client, on one core): the Alerts page unfiltered (chart over the whole
span, incidents, the newest 100), filtered by namespace, by workload, by rule, by severity
and by a time range, an alert's detail page, and the ingestion of one alert. Prints p50 and p95
per page. Goal: every page <= 300 ms (p95).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from detector.alerts import format_time
from gadgetwatch.console.app import ConsoleState, build_app
from gadgetwatch.console.security import Auth
from gadgetwatch.console.store import AlertStore, row_of

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01
SPAN = 7 * 86400 * S
SEVERITIES = ("info", "low", "medium", "high", "critical")
TOKEN = "bench"
GOAL_MS = 300.0


def make_alert(rng: random.Random, i: int) -> dict[str, object]:
    ns = f"team-{rng.randrange(40)}"
    workload = f"svc-{rng.randrange(400)}"
    rule = f"R{rng.randrange(30):04d}"
    t = format_time(T0 + rng.randrange(SPAN))
    path = f"/usr/bin/tool-{rng.randrange(1000)}"
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "kind": "rule",
        "fingerprint": f"{rng.getrandbits(64):016x}",
        "cluster": "bench",
        "time": t,
        "rule": {
            "id": rule,
            "name": "Unexpected process launched",
            "severity": rng.choice(SEVERITIES),
            "tags": ["exec", "anomaly"],
            "mitre": {"tactic": "TA0002", "technique": "T1059"},
        },
        "message": f"Unexpected process launched: {path} (comm tool, pid {i})",
        "fixSuggestion": "# If this is expected behaviour, allow it (kubectl apply -f -):\n"
        + "apiVersion: gadgetwatch.io/v1\nkind: RuntimeAlertException\n" * 4,
        "kubernetes": {
            "node": f"node-{rng.randrange(20)}",
            "namespace": ns,
            "workloadKind": "Deployment",
            "workloadName": workload,
            "pod": f"{workload}-5d4f9-abcde",
            "container": "app",
        },
        "runtime": {
            "containerId": f"{i:012x}",
            "image": "registry.example/app:1.0",
            "imageDigest": "",
        },
        "process": {
            "pid": i,
            "comm": "tool",
            "exe": path,
            "args": [path, "--flag", "value"],
            "cwd": "/",
            "uid": 1000,
            "gid": 1000,
            "ppid": 1,
            "pcomm": "sh",
        },
        "event": {"type": "exec", "path": path, "args": [path, "--flag", "value"], "cwd": "/"},
        "profile": {"name": f"deployment-{workload}-app", "status": "completed"},
        "dedup": {"count": rng.randrange(1, 5), "firstSeen": t, "lastSeen": t},
    }


async def fill(store: AlertStore, n: int) -> str:
    rng = random.Random(16)
    now = time.time_ns()
    last_id = ""
    chunk = 10_000
    for start in range(0, n, chunk):
        alerts = [make_alert(rng, i) for i in range(start, min(n, start + chunk))]
        rows = [(row_of(a), now) for a in alerts]
        last_id = str(alerts[-1]["id"])
        await store.insert_many(rows)
    return last_id


async def measure(
    http: aiohttp.ClientSession, url: str, requests: int, *, post: bytes | None = None
) -> list[float]:
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        if post is not None:
            body = orjson.loads(post)
            body["id"] = str(uuid.uuid4())
            async with http.post(url, data=orjson.dumps(body)) as r:
                await r.read()
                assert r.status == 200, r.status
        else:
            async with http.get(url) as r:
                await r.read()
                assert r.status == 200, r.status
        times.append((time.perf_counter() - start) * 1000)
    return times


async def main(alerts: int, requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        store = AlertStore(Path(tmp) / "alerts.db", max_alerts=0, max_age_s=0)
        state = ConsoleState(store=store, auth=Auth(token=TOKEN), profiles=None)
        runner = web.AppRunner(build_app(state), access_log=None)
        await runner.setup()  # opens the store
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        t = time.perf_counter()
        some_id = await fill(store, alerts)
        print(f"stored {alerts} alerts in {time.perf_counter() - t:.1f}s")
        pages = {
            "alerts (all)": "/alerts",
            "alerts ns=team-7": "/alerts?namespace=team-7",
            "alerts workload=svc-42": "/alerts?workload=svc-42",
            "alerts rule=R0007": "/alerts?rule=R0007",
            "alerts severity>=critical": "/alerts?severity=critical",
            "alerts one day": "/alerts?since=2026-01-03T00:00:00&until=2026-01-04T00:00:00",
            "alert detail": f"/alerts/{some_id}",
            "health": "/health",
        }
        worst = 0.0
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            print(f"{'page':28} {'p50 ms':>8} {'p95 ms':>8}")
            for name, path in pages.items():
                await measure(http, base + path, 2)  # warm: the page cache, not the figure
                times = await measure(http, base + path, requests)
                p50 = statistics.median(times)
                p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
                worst = max(worst, p95)
                print(f"{name:28} {p50:8.1f} {p95:8.1f}")
            sample = orjson.dumps(make_alert(random.Random(1), 0))
            times = await measure(http, base + "/api/v1/alerts", requests, post=sample)
            print(
                f"{'ingest one alert':28} {statistics.median(times):8.1f} "
                f"{statistics.quantiles(times, n=20)[-1]:8.1f}"
            )
        await runner.cleanup()
        verdict = "OK" if worst <= GOAL_MS else "OVER"
        print(f"slowest page p95: {worst:.1f} ms (goal <= {GOAL_MS:.0f} ms): {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.requests))
