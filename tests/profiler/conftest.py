from __future__ import annotations

from pathlib import Path

import pytest

from profiler.dirstore import DirectoryStore


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "profiles")


from tests.standins.fixtures import kube_api, kube_api_factory  # noqa: E402

__all__ = ["kube_api", "kube_api_factory", "store"]
