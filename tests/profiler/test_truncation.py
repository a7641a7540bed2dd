"""A profile file cut short is refused, named, and never overwritten (issue 10, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.dirstore import DirectoryStore
from profiler.documents import dump_yaml
from profiler.errors import InvalidProfileError, ProfilerError
from profiler.exporting import export_documents, read_documents
from profiler.identity import WorkloadKey
from profiler.profiles import Profile, ProfileMeta
from profiler.readmodel import ProfileStatus

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")


def completed() -> Profile:
    p = Profile(key=KEY, meta=ProfileMeta(status=ProfileStatus.COMPLETED))
    for i in range(30):
        p.entries.add_exec(f"/usr/bin/tool-{i}", (f"/usr/bin/tool-{i}", "--flag"))
        p.entries.add_open(f"/var/lib/app/file-{i}", ("O_RDONLY",))
    p.entries.syscalls.update({"read", "write", "openat"})
    return p


def test_every_cut_of_a_profile_file_is_refused_or_loads_whole(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    stored = store.create_sync(completed())
    path = store.path_for(KEY)
    whole = path.read_bytes()
    messages: list[str] = []
    for cut in range(1, len(whole), 7):
        path.write_bytes(whole[:cut])
        try:
            profile = store.read_file(path)
        except ProfilerError as exc:
            messages.append(str(exc))
            continue
        # Whatever loads is the complete profile (a cut in the last value's text only).
        assert profile.entries.total() == stored.entries.total(), cut
    assert len(messages) > len(whole) // 7 * 0.9
    assert all(str(path) in m for m in messages)  # every refusal names the file


def test_a_truncated_file_is_refused_with_a_clear_message_and_not_overwritten(
    tmp_path: Path,
) -> None:
    store = DirectoryStore(tmp_path)
    stored = store.create_sync(completed())
    path = store.path_for(KEY)
    text = path.read_text()
    cut = text[: text.index("/var/lib/app/file-12")].rsplit("\n", 1)[0] + "\n"
    path.write_text(cut)
    with pytest.raises(InvalidProfileError, match="truncated or altered") as err:
        store._get(KEY)
    assert str(path) in str(err.value)
    newer = stored.copy()
    newer.entries.add_exec("/bin/sh", ("/bin/sh",))
    with pytest.raises(ProfilerError):
        store.update_sync(newer)
    with pytest.raises(ProfilerError):
        store.create_sync(newer)
    assert path.read_text() == cut
    profiles, errors = store.list_sync()
    assert profiles == []
    assert [str(path) in str(e) for e in errors] == [True]


def test_a_truncated_export_is_refused_on_import(tmp_path: Path) -> None:
    text = dump_yaml(export_documents([completed(), completed()]))
    cut = text[: text.rindex("/var/lib/app/file-2")].rsplit("\n", 1)[0] + "\n"
    with pytest.raises(InvalidProfileError, match=r"items\[1\]"):
        read_documents(cut, source="export.yaml")
    assert len(read_documents(text, source="export.yaml")) == 2


def test_a_hand_written_profile_without_the_seal_still_loads(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.create_sync(completed())
    path = store.path_for(KEY)
    lines = [ln for ln in path.read_text().splitlines() if "gadgetwatch.io/entries" not in ln]
    path.write_text("\n".join(lines) + "\n")
    assert store.read_file(path).entries.total() == completed().entries.total()
