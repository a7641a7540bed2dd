"""Sessions against real gRPC servers: versions, image pinning, params, refusals, endpoints."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gadgetclient.capture import Capture
from gadgetclient.errors import SessionError, TargetError
from gadgetclient.sessions import pin_image
from gadgetclient.source import GadgetSource
from gadgetclient.targets import parse_target
from tests.gadgetclient.conftest import sample_lines, settings_for

#: Every test here runs on both RunGadget transports (native and grpcio).
pytestmark = pytest.mark.usefixtures("both_transports")


def _capture(gadget: str = "trace_exec") -> Capture:
    return Capture(tuple(line for line in sample_lines() if line.gadget == gadget))


@pytest.mark.parametrize("version", ["0.28.0", "0.20.1", ""])
async def test_servers_older_than_0_29_are_refused_naming_the_version(
    replay_factory: Any, sock_path: Path, version: str
) -> None:
    _, address = await replay_factory(
        _capture(), listen=f"unix://{sock_path}", server_version=version
    )
    with pytest.raises(SessionError) as err:
        await GadgetSource(settings_for(address, ("trace_exec",))).run()
    assert "too old" in str(err.value) or "not supported" in str(err.value)
    assert (version or "older than v0.28") in str(err.value)


async def test_version_skew_warns_and_images_are_pinned(
    replay_factory: Any, sock_path: Path
) -> None:
    server, address = await replay_factory(
        _capture(), listen=f"unix://{sock_path}", server_version="0.31.0"
    )
    with capture_logs() as logs:
        await GadgetSource(settings_for(address, ("trace_exec",))).run(on_batch=lambda b: None)
    assert any(e["event"] == "ig version skew" and e["server_version"] == "0.31.0" for e in logs)
    assert server.runs == 1
    assert pin_image("trace_exec", "0.31.0") == "trace_exec:v0.31.0"
    assert pin_image("trace_exec:v0.30.0", "0.31.0") == "trace_exec:v0.30.0"
    assert pin_image("ghcr.io/x/trace_exec@sha256:ab", "0.31.0") == "ghcr.io/x/trace_exec@sha256:ab"


async def test_unknown_param_is_an_error_listing_valid_keys(
    replay_factory: Any, sock_path: Path
) -> None:
    _, address = await replay_factory(_capture(), listen=f"unix://{sock_path}")
    settings = settings_for(address, ("trace_exec",), params={"operator.oci.ebpf.pathz": "true"})
    with pytest.raises(SessionError) as err:
        await GadgetSource(settings).run()
    message = str(err.value)
    assert "unknown parameter 'operator.oci.ebpf.pathz'" in message
    assert "operator.oci.ebpf.paths" in message
    assert "operator.KubeManager.namespace" in message


async def test_known_params_are_accepted(replay_factory: Any, sock_path: Path) -> None:
    _, address = await replay_factory(_capture(), listen=f"unix://{sock_path}")
    # The second sample is a failed exec (ENOEXEC): IG sends it only with ignore-failed=false.
    params = {"operator.oci.ebpf.paths": "true", "operator.oci.ebpf.ignore-failed": "false"}
    settings = settings_for(address, ("trace_exec",), params=params)
    events: list[Any] = []
    await GadgetSource(settings).run(on_batch=events.extend)
    assert [e.error for e in events] == ["", "ENOEXEC"]


async def test_ig_rejecting_a_gadget_is_one_clear_line(
    replay_factory: Any, sock_path: Path
) -> None:
    _, address = await replay_factory(_capture(), listen=f"unix://{sock_path}")
    with pytest.raises(SessionError) as err:
        await GadgetSource(settings_for(address, ("trace_nope",))).run()
    text = str(err.value)
    assert "IG rejected gadget trace_nope:v0.55.1" in text
    assert "\n" not in text


async def test_unreachable_unix_endpoint(sock_path: Path) -> None:
    settings = settings_for(
        f"unix://{sock_path}", ("trace_exec",), connect_timeout=timedelta(seconds=0.3)
    )
    with pytest.raises(TargetError) as err:
        await GadgetSource(settings).run()
    assert "cannot reach IG" in str(err.value)


async def test_wrong_endpoint_that_is_not_grpc() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def serve_garbage() -> None:
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        while True:
            conn, _ = await loop.sock_accept(listener)
            await loop.sock_sendall(conn, b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    task = asyncio.create_task(serve_garbage())
    try:
        settings = settings_for(
            f"tcp://127.0.0.1:{port}", ("trace_exec",), connect_timeout=timedelta(seconds=0.5)
        )
        with pytest.raises(TargetError) as err:
            await GadgetSource(settings).run()
        assert "cannot reach IG" in str(err.value)
    finally:
        task.cancel()
        listener.close()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("localhost:1234", "expected unix:///path"),
        ("unix://relative", "absolute path"),
        ("tcp://host", "needs host and port"),
        ("tcp://host:99999", "invalid port"),
        ("http://x:1", "unknown target scheme"),
        ("k8s://gadget?nodes=a", "unknown k8s target option"),
    ],
)
def test_bad_target_strings(target: str, message: str) -> None:
    with pytest.raises(TargetError) as err:
        parse_target(target)
    assert message in str(err.value)


def test_k8s_target_parsing() -> None:
    spec = parse_target("k8s://ig?node=a,b")
    assert (spec.scheme, spec.namespace, spec.nodes) == ("k8s", "ig", ("a", "b"))
    assert parse_target("k8s://").namespace == ""
