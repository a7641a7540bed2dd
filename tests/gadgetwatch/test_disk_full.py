"""A full profiles directory loses nothing silently (issue 10, item 6).

`FullDisk` is the directory store with a byte quota on its file writes: past the quota a write
fails with ENOSPC exactly where the kernel reports it (the write of the temporary file), so the
store's own clean-up and error path run as on a real full file system, deterministically and
without mounting one (CI machines may not allow mounts).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from gadgetwatch.agent import Agent, profiles_readiness
from gadgetwatch.cli import main
from profiler.dirstore import DirectoryStore
from profiler.store import ProfileStore
from tests.e2e.scenario import CAPTURE
from tests.profiler.helpers import T0, container, exec_, learner, open_

S = 1_000_000_000


class FullDisk(DirectoryStore):
    """A directory store on a file system with `free` bytes left."""

    def __init__(self, root: Path, *, free: int) -> None:
        super().__init__(root)
        self.free = free

    def write_bytes(self, handle: BinaryIO, data: bytes) -> None:
        if len(data) > self.free:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.free -= len(data)
        super().write_bytes(handle, data)


async def test_failed_writes_stay_pending_are_reported_and_retried(tmp_path: Path) -> None:
    store = FullDisk(tmp_path / "profiles", free=0)
    lrn = learner(store)
    workloads = [
        container(cid=f"c{i}", name=f"app{i}", owner=("Pod", f"pod{i}")) for i in range(120)
    ]
    for i, c in enumerate(workloads):
        lrn.observe([exec_(c, T0 + i, "/bin/app"), open_(c, T0 + i, "/etc/app.conf", "O_RDONLY")])
    store.free = 16 * 600  # room for about 16 profiles
    written = await lrn.flush()
    assert 0 < written < 120
    assert len(lrn.unpersisted()) == 120 - written
    assert "No space left on device" in lrn.last_write_error
    assert profiles_readiness(True, lrn)[0]  # one failed round may be transient
    await lrn.flush()
    ready, details = profiles_readiness(True, lrn)
    assert not ready
    assert details["pendingProfiles"] == 120 - written
    assert "No space left on device" in details["lastWriteError"]
    # No half-written file is left behind, and what was written reads back whole.
    files = sorted((tmp_path / "profiles").rglob("*"))
    assert not [f for f in files if f.name.startswith(".") and f.name != ".lock"]
    assert len(store.list_sync()[0]) == written

    store.free = 10**9  # space freed: the next round writes everything that waited
    assert await lrn.flush() == 120 - written
    assert lrn.unpersisted() == []
    assert profiles_readiness(True, lrn) == (True, {**details, "pendingProfiles": 0,
        "failedFlushRounds": 0, "lastWriteError": ""})  # fmt: skip
    assert len(store.list_sync()[0]) == 120


def test_the_run_exit_code_and_summary_say_what_was_not_persisted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    full = FullDisk(tmp_path / "profiles", free=0)

    def store(self: Agent, kube: object) -> ProfileStore:
        return full

    monkeypatch.setattr(Agent, "_store", store)
    code = main(["run", "--replay", str(CAPTURE), "--summary", "--profiles-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3, err
    summary = err[err.index("gadgetwatch summary") :]
    assert "profiles not persisted: " in summary
    assert "profiles not persisted: 0" not in summary
    assert "INCOMPLETE: " in summary
    assert "No space left on device" in summary
    records = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    assert any(r["event"] == "run incomplete" for r in records)
