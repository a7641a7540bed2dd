"""The agent's container image, built by scripts/build-image.sh and run with podman.

The build is part of the test (cached: the Debian base root filesystems are made once per
machine, podman's layer cache does the rest), so CI proves the Containerfile builds offline from
the lock file and the image runs: ``--version``, the bundled demo replay (its alerts must equal
those of the same replay on the host: same code, same capture, event-time clock), and ``probe``
against a replay server in a second container of the same image over a shared unix socket, the
way the chart's pod shares IG's socket. Containers run with ``--network none``, a read-only root
file system and the image's own non-root user.

Runtime flags this kind of host needs (deploy/image/README.md): ``--runtime runc`` because crun
refuses its hybrid cgroup v1/v2 layout, and explicit ``--ulimit`` values because root here lacks
CAP_SYS_RESOURCE and cannot raise limits to podman's defaults.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import GADGETWATCH, REPO

#: The first build on a machine makes the Debian bases (minutes); later builds hit the caches.
pytestmark = pytest.mark.timeout(1500)

TAG = "localhost/gadgetwatch:test"
CAPTURE_IN_IMAGE = "/opt/gadgetwatch/share/examples/webshop-intrusion.capture.jsonl"
RUN = [
    "podman",
    "--runtime",
    "runc",
    "run",
    "--rm",
    "--network",
    "none",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,size=64m",
    "--ulimit",
    "nofile=4096:4096",
    "--ulimit",
    "nproc=4096:4096",
]
#: Deadline for one container command (the demo replay takes ~10 s on an idle machine).
COMMAND_TIMEOUT_S = 240
#: The image must stay small; the goal is 150 MB (see Containerfile for what is cut). Measured
#: 130.4 MB (issue 13: the Kubernetes client pruned to the APIs in use, shared objects stripped,
#: unused standard-library modules and their libraries dropped), then 135.2 MB with the CEL
#: engine's extension module (issue 15; its CLI packages, ~25 MB, are removed), 137.3 MB with
#: sqlite3 kept for the console (issue 16); 140 MB leaves
#: room for a dependency's patch release, not for an unpruned client (+30 MB).
MAX_IMAGE_BYTES = 140_000_000


@pytest.fixture(scope="module")
def image() -> str:
    assert shutil.which("podman"), "podman is required (scripts/setup.sh --dev installs it)"
    out = subprocess.run(
        [str(REPO / "scripts" / "build-image.sh"), TAG],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert re.search(rf"^image: {re.escape(TAG)} size=\d+", out.stdout, re.M), out.stdout
    return TAG


def podman(*args: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=False, timeout=timeout
    )


def inspect(image: str) -> dict[str, Any]:
    out = podman("image", "inspect", image)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)[0]
    return result


def test_image_config_is_non_root_with_cli_entrypoint_and_labels(image: str) -> None:
    info = inspect(image)
    config = info["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["gadgetwatch"]
    assert config["Cmd"] == ["run", "--config", "/etc/gadgetwatch/config.yaml"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "0.1.0.dev0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True)
    assert labels["org.opencontainers.image.revision"] == git.stdout.decode().strip()
    assert info["Size"] < MAX_IMAGE_BYTES, f"image is {info['Size']} bytes"


@pytest.fixture(scope="module")
def file_tree(image: str, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    container = podman("create", image).stdout.strip()
    try:
        tar_path = tmp_path_factory.mktemp("image") / "rootfs.tar"
        with tar_path.open("wb") as sink:
            subprocess.run(["podman", "export", container], stdout=sink, check=True)
        with tarfile.open(tar_path) as tar:
            return {name.removeprefix("./") for name in tar.getnames()}
    finally:
        podman("rm", "-f", container)


def test_image_holds_runtime_dependencies_only(file_tree: set[str]) -> None:
    site = "opt/gadgetwatch/lib/python3.11/site-packages"
    for wanted in ("gadgetwatch/cli.py", "grpc/__init__.py", "kubernetes/__init__.pyc"):
        assert f"{site}/{wanted}" in file_tree
    # No build or test tools, no shell, no package manager front end, no source tree.
    for unwanted in (
        "pip/",
        "setuptools/",
        "pytest/",
        "mypy/",
        "grpc_tools/",
        "kubernetes/aio/",
        # common-expression-language's command line (detector/cel_engine.py).
        "typer/",
        "rich/",
        "prompt_toolkit/",
        "pygments/",
    ):
        assert not any(name.startswith(f"{site}/{unwanted}") for name in file_tree), unwanted
    for unwanted in ("usr/bin/bash", "usr/bin/perl", "usr/bin/apt-get", "src/pyproject.toml"):
        assert unwanted not in file_tree
    # The Kubernetes client keeps only the APIs gadgetwatch calls (scripts/prune_kubernetes.py).
    api = f"{site}/kubernetes/client/api"
    assert f"{api}/core_v1_api.pyc" in file_tree
    assert f"{api}/storage_v1_api.pyc" not in file_tree
    # Standard-library modules nothing imports, and the libraries only they load.
    for unwanted in (
        "usr/lib/python3.11/test/__init__.py",
        "usr/lib/python3.11/pydoc_data/topics.py",
        "usr/lib/x86_64-linux-gnu/libdb-5.3.so",
    ):
        assert unwanted not in file_tree, unwanted
    assert CAPTURE_IN_IMAGE.lstrip("/") in file_tree


def test_sbom_lists_the_image_contents(image: str) -> None:
    sbom = json.loads((REPO / "build" / "image" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    purls = {c["purl"].split("@")[0] for c in sbom["components"]}
    assert {"pkg:pypi/gadgetwatch", "pkg:pypi/grpcio", "pkg:pypi/kubernetes"} <= purls
    assert {"pkg:deb/debian/python3.11-minimal", "pkg:deb/debian/libc6"} <= purls
    # Purged from the base, so not in the SBOM either: it lists what the image holds.
    assert "pkg:deb/debian/bash" not in purls
    assert "pkg:pypi/pip" not in purls


def test_every_runtime_dependency_imports(image: str) -> None:
    # Compiled extensions need their shared libraries in the base (grpcio: libstdc++).
    modules = [
        "grpc",
        "google.protobuf",
        "kubernetes.client",
        "aiohttp",
        "pydantic",
        "orjson",
        "yaml",
        "structlog",
        "prometheus_client",
        "asyncio_throttle",
        "gadgetwatch.cli",
        "detector.custom_rules",
        "ssl",
        "zlib",
        "lzma",
        "bz2",
        "ctypes",
        "sqlite3",  # the console's alert store (gadgetwatch console runs from this image)
        "gadgetwatch.console.app",
        "pydoc",  # kubernetes.watch reads docstrings with it
    ]
    # The CEL engine's extension module loads without the package's CLI (removed in the
    # image) and evaluates (detector/cel_engine.py).
    cel_check = (
        "from detector import cel_engine; assert cel_engine.compile('1 + 1 == 2').execute({})"
    )
    code = (
        f"import importlib; [importlib.import_module(m) for m in {modules!r}]; "
        f"{cel_check}; print('ok')"
    )
    out = subprocess.run(
        [*RUN, "--entrypoint", "python3", image, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip() == "ok"


def test_version(image: str) -> None:
    out = subprocess.run([*RUN, image, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gadgetwatch 0.1.0.dev0"


def _alert_keys(stdout: str) -> Counter[tuple[str, str, str]]:
    """(rule, severity, fingerprint) of every alert line: what was raised, for which workload."""
    keys: Counter[tuple[str, str, str]] = Counter()
    for line in stdout.splitlines():
        alert = json.loads(line)
        keys[(alert["rule"]["id"], alert["rule"]["severity"], alert["fingerprint"])] += 1
    return keys


def test_demo_replay_in_the_container_matches_the_host(image: str, tmp_path: Path) -> None:
    args = ["--profiles-dir", "/tmp/profiles", "--learning-period", "10m", "--summary"]
    inside = subprocess.run(
        [*RUN, image, "run", "--replay", CAPTURE_IN_IMAGE, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert inside.returncode == 0, inside.stderr[-4000:]
    host_args = [a if a != "/tmp/profiles" else str(tmp_path / "profiles") for a in args]
    capture = str(REPO / "examples" / "webshop-intrusion.capture.jsonl")
    host = subprocess.run(
        [GADGETWATCH, "run", "--replay", capture, *host_args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert host.returncode == 0, host.stderr[-4000:]
    alerts = _alert_keys(inside.stdout)
    assert alerts, inside.stderr[-4000:]
    assert alerts == _alert_keys(host.stdout)
    # The demo's intrusion: a shell and a mining-pool lookup at least, whatever else.
    assert len({rule for rule, _, _ in alerts}) >= 3, alerts


@pytest.fixture
def shared_socket_dir(tmp_path: Path) -> Path:
    # Both containers run as the image's user (65532): it must own the shared directory.
    directory = tmp_path / "ig"
    directory.mkdir()
    os.chown(directory, 65532, 65532)
    return directory


def test_probe_against_a_replay_server_on_a_shared_unix_socket(
    image: str, shared_socket_dir: Path
) -> None:
    name = f"gadgetwatch-test-ig-{os.getpid()}"
    volume = ["-v", f"{shared_socket_dir}:/run/ig"]
    server = subprocess.run(
        [
            *RUN,
            "-d",
            "--name",
            name,
            *volume,
            image,
            "replay-server",
            CAPTURE_IN_IMAGE,
            "--listen",
            "unix:///run/ig/ig.socket",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 0, server.stderr
    try:
        socket = shared_socket_dir / "ig.socket"
        deadline = time.monotonic() + 60
        while not socket.is_socket():
            assert time.monotonic() < deadline, podman("logs", name).stderr[-4000:]
            assert podman("container", "exists", name).returncode == 0, "replay server exited"
            time.sleep(0.05)  # polling for the socket file, not a synchronisation delay
        probe = subprocess.run(
            [*RUN, *volume, image, "probe", "--target", "unix:///run/ig/ig.socket", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    finally:
        podman("rm", "-f", "-t", "0", name)
    assert probe.returncode == 0, probe.stdout + probe.stderr[-4000:]
    rows = json.loads(probe.stdout)
    results = {(row["area"], row["check"].split(" @ ")[0]): row["result"] for row in rows}
    assert results[("ig", "unix:///run/ig/ig.socket")] == "ok"
    for gadget in ("trace_exec", "trace_open", "trace_tcp", "trace_dns", "trace_capabilities"):
        assert results[("gadget", gadget)] == "ok"
