"""`k8s://` targets through the stand-in API server: discovery, node filter, port-forward."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.errors import TargetError
from gadgetclient.events import ExecEvent
from gadgetclient.replay import ReplayServer
from gadgetclient.source import GadgetSource
from tests.gadgetclient.conftest import sample_lines, settings_for
from tests.standins.fixtures import KubeApi

#: Every test here runs on both RunGadget transports (native and grpcio).
pytestmark = pytest.mark.usefixtures("both_transports")

EXEC = next(line.data for line in sample_lines() if line.gadget == "trace_exec")


def _daemonset(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "gadget", "namespace": namespace, "labels": {"k8s-app": "gadget"}},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "gadget"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "gadget"}},
                "spec": {
                    "containers": [
                        {
                            "name": "gadget",
                            "image": "ghcr.io/inspektor-gadget/inspektor-gadget:v0.55.1",
                        }
                    ]
                },
            },
        },
    }


def _pod(namespace: str, name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"k8s-app": "gadget"}},
        "spec": {"nodeName": node, "containers": [{"name": "gadget", "image": "ig"}]},
        "status": {"phase": "Running"},
    }


async def _cluster(kube_api: KubeApi, tmp: Path) -> list[ReplayServer]:
    """Two IG pods in namespace `ig`, each backed by a replay server with its node's events."""
    kube_api.add(_daemonset("ig"))
    servers = []
    for node in ("node-a", "node-b"):
        pod = f"gadget-{node}"
        kube_api.add(_pod("ig", pod, node))
        data = {**EXEC, "args": f"/usr/bin/{node}"}
        server = ReplayServer(
            Capture((CaptureLine("trace_exec", "exec", "", data),)),
            listen=f"unix://{tmp}/{node}.sock",
        )
        address = await server.start()
        kube_api.set_portforward_backend("ig", pod, address)
        servers.append(server)
    return servers


@pytest.fixture
def short_tmp() -> Any:
    d = Path(tempfile.mkdtemp(prefix="gwk-", dir="/tmp"))
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


async def test_k8s_target_discovers_namespace_and_streams_per_node(
    kube_api: KubeApi, short_tmp: Path
) -> None:
    servers = await _cluster(kube_api, short_tmp)
    try:
        source = GadgetSource(
            settings_for("k8s://", ("trace_exec",)), k8s_api_client=kube_api.api_client()
        )
        events: list[Any] = []
        raws: list[Any] = []
        await source.run(on_batch=events.extend, on_raw=raws.append)
    finally:
        for s in servers:
            await s.stop(None)
    assert sorted((r.node, r.data["args"]) for r in raws) == [
        ("node-a", "/usr/bin/node-a"),
        ("node-b", "/usr/bin/node-b"),
    ]
    assert all(isinstance(e, ExecEvent) for e in events)
    assert sorted(e.container.node for e in events) == ["node-a", "node-b"]


async def test_k8s_node_filter(kube_api: KubeApi, short_tmp: Path) -> None:
    servers = await _cluster(kube_api, short_tmp)
    try:
        raws: list[Any] = []
        source = GadgetSource(
            settings_for("k8s://ig?node=node-b", ("trace_exec",)),
            k8s_api_client=kube_api.api_client(),
        )
        await source.run(on_raw=raws.append)
        assert [r.node for r in raws] == ["node-b"]
        with pytest.raises(TargetError) as err:
            await GadgetSource(
                settings_for("k8s://ig?node=node-z", ("trace_exec",)),
                k8s_api_client=kube_api.api_client(),
            ).run()
        assert "no running IG pod on node(s) node-z" in str(err.value)
    finally:
        for s in servers:
            await s.stop(None)


async def test_k8s_several_ig_namespaces_is_an_error(kube_api: KubeApi) -> None:
    kube_api.add(_daemonset("ig"))
    kube_api.add(_daemonset("gadget"))
    with pytest.raises(TargetError) as err:
        await GadgetSource(
            settings_for("k8s://", ("trace_exec",)), k8s_api_client=kube_api.api_client()
        ).run()
    assert "several namespaces (gadget, ig)" in str(err.value)


async def test_bridge_reports_an_unreachable_pod_port_and_closes_the_connection(
    kube_api: KubeApi,
) -> None:
    """The API server answers on the error channel (nothing listens on the pod's port): the
    bridge logs the server's text and closes the local connection, which gRPC sees as a
    connection reset (UNAVAILABLE, retried by the session)."""
    import asyncio

    from structlog.testing import capture_logs

    from gadgetclient.k8s import Bridge, GadgetPod

    kube_api.add(_pod("ig", "gadget-x", "node-x"))  # no backend: port 8080 refuses
    bridge = Bridge(kube_api.api_client(), GadgetPod("gadget-x", "ig", "node-x"), "127.0.0.1")
    await bridge.start()
    try:
        with capture_logs() as logs:
            host, port = bridge.address.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing sent
            writer.close()
    finally:
        await bridge.close()
    failed = [e for e in logs if e["event"] == "port-forward failed"]
    assert failed
    assert failed[0]["node"] == "node-x"
    assert "error forwarding port 8080 to pod gadget-x" in failed[0]["error"]


def test_bridge_takes_token_and_tls_from_the_client_configuration(tmp_path: Path) -> None:
    """The WebSocket carries what the official client would send: the bearer token (after
    the refresh hook ran, as for an exec plugin) and the CA of an https server."""
    from kubernetes import client as k8s_client

    from gadgetclient.k8s import _auth_headers, _ssl_context

    config = k8s_client.Configuration(host="https://api.example.internal:6443")
    config.api_key_prefix = {"authorization": "Bearer"}

    def refresh(c: Any) -> None:
        c.api_key = {"authorization": "fresh-token"}

    config.refresh_api_key_hook = refresh  # type: ignore[assignment]
    assert _auth_headers(config) == {"Authorization": "Bearer fresh-token"}
    ctx = _ssl_context(config)
    assert ctx is not None
    assert ctx.check_hostname
    config.verify_ssl = False
    insecure = _ssl_context(config)
    assert insecure is not None
    assert not insecure.check_hostname
    assert _ssl_context(k8s_client.Configuration(host="http://127.0.0.1:8001")) is None
