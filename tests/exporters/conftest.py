"""Fixtures for the exporter tests: TLS files, real rsyslog and Alertmanager daemons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.exporters.daemons import Alertmanager, Rsyslog, TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def rsyslog_factory(tmp_path: Path) -> Iterator[Callable[..., Rsyslog]]:
    started: list[Rsyslog] = []

    def start(*, tls: TlsFiles | None = None) -> Rsyslog:
        daemon = Rsyslog(tmp_path / f"rsyslog{len(started)}", tls=tls)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    started: list[Alertmanager] = []

    def start(*, port: int | None = None, launch: bool = True) -> Alertmanager:
        daemon = Alertmanager(tmp_path / f"am{len(started)}", port=port)
        started.append(daemon)
        return daemon.start() if launch else daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """Every exporter and Delivery a test starts must be closed by it: no stray tasks."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    # One loop turn lets tasks that were just cancelled or finished settle.
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not left, f"tasks left running: {[t.get_name() for t in left]}"
