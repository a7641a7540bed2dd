"""`k8s://` targets: IG's `gadget` DaemonSet through the API server's pod port-forward.

The only module of this package that imports `kubernetes`. Flow, as `kubectl gadget` does it:

1. IG's namespace: the one given in the target (`k8s://gadget`), else the namespace of the one
   DaemonSet named `gadget` labelled `k8s-app=gadget` (none: "gadget" with a warning; several:
   an error asking for the namespace);
2. its pods (`k8s-app=gadget`), filtered by `?node=a,b` (a node without a gadget pod is an error);
3. per pod a local TCP listener (the bridge): every connection gRPC opens to it becomes one
   `pods/portforward` WebSocket to the pod's port 8080 (`kubernetes.stream.portforward`), with
   bytes pumped both ways by two threads. gRPC then speaks plain HTTP/2 through it.

Each bridge becomes an `Endpoint` tagged with the pod's node, so every event is attributed to its
node. The official client is synchronous: API calls run in `asyncio.to_thread`, and the bridges
use plain threads (one accept thread per node, two pump threads per connection), which is a few
threads per node for the life of the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from gadgetclient.config import GadgetClientSettings
from gadgetclient.errors import TargetError
from gadgetclient.targets import GADGET_SERVICE_PORT, Endpoint, TargetSpec

log = structlog.get_logger(__name__)

GADGET_LABEL = "k8s-app=gadget"
DEFAULT_NAMESPACE = "gadget"
#: Bytes per pump read: one HTTP/2 frame of gRPC's default size fits.
_CHUNK = 64 * 1024
#: Seconds between checks of the closing flag in the accept thread.
_ACCEPT_POLL = 0.2


def load_api_client() -> Any:
    """In-cluster credentials first, then the kubeconfig (`KUBECONFIG` or ~/.kube/config)."""
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        try:
            k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
        except (k8s_config.ConfigException, OSError) as exc:
            raise TargetError(f"no Kubernetes credentials: {exc}", where="k8s://") from exc
    return k8s_client.ApiClient()


def discover_namespace(api: Any) -> str:
    apps = k8s_client.AppsV1Api(api)
    try:
        found = apps.list_daemon_set_for_all_namespaces(
            field_selector="metadata.name=gadget", label_selector=GADGET_LABEL
        )
    except ApiException as exc:
        raise TargetError(
            f"cannot list DaemonSets to find IG ({exc.status} {exc.reason}); "
            "give the namespace as k8s://NAMESPACE",
            where="k8s://",
        ) from exc
    items: list[Any] = list(found.items)
    namespaces = sorted({str(ds.metadata.namespace) for ds in items})
    if not namespaces:
        log.warning("ig daemonset not found", assumed_namespace=DEFAULT_NAMESPACE)
        return DEFAULT_NAMESPACE
    if len(namespaces) > 1:
        raise TargetError(
            f"IG is deployed in several namespaces ({', '.join(namespaces)}); "
            "choose one with k8s://NAMESPACE",
            where="k8s://",
        )
    return str(namespaces[0])


@dataclass(frozen=True, slots=True)
class GadgetPod:
    name: str
    namespace: str
    node: str


def gadget_pods(api: Any, namespace: str, nodes: tuple[str, ...]) -> list[GadgetPod]:
    core = k8s_client.CoreV1Api(api)
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=GADGET_LABEL)
    except ApiException as exc:
        raise TargetError(
            f"cannot list IG pods ({exc.status} {exc.reason})", where=f"k8s://{namespace}"
        ) from exc
    items: list[Any] = list(pods.items)
    found = [
        GadgetPod(str(p.metadata.name), namespace, str(p.spec.node_name or ""))
        for p in items
        if (p.status is None or p.status.phase in (None, "Running"))
    ]
    if nodes:
        by_node = {p.node: p for p in found}
        missing = [n for n in nodes if n not in by_node]
        if missing:
            raise TargetError(
                f"no running IG pod on node(s) {', '.join(missing)}", where=f"k8s://{namespace}"
            )
        found = [by_node[n] for n in nodes]
    if not found:
        raise TargetError("no running IG pods (label k8s-app=gadget)", where=f"k8s://{namespace}")
    return sorted(found, key=lambda p: p.node)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(_CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Bridge:
    """A local TCP listener whose connections are port-forwarded to one IG pod's port 8080."""

    def __init__(self, api: Any, pod: GadgetPod, host: str) -> None:
        self.api = api
        self.pod = pod
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(_ACCEPT_POLL)
        self.address = f"{host}:{self._listener.getsockname()[1]}"
        self._closing = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"ig-bridge-{pod.node}", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setblocking(True)
            self._conns.append(conn)
            threading.Thread(target=self._forward, args=(conn,), daemon=True).start()

    def _forward(self, conn: socket.socket) -> None:
        core = k8s_client.CoreV1Api(self.api)
        try:
            pf = portforward(
                core.connect_get_namespaced_pod_portforward,
                self.pod.name,
                self.pod.namespace,
                ports=str(GADGET_SERVICE_PORT),
            )
            remote = pf.socket(GADGET_SERVICE_PORT)
            remote.setblocking(True)
        except (ApiException, OSError, ValueError, RuntimeError) as exc:
            log.error("port-forward failed", pod=self.pod.name, node=self.pod.node, error=str(exc))
            conn.close()
            return
        self._conns.append(remote)
        back = threading.Thread(target=_pump, args=(remote, conn), daemon=True)
        back.start()
        _pump(conn, remote)
        back.join()
        for s in (conn, remote):
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for s in list(self._conns):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self._thread.join(timeout=2 * _ACCEPT_POLL)


@contextlib.asynccontextmanager
async def port_forwards(
    spec: TargetSpec, settings: GadgetClientSettings, *, api_client: Any = None
) -> AsyncIterator[list[Endpoint]]:
    """Open one bridge per selected IG pod; yields their endpoints, closes them on exit."""
    api = api_client if api_client is not None else await asyncio.to_thread(load_api_client)
    namespace = spec.namespace or await asyncio.to_thread(discover_namespace, api)
    pods = await asyncio.to_thread(gadget_pods, api, namespace, spec.nodes)
    bridges = [Bridge(api, pod, settings.port_forward_host) for pod in pods]
    try:
        yield [Endpoint(address=b.address, node=b.pod.node) for b in bridges]
    finally:
        for b in bridges:
            await asyncio.to_thread(b.close)
