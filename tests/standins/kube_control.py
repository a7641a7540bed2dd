"""Process mode of the stand-in: the command line and HTTP fault injection under `/_standin/`.

`python -m tests.standins.kubeapi --port N --crds deploy/crds [--seed objects.yaml]` serves until
SIGTERM/SIGINT (exit 0) after printing `KUBEAPI_URL=http://127.0.0.1:N`. An end-to-end test
drives faults with JSON POSTs mirroring the in-process methods: `conflicts {resource, n}`,
`unavailable {down}`, `latency {seconds}`, `portforward {namespace, pod, address, port?}`,
`allow {verb, group, resource, namespace?}`, `objects` (an object to create or replace), and
`GET requests` (the request log).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from aiohttp import web

if TYPE_CHECKING:
    from tests.standins.kubeapi import KubeApiServer


async def handle_control(server: KubeApiServer, request: web.Request) -> web.Response:
    op = request.path.removeprefix("/_standin/")
    body = await request.json() if request.can_read_body else {}
    if op == "conflicts":
        key = body["resource"]
        server.options.conflicts[key] = server.options.conflicts.get(key, 0) + int(body["n"])
    elif op == "unavailable":
        server.down = "unavailable" if body.get("down", True) else None
        if server.down:
            server.store.close_watchers()
    elif op == "latency":
        server.latency = float(body["seconds"])
    elif op == "portforward":
        backends = server.backends.setdefault((body["namespace"], body["pod"]), {})
        backends[body.get("port")] = body["address"]
    elif op == "allow":
        server.access.allow(
            body["verb"], body.get("group", ""), body["resource"], body.get("namespace")
        )
    elif op == "objects" and request.method == "POST":
        return web.json_response(server.add_now(body))
    elif op == "requests":
        return web.json_response([dataclasses.asdict(r) for r in server.requests])
    else:
        raise web.HTTPNotFound()
    return web.json_response({"ok": True})


async def serve(args: argparse.Namespace) -> None:
    from tests.standins.kubeapi import KubeApiServer

    server = KubeApiServer(crds_dir=args.crds, host=args.host, port=args.port)
    url = await server.start_async()
    if args.seed:
        seed_text = await asyncio.to_thread(Path(args.seed).read_text)
        for doc in yaml.safe_load_all(seed_text):
            if isinstance(doc, dict):
                server.add_now(doc)
    print(f"KUBEAPI_URL={url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await server.stop_async()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standins.kubeapi",
        description="A stand-in Kubernetes API server on loopback (tests only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--crds", default=None, help="directory of CRD YAML files to load")
    parser.add_argument("--seed", default=None, help="YAML file of objects to create at start")
    asyncio.run(serve(parser.parse_args(argv)))
    return 0
