"""`k8s://` targets: IG's `gadget` DaemonSet through the API server's pod port-forward.

The only module of this package that imports `kubernetes`. Flow, as `kubectl gadget` does it:

1. IG's namespace: the one given in the target (`k8s://gadget`), else the namespace of the one
   DaemonSet named `gadget` labelled `k8s-app=gadget` (none: "gadget" with a warning; several:
   an error asking for the namespace);
2. its pods (`k8s-app=gadget`), filtered by `?node=a,b` (a node without a gadget pod is an error);
3. per pod a local TCP listener on the agent's event loop (the bridge): every connection gRPC
   opens to it becomes one `pods/portforward` WebSocket (subprotocol `v4.channel.k8s.io`) to the
   pod's port 8080, opened with aiohttp from the official client's configuration (server,
   bearer token, client certificate, CA), and bytes are pumped both ways by two coroutines.
   gRPC then speaks plain HTTP/2 through it.

Each bridge becomes an `Endpoint` tagged with the pod's node, so every event is attributed to its
node. The official client is synchronous: its API calls run in `asyncio.to_thread`. The bridge
used to be the official client's `portforward` (a pure-Python WebSocket, masking every frame in
Python) behind two pump threads per connection; at 16k events/s it delivered 6.7k events/s and
lost the rest (docs/gadgetclient.md). aiohttp frames and masks in C and the pumps share the
agent's loop, so no thread contends for the GIL per chunk.

The port-forward protocol: the server's first frame on the data channel (0) and on the error
channel (1) carries the port number (2 bytes, little-endian); after that every binary frame is
`channel byte + payload`, and text on the error channel means the pod's port is unreachable
(logged; the local connection is closed, which gRPC reports as UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from gadgetclient.config import GadgetClientSettings
from gadgetclient.errors import TargetError
from gadgetclient.targets import GADGET_SERVICE_PORT, Endpoint, TargetSpec

log = structlog.get_logger(__name__)

GADGET_LABEL = "k8s-app=gadget"
DEFAULT_NAMESPACE = "gadget"
#: Bytes per pump read: one HTTP/2 frame of gRPC's default size fits.
_CHUNK = 64 * 1024
#: Seconds a closing bridge waits for its listener: connections were cancelled already.
_CLOSE_WAIT_S = 2.0
#: The port-forward subprotocol the kubelet and the API server speak (kubectl's too).
SUBPROTOCOLS = ("v4.channel.k8s.io",)
#: Channel byte of the first port's data, prefixed to every frame we send.
_DATA = b"\x00"


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


def _ssl_context(configuration: Any) -> ssl.SSLContext | None:
    """The TLS settings of the official client's configuration, for aiohttp."""
    if not str(configuration.host).startswith("https"):
        return None
    ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if not configuration.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        ctx.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return ctx


def _auth_headers(configuration: Any) -> dict[str, str]:
    """The bearer token (refreshed first, as the official client does before each call)."""
    refresh = getattr(configuration, "refresh_api_key_hook", None)
    if refresh is not None:
        refresh(configuration)
    token = configuration.get_api_key_with_prefix("authorization")
    return {"Authorization": token} if token else {}


class Bridge:
    """A local TCP listener whose connections are port-forwarded to one IG pod's port 8080.

    `start()` opens the listener (its `address` is then set), `close()` ends every forwarded
    connection and the listener."""

    def __init__(self, api: Any, pod: GadgetPod, host: str) -> None:
        self.api = api
        self.pod = pod
        self.host = host
        self.address = ""
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        configuration = api.configuration
        self._url = (
            f"{str(configuration.host).rstrip('/')}/api/v1/namespaces/{pod.namespace}/pods/"
            f"{pod.name}/portforward?ports={GADGET_SERVICE_PORT}"
        )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{self.host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The forwarding runs in a task of its own that `close()` cancels: asyncio's server
        # reports a cancelled connection handler as an error, a finished one it does not.
        task = asyncio.create_task(self._forward(reader, writer), name="ig-bridge")
        self._tasks.add(task)
        try:
            await asyncio.gather(task, return_exceptions=True)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._session is not None
        configuration = self.api.configuration
        try:
            ws = await self._session.ws_connect(
                self._url,
                protocols=SUBPROTOCOLS,
                headers=await asyncio.to_thread(_auth_headers, configuration),
                ssl=_ssl_context(configuration) or True,
                max_msg_size=0,
                autoping=True,
            )
        except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
            log.error("port-forward failed", pod=self.pod.name, node=self.pod.node, error=str(exc))
            return
        up = asyncio.create_task(self._up(reader, ws), name=f"ig-bridge-up-{self.pod.node}")
        try:
            await self._down(ws, writer)
        finally:
            up.cancel()
            await asyncio.gather(up, return_exceptions=True)
            await ws.close()

    @staticmethod
    async def _up(reader: asyncio.StreamReader, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Local connection → pod: each read becomes one frame on data channel 0."""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(_CHUNK):
                await ws.send_bytes(_DATA + data)
            await ws.close()

    async def _down(
        self, ws: aiohttp.ClientWebSocketResponse, writer: asyncio.StreamWriter
    ) -> None:
        """Pod → local connection; the first frame of each channel is its port number."""
        seen_port = [False, False]
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel > 1:
                continue
            if not seen_port[channel]:
                seen_port[channel] = True
                payload = payload[2:]
                if not payload:
                    continue
            if channel == 1:
                log.error(
                    "port-forward failed",
                    pod=self.pod.name,
                    node=self.pod.node,
                    error=payload.decode("utf-8", "replace")[:500],
                )
                return
            writer.write(payload)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _CLOSE_WAIT_S)
        if self._session is not None:
            await self._session.close()


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
        for b in bridges:
            await b.start()
        yield [Endpoint(address=b.address, node=b.pod.node) for b in bridges]
    finally:
        for b in bridges:
            await b.close()
