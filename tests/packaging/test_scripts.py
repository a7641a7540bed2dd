"""The packaging helpers: lock-file coverage, dependency floors, the image base's closure."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_lock = load("check_lock")
floors = load("floors")
base_prune = load("base_prune")

LOCK = """\
grpcio==1.85.3 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via gadgetwatch
pyyaml==6.0.4 \\
    --hash=sha256:cccc
"""


def test_the_committed_lock_files_cover_pyproject() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_lock.py")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_lock_check_names_missing_and_unsatisfied_requirements(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    assert check_lock.problems(["grpcio>=1.85.1", "PyYAML>=6.0.3"], lock) == []
    assert check_lock.problems(["grpcio>=1.86", "hpack>=4"], lock) == [
        "requirements.lock: grpcio==1.85.3 does not satisfy 'grpcio>=1.86'",
        "requirements.lock: hpack is not locked",
    ]


def test_lock_check_refuses_a_pin_without_hash(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("grpcio==1.85.3\n")
    with pytest.raises(SystemExit, match="no hash"):
        check_lock.pins(lock)


def test_floors_are_the_lower_bounds_and_every_dependency_has_one(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["grpcio>=1.85.1", "pyyaml[x] >= 6.0.3,<7"]\n')
    assert floors.floors(pyproject) == ["grpcio==1.85.1", "pyyaml==6.0.3"]
    pyproject.write_text('[project]\ndependencies = ["grpcio"]\n')
    with pytest.raises(SystemExit, match="no '>=' floor"):
        floors.floors(pyproject)
    # And the project's own: one pin per runtime dependency.
    assert len(floors.floors(REPO / "pyproject.toml")) >= 10


STATUS = """\
Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1
Depends: python3.11 (>= 3.11.2-1~), libpython3-stdlib (= 3.11.2-1)
Pre-Depends: python3-minimal (= 3.11.2-1)

Package: python3.11
Status: install ok installed
Version: 3.11.2-6
Depends: mime-support | media-types

Package: media-types
Status: install ok installed
Version: 10.0.0

Package: libpython3.11-stdlib
Status: install ok installed
Version: 3.11.2-6
Provides: libpython3-stdlib

Package: python3-minimal
Status: install ok installed
Version: 3.11.2-1

Package: bash
Status: install ok installed
Version: 5.2.15-2
Essential: yes

Package: old
Status: deinstall ok config-files
Version: 1
"""


def test_base_closure_keeps_python_and_its_dependencies_only() -> None:
    packages = base_prune.parse(STATUS)
    assert "old" not in packages  # only installed packages count
    keep = base_prune.closure(packages, ("python3",))
    assert keep == {
        "python3",
        "python3.11",
        "media-types",  # the installed alternative of "mime-support | media-types"
        "libpython3.11-stdlib",  # through Provides: libpython3-stdlib
        "python3-minimal",  # Pre-Depends count
    }
    assert set(packages) - keep == {"bash"}


def test_base_closure_skips_the_optional_libraries() -> None:
    packages = base_prune.parse(STATUS)
    keep = base_prune.closure(packages, ("python3",), skip=("libpython3.11-stdlib",))
    assert "libpython3.11-stdlib" not in keep
    assert "python3.11" in keep
    assert set(base_prune.OPTIONAL).isdisjoint(base_prune.KEEP_ROOTS)


prune_kubernetes = load("prune_kubernetes")


def test_image_keeps_every_kubernetes_api_the_code_uses() -> None:
    """scripts/prune_kubernetes.py deletes the client's API modules not in KEEP_APIS; a new
    `XxxApi(...)` in the code must be listed there, or the image would fail at run time."""
    used: set[str] = set()
    for package in ("gadgetclient", "profiler", "detector", "exporters", "gadgetwatch"):
        for path in (REPO / package).rglob("*.py"):
            used.update(re.findall(r"\.([A-Z][A-Za-z0-9]*Api)\(", path.read_text()))
    assert used
    assert used <= set(prune_kubernetes.KEEP_APIS)


def test_kubernetes_prune_keeps_what_the_apis_reach(tmp_path: Path) -> None:
    import kubernetes

    site = tmp_path / "site"
    shutil.copytree(
        Path(kubernetes.__file__).parent,
        site / "kubernetes",
        ignore=shutil.ignore_patterns("__pycache__", "aio", "test", "*_test.py"),
    )
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "prune_kubernetes.py"), str(site)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    api = {p.stem for p in (site / "kubernetes/client/api").glob("*.py")}
    assert api == {
        "__init__",
        "apiextensions_v1_api",
        "apps_v1_api",
        "authorization_v1_api",
        "batch_v1_api",
        "core_v1_api",
        "custom_objects_api",
    }
    models = {p.stem for p in (site / "kubernetes/client/models").glob("*.py")}
    # What the agent deserializes (pods, owners, access reviews) stays; other groups' go.
    assert {"v1_pod", "v1_replica_set", "v1_job", "v1_self_subject_access_review"} <= models
    assert "v1_storage_class" not in models
    code = "from kubernetes import client; client.CoreV1Api; print(client.models.V1PodList)"
    check = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site)},
    )
    assert check.returncode == 0, check.stderr
