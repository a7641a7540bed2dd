"""`pods/portforward` through `kubernetes.stream.portforward` to real loopback backends."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward

from tests.standins.fixtures import KubeApi


class _Echo(socketserver.BaseRequestHandler):
    """Echo every byte back, upper-cased, so the test sees that it went through the backend."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data.upper())


@pytest.fixture
def tcp_echo() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def unix_echo(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "echo.sock"
    server = socketserver.ThreadingUnixStreamServer(str(path), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"unix://{path}"
    server.shutdown()
    server.server_close()


def _recv_exactly(sock: Any, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _gadget_pod(kube_api: KubeApi) -> None:
    kube_api.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "gadget-x1",
                "namespace": "gadget",
                "labels": {"k8s-app": "gadget"},
            },
            "spec": {"nodeName": "node-a", "containers": [{"name": "gadget", "image": "ig"}]},
        }
    )


@pytest.mark.parametrize("backend", ["tcp_echo", "unix_echo"])
def test_bytes_flow_both_ways(
    kube_api: KubeApi, backend: str, request: pytest.FixtureRequest
) -> None:
    _gadget_pod(kube_api)
    kube_api.set_portforward_backend("gadget", "gadget-x1", request.getfixturevalue(backend))
    core: Any = client.CoreV1Api(kube_api.api_client())
    pf = portforward(
        core.connect_get_namespaced_pod_portforward, "gadget-x1", "gadget", ports="8080"
    )
    sock = pf.socket(8080)
    sock.settimeout(10)
    try:
        sock.sendall(b"hello")
        assert _recv_exactly(sock, 5) == b"HELLO"
        # Larger than one WebSocket frame on either side.
        payload = bytes(range(97, 123)) * 80_000
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert _recv_exactly(sock, len(payload)) == payload.upper()
        sender.join()
        assert pf.error(8080) is None
    finally:
        sock.close()
        pf.close()


def test_unreachable_backend_reports_on_the_error_channel(kube_api: KubeApi) -> None:
    _gadget_pod(kube_api)
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    kube_api.set_portforward_backend("gadget", "gadget-x1", dead)
    core: Any = client.CoreV1Api(kube_api.api_client())
    pf = portforward(
        core.connect_get_namespaced_pod_portforward, "gadget-x1", "gadget", ports="8080"
    )
    sock = pf.socket(8080)
    sock.settimeout(10)
    try:
        assert sock.recv(10) == b""  # the client closes the port's socket on an error frame
        assert "error forwarding port 8080" in (pf.error(8080) or "")
    finally:
        sock.close()
        pf.close()


def test_missing_pod_is_404(kube_api: KubeApi) -> None:
    core: Any = client.CoreV1Api(kube_api.api_client())
    with pytest.raises(client.ApiException) as err:
        portforward(core.connect_get_namespaced_pod_portforward, "nope", "default", ports="8080")
    assert "404" in str(err.value)
