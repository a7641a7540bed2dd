"""Shared helpers: the IG samples as a capture, replay servers on loopback, settings."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gadgetclient.capture import Capture, CaptureLine, read_capture
from gadgetclient.config import GadgetClientSettings
from gadgetclient.replay import ReplayServer
from tests.standins.fixtures import kube_api  # noqa: F401  (re-exported fixture)

#: Real IG output (tests/data/ig-samples/README.md says where each file comes from).
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "ig-samples"
#: Samples in the current layouts that IG can produce (LEGACY files use the old flat layouts).
DOC_SAMPLES = {
    "trace_tcp.ig.run-mdx.jsonl": "trace_tcp",
    "trace_tcp.kubectl.run-mdx.jsonl": "trace_tcp",
    "trace_tcp.ig.run-mdx.pretty.json": "trace_tcp",
    "trace_tcp.kubectl.run-mdx.pretty.json": "trace_tcp",
    "trace_open.golang-local-noformatters.1.pretty.json": "trace_open",
    "trace_open.golang-local-noformatters.2.pretty.json": "trace_open",
    "trace_open.golang-operators-localmanager.pretty.json": "trace_open",
    "trace_open.ig-run.switching-doc.pretty.json": "trace_open",
    "trace_open.golang-grpc-kubernetes.default-visibility.jsonl": "trace_open",
    "trace_open.golang-grpc-legacy-flat.jsonl": "trace_open",
}


def sample_lines() -> list[CaptureLine]:
    lines: list[CaptureLine] = []
    for path in sorted((SAMPLES / "expected").glob("*.jsonl")):
        lines += read_capture(path, gadget=path.name.split(".")[0]).lines
    for name, gadget in DOC_SAMPLES.items():
        lines += read_capture(SAMPLES / "docs" / name, gadget=gadget).lines
    for name in ("advise_seccomp.advise-text.ig.txt", "advise_seccomp.advise-text.kubectl.txt"):
        text = (SAMPLES / "docs" / name).read_text()
        lines.append(CaptureLine("advise_seccomp", "advise", "", {"text": text}))
    return lines


#: The RunGadget transport `settings_for` uses; `both_transports` runs a test once per value.
_TRANSPORT = ["native"]


@pytest.fixture(params=["native", "grpcio"])
def both_transports(request: pytest.FixtureRequest) -> Iterator[str]:
    """Session tests run on the native transport and on the grpcio fallback alike."""
    _TRANSPORT[0] = request.param
    yield request.param
    _TRANSPORT[0] = "native"


def settings_for(address: str, gadgets: tuple[str, ...], **kw: Any) -> GadgetClientSettings:
    kw.setdefault("transport", _TRANSPORT[0])
    kw.setdefault("connect_timeout", timedelta(seconds=5))
    kw.setdefault("reconnect_initial", timedelta(milliseconds=20))
    kw.setdefault("reconnect_max", timedelta(milliseconds=200))
    kw.setdefault("stop_timeout", timedelta(seconds=5))
    return GadgetClientSettings(target=address, gadgets=gadgets, **kw)


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # Unix socket paths are limited to ~108 bytes; pytest's tmp paths can be longer.
    d = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    yield d / "ig.sock"
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.fixture
async def replay_factory() -> AsyncIterator[Callable[..., Any]]:
    servers: list[ReplayServer] = []

    async def start(capture: Capture, **kw: Any) -> tuple[ReplayServer, str]:
        server = ReplayServer(capture, **kw)
        address = await server.start()
        servers.append(server)
        return server, address

    yield start
    for server in servers:
        await server.stop(None)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    days = "2"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", days, "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=DNS:ig.example.internal\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", days, "-extfile",
                 f"{name}.ext", cwd=d)  # fmt: skip
    return d
