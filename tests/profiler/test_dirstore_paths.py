"""The directory store never writes outside its root, whatever names an event carries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.dirstore import HOST_DIR, DirectoryStore, namespace_dir
from profiler.errors import StoreError
from profiler.identity import WorkloadKey
from profiler.profiles import Profile
from tests.hostile.corpus import HOSTILE_NAMES

#: Identity text as an attacker can shape it: any code point, path separators and dots weighted.
_NAMES = st.one_of(
    st.text(min_size=0, max_size=80),
    st.text(alphabet="./\\\x00\n~ab", min_size=0, max_size=20),
    st.sampled_from(HOSTILE_NAMES),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(namespace=_NAMES, kind=_NAMES, owner=_NAMES, container=_NAMES)
def test_any_identity_maps_to_a_path_under_the_root(
    namespace: str, kind: str, owner: str, container: str
) -> None:
    root = Path("/srv/profiles")
    path = DirectoryStore(root).path_for(WorkloadKey(namespace, kind, owner, container))
    assert path.resolve().is_relative_to(root)
    assert path.parent.parent == root  # exactly <root>/<dir>/<file>
    for part in path.relative_to(root).parts:
        assert part not in (".", "..")
        assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in part), part


#: Lone surrogates cannot come from the wire (the decoder replaces invalid UTF-8), so the
#: write test leaves them to the path property above.
_WRITABLE = [n for n in HOSTILE_NAMES if not any(0xD800 <= ord(c) < 0xE000 for c in n)]


@pytest.mark.parametrize("namespace", _WRITABLE)
def test_hostile_namespaces_are_written_inside_the_root_and_read_back(
    tmp_path: Path, namespace: str
) -> None:
    root = tmp_path / "profiles"
    store = DirectoryStore(root)
    key = WorkloadKey(namespace, "Deployment", "web", "nginx")
    store.create_sync(Profile(key=key))
    written = [Path(d) / f for d, _, files in os.walk(tmp_path) for f in files]
    assert all(p.is_relative_to(root) for p in written), written
    assert store._get(key) is not None
    profiles, errors = store.list_sync(namespace)
    assert [p.key for p in profiles] == [key]
    assert errors == []


def test_valid_namespaces_keep_their_name_and_others_cannot_collide() -> None:
    assert namespace_dir("shop") == "shop"
    assert namespace_dir("") == HOST_DIR
    assert namespace_dir("_host") != HOST_DIR
    assert namespace_dir("..").startswith("_ns-")
    assert namespace_dir("Shop") != namespace_dir("shop")
    assert namespace_dir("a/b") != namespace_dir("a-b")


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root.mkdir()
    (root / "shop").symlink_to(outside)
    store = DirectoryStore(root)
    with pytest.raises(StoreError, match="outside the profiles directory"):
        store.create_sync(Profile(key=WorkloadKey("shop", "Deployment", "web", "nginx")))
    assert list(outside.iterdir()) == []
