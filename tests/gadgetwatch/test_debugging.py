"""The debug listener in process: one CPU profile at a time, clear 400s, an abandoned request
stops its sampler, the task dump names the running tasks."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import orjson

from gadgetwatch.config import DebugSettings
from gadgetwatch.debugging import DebugServer
from tests.exporters.helpers import wait_until


def _samplers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "debug-cpu-sampler"]


async def test_one_profile_at_a_time_and_bad_parameters() -> None:
    server = DebugServer(DebugSettings(enabled=True, address="127.0.0.1:0", max_seconds=5))
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, bytes]:
                async with session.get(base + path) as resp:
                    return resp.status, await resp.read()

            first = asyncio.create_task(get("/debug/cpu?seconds=1"))
            await wait_until(lambda: bool(_samplers()), what="the first profile running")
            assert await get("/debug/cpu?seconds=1") == (409, b"a CPU profile is already running\n")
            status, body = await first
            assert status == 200
            assert orjson.loads(body)["profiles"]
            for path, reason in (
                ("/debug/cpu?seconds=6", b"seconds must be between 1 and 5"),
                ("/debug/cpu?seconds=x", b"seconds must be an integer"),
                ("/debug/cpu?format=pprof", b"format must be speedscope or collapsed"),
                ("/debug/memory?top=0", b"top must be between 1 and 1000"),
            ):
                status, body = await get(path)
                assert status == 400, path
                assert reason in body
            status, body = await get("/debug/tasks")
            assert status == 200
            assert b"asyncio task(s)" in body
            assert b"test_one_profile_at_a_time_and_bad_parameters" in body
    finally:
        await server.aclose()


async def test_an_abandoned_profile_stops_its_sampler() -> None:
    server = DebugServer(DebugSettings(enabled=True, address="127.0.0.1:0"))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(
                session.get(f"http://127.0.0.1:{server.port}/debug/cpu?seconds=300")
            )
            await wait_until(lambda: bool(_samplers()), what="the profile running")
            request.cancel()  # the client goes away
            await asyncio.gather(request, return_exceptions=True)
        # The handler is cancelled and stops the sampler (not after the 300 s asked for).
        await wait_until(lambda: not _samplers(), what="the sampler stopped")
    finally:
        await server.aclose()
