from __future__ import annotations

from pathlib import Path

import pytest

from profiler.dirstore import DirectoryStore


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "profiles")
