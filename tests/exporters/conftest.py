"""Fixtures for the exporter tests: TLS files, real rsyslog and Alertmanager daemons."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
