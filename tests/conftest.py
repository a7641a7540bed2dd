"""Hygiene for every test: a clean environment, and no asyncio task left running by a test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell (`GADGETWATCH_*`)."""
    for name in list(os.environ):
        if name.startswith("GADGETWATCH_") or name in ("KUBECONFIG", "NODE_NAME"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """Whatever a test starts (servers, sources, exporters, agents) it must stop: a task
    still running afterwards is a leak the agent would have in production too."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    # One loop turn lets tasks that were just cancelled or finished settle.
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not left, f"tasks left running: {[t.get_name() for t in left]}"
