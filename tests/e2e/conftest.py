"""Fixtures of the end-to-end tests: real daemons (reused from the exporter and stand-in test
packages), an HTTP receiver, short socket directories and the children's environment."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import child_env
from tests.exporters.conftest import alertmanager_factory, rsyslog_factory
from tests.exporters.receivers import HttpReceiver
from tests.standins.fixtures import kube_api, kube_api_factory

__all__ = ["alertmanager_factory", "kube_api", "kube_api_factory", "rsyslog_factory"]


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (sun_path holds 108 bytes; pytest's tmp paths can
    exceed that)."""
    path = Path(tempfile.mkdtemp(prefix="gw-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return child_env(home)


@pytest.fixture
async def webhook() -> AsyncIterator[HttpReceiver]:
    receiver = await HttpReceiver().start()
    yield receiver
    await receiver.stop()
