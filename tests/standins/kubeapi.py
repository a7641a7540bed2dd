"""A stand-in Kubernetes API server on loopback, for the official `kubernetes` Python client.

No real API server can run here, so this one speaks the real wire protocol (JSON over HTTP/1.1,
chunked watch streams, WebSocket port-forward) and enforces the rules gadgetwatch's code depends
on: CRD structural schemas (422 with `details.causes`), optimistic concurrency on
`metadata.resourceVersion` (409), AlreadyExists / NotFound, watch from a resourceVersion with
410 Gone when it is too old, label and field selectors, the object size limit, discovery,
SelfSubjectAccessReview, `pods/portforward`. See `docs/kubernetes-standin.md` for what it stands
in for and how it differs from a cluster.

Data flow: aiohttp handler → path parsing (`/api/v1/...`, `/apis/<g>/<v>/...`) → resource type
from the `Registry` (built-ins + CRDs) → `Rest` verb (`kube_rest.py`) or list/watch
(`kube_listing.py`) → `Store` (objects, global resourceVersion, event history, watchers).

Two ways to run it:
- in-process: `KubeApiServer(crds_dir=...).start()` runs it on its own event loop in a daemon
  thread, so synchronous client calls from a test (or from `asyncio.to_thread`) work; the
  methods of the server object (`add`, `get`, `inject_conflicts`, `set_down`, ...) are
  thread-safe. `tests/standins/fixtures.py` wraps this as the `kube_api` pytest fixture.
- as a process: `python -m tests.standins.kubeapi --port N --crds deploy/crds [--seed f.yaml]`
  prints `KUBEAPI_URL=http://127.0.0.1:N` and serves until SIGTERM; fault injection is then
  reachable over HTTP under `/_standin/` (see `_control`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from aiohttp import web

from tests.standins.kube_access import AccessList
from tests.standins.kube_listing import list_objects, watch_objects
from tests.standins.kube_portforward import parse_ports, serve_portforward
from tests.standins.kube_resources import Registry, ResourceType
from tests.standins.kube_rest import MAX_REQUEST_BYTES, Options, Rest
from tests.standins.kube_status import StatusError
from tests.standins.kube_store import DEFAULT_HISTORY, Store

T = TypeVar("T")

#: Served version, reported by `/version` (the client does not negotiate on it).
VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-gadgetwatch-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
#: The kube-apiserver's default watch timeout is 30-60 min (`--min-request-timeout` 1800 s
#: randomised); we use the lower bound so a forgotten watch still ends.
DEFAULT_WATCH_TIMEOUT = 1800.0
#: Requests remembered for assertions (`requests`); enough for any single test.
REQUEST_LOG = 10_000
#: How long an in-process control call may wait for the server thread (only reached when the
#: server thread is wedged, which is then a test failure with a clear error).
CALL_TIMEOUT = 30.0
#: aiohttp's own body limit is raised above the API server's 3 MiB so that we, not aiohttp,
#: answer oversized requests with the real server's 413 Status.
CLIENT_MAX_SIZE = 64 * 1024 * 1024

DownMode = Literal["refuse", "unavailable"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    status: int


def _resource_name(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


class KubeApiServer:
    """The stand-in: state, HTTP app, lifecycle, and thread-safe control methods."""

    def __init__(
        self,
        *,
        crds_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        history_size: int = DEFAULT_HISTORY,
        watch_timeout: float = DEFAULT_WATCH_TIMEOUT,
        options: Options | None = None,
        seed_cluster: bool = True,
    ) -> None:
        self.store = Store(history_size=history_size)
        self.registry = Registry()
        self.options = options or Options()
        self.rest = Rest(self.store, self.registry, self.options)
        self.host = host
        self.port = port
        self.watch_timeout = watch_timeout
        self.latency = 0.0
        self.down: DownMode | None = None
        self.backends: dict[tuple[str, str], dict[int | None, str]] = {}
        self.access = AccessList()
        self.enforce_rbac = False
        self.requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG)
        self._crds_dir = Path(crds_dir) if crds_dir else None
        self._seed_cluster = seed_cluster
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start_async(self) -> str:
        """Bind and serve on the running loop; returns the URL."""
        self._loop = asyncio.get_running_loop()
        if self._seed_cluster:
            self._seed()
        if self._crds_dir is not None:
            self.load_crds_now(self._crds_dir)
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a watch whose client went away stops at once.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await self._bind()
        return self.url

    async def _bind(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server  # the asyncio.Server, to learn the bound port
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> str:
        """Run on a private event loop in a daemon thread; returns the URL once serving."""
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubeapi-standin", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._thread = None

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop (thread-safe access to the state)."""
        loop = self._loop
        if loop is None or self._thread is None or threading.current_thread() is self._thread:
            return fn()

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(CALL_TIMEOUT)

    # -- seeding -------------------------------------------------------------------------------

    def _seed(self) -> None:
        """What every cluster has: the system namespaces and the `kubernetes` Service."""
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.add_now({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.add_now(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "clusterIPs": ["10.96.0.1"],
                    "type": "ClusterIP",
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                },
            }
        )
        self.add_now(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "subsets": [
                    {
                        "addresses": [{"ip": "172.18.0.2"}],
                        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
                    }
                ],
            }
        )

    def load_crds_now(self, directory: Path) -> list[str]:
        """Create every CRD found in `directory` (*.yaml, *.yml); returns their names."""
        names = []
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    self.add_now(doc)
                    names.append(doc["metadata"]["name"])
        return names

    # -- state access (thread-safe wrappers end in no suffix; *_now run on the loop) ------------

    def _type_for(self, obj: dict[str, Any]) -> ResourceType:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        for gv in self.registry.group_versions().get(group, []):
            if gv != version:
                continue
            for t in self.registry.resource_list(group, gv)["resources"]:
                if t["kind"] == kind and "/" not in t["name"]:
                    found = self.registry.get(group, gv, t["name"])
                    if found is not None:
                        return found
        raise KeyError(f"no resource serves {api_version} {kind}")

    def _type_named(self, resource: str) -> ResourceType:
        types = self.registry.by_plural(resource)
        if not types:
            raise KeyError(f"unknown resource {resource!r}")
        if len({t.group for t in types}) > 1:
            groups = ", ".join(sorted(f"{t.plural}.{t.group}" for t in types))
            raise KeyError(f"ambiguous resource {resource!r}: name one of {groups}")
        return types[0]

    def add_now(self, obj: dict[str, Any]) -> dict[str, Any]:
        rtype = self._type_for(obj)
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ("default" if rtype.namespaced else "")
        if rtype.namespaced and self.store.get(("", "namespaces"), "", namespace) is None:
            self.add_now({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        existing = self.store.get((rtype.group, rtype.plural), namespace, meta.get("name", ""))
        if existing is not None:
            body = copy.deepcopy(obj)
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            # Straight to the commit step: a back-door write neither consumes injected
            # conflicts nor needs a resourceVersion.
            return self.rest._commit(rtype, existing, body, subresource=None, field_validation=None)
        return self.rest.create(rtype, namespace, obj, backdoor=True)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (a test's back door: namespace auto-created, status kept)."""
        return self._call(lambda: self.add_now(obj))

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        """The stored object (`resource` is a plural, optionally `.group`), or None."""

        def run() -> dict[str, Any] | None:
            rtype = self._type_named(resource)
            obj = self.store.get((rtype.group, rtype.plural), namespace, name)
            return copy.deepcopy(obj) if obj is not None else None

        return self._call(run)

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of `resource` (all namespaces unless given)."""

        def run() -> list[dict[str, Any]]:
            rtype = self._type_named(resource)
            return [
                copy.deepcopy(o) for o in self.store.items((rtype.group, rtype.plural), namespace)
            ]

        return self._call(run)

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        def run() -> None:
            rtype = self._type_named(resource)
            self.rest.delete(rtype, namespace, name, None)

        self._call(run)

    def inject_conflicts(self, resource: str, n: int) -> None:
        """The next `n` updates/patches of `resource` (plural or plural.group) answer 409."""

        def run() -> None:
            self.options.conflicts[resource] = self.options.conflicts.get(resource, 0) + n

        self._call(run)

    def set_latency(self, seconds: float) -> None:
        self._call(lambda: setattr(self, "latency", seconds))

    def set_down(self, down: bool, *, mode: DownMode = "refuse") -> None:
        """Make the server unreachable (`refuse`: connections refused and dropped) or answer
        503 (`unavailable`), or bring it back. Open watches end either way."""

        async def run() -> None:
            if down:
                self.down = mode
                self.store.close_watchers()
                if mode == "refuse" and self._site is not None:
                    await self._site.stop()
                    self._site = None
                    if self._runner is not None and self._runner.server is not None:
                        for conn in list(self._runner.server.connections):
                            conn.force_close()
                            if conn.transport is not None:
                                conn.transport.abort()
            else:
                if self.down == "refuse" and self._site is None:
                    await self._bind()
                self.down = None

        loop = self._loop
        assert loop is not None
        if threading.current_thread() is self._thread:
            raise RuntimeError("set_down must be called from outside the server thread")
        asyncio.run_coroutine_threadsafe(run(), loop).result(CALL_TIMEOUT)

    def set_portforward_backend(
        self, namespace: str, pod: str, address: str, *, port: int | None = None
    ) -> None:
        """Connect port-forwards to `pod` (all ports, or only `port`) to `address`."""

        def run() -> None:
            self.backends.setdefault((namespace, pod), {})[port] = address

        self._call(run)

    def allow(self, verb: str, group: str, resource: str, namespace: str | None = None) -> None:
        """Switch access reviews to an allow-list (first call) and add a rule. `*` matches
        anything; `namespace=None` means every namespace (a ClusterRole binding)."""

        self._call(lambda: self.access.allow(verb, group, resource, namespace))

    def deny_all(self) -> None:
        self._call(self.access.deny_all)

    def set_enforce_rbac(self, enforce: bool) -> None:
        """Also answer ordinary requests outside the allow-list with 403 Forbidden."""
        self._call(lambda: setattr(self, "enforce_rbac", enforce))

    def request_log(self) -> list[RequestRecord]:
        return self._call(lambda: list(self.requests))

    def allowed(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        return self.access.allowed(verb, group, resource, namespace)

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_standin/"):
            return await self._control(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            if self.down == "unavailable":
                raise StatusError(503, "the server is currently unable to handle the request")
            response = await self._dispatch(request)
        except StatusError as exc:
            response = exc.response()
        self.requests.append(RequestRecord(request.method, request.path_qs, response.status))
        return response

    async def _body(self, request: web.Request) -> Any:
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            raise StatusError(413, f"Request entity too large: limit is {MAX_REQUEST_BYTES}")
        raw = await request.read()
        if len(raw) > MAX_REQUEST_BYTES:
            raise StatusError(413, f"Request entity too large: limit is {MAX_REQUEST_BYTES}")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StatusError(400, f"couldn't get version/kind; json parse error: {exc}") from exc

    def _json(self, body: Any, status: int = 200) -> web.Response:
        response = web.Response(
            status=status, text=json.dumps(body), content_type="application/json"
        )
        if self.rest.warnings:
            # The real server's field-validation warnings (299 is the "miscellaneous" code).
            response.headers["Warning"] = ",".join(f'299 - "{w}"' for w in self.rest.warnings)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        not_found = StatusError(404, "the server could not find the requested resource")
        if request.path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if parts == ["version"]:
            return self._json(VERSION)
        if not parts or parts[0] not in ("api", "apis"):
            raise not_found
        if parts == ["api"]:
            return self._json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                    ],
                }
            )
        if parts == ["apis"]:
            return self._json(self.registry.group_list())
        if parts[0] == "apis" and len(parts) == 2:
            for group in self.registry.group_list()["groups"]:
                if group["name"] == parts[1]:
                    return self._json({"kind": "APIGroup", "apiVersion": "v1", **group})
            raise not_found
        group, version, rest = (
            ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
        )
        if not self.registry.has_group_version(group, version):
            raise not_found
        if not rest:
            return self._json(self.registry.resource_list(group, version))
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise not_found
        rtype = self.registry.get(group, version, rest[0])
        if rtype is None:
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (rtype.namespaced and namespace is None and name is not None) or (
            not rtype.namespaced and namespace is not None
        ):
            raise not_found
        if (
            sub not in (None, "status", "portforward")
            or (sub == "status" and not rtype.has_status)
            or (sub == "portforward" and rtype.plural != "pods")
        ):
            raise not_found
        verb = self._verb(request, name=name, sub=sub)
        self.rest.warnings.clear()
        if self.enforce_rbac:
            resource = f"{rtype.plural}/{sub}" if sub else rtype.plural
            if not self.allowed(verb, group, resource, namespace or ""):
                where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
                raise StatusError(
                    403,
                    f"{_resource_name(group, resource)} is forbidden: User "
                    f'"system:serviceaccount:standin:agent" cannot {verb} resource '
                    f'"{resource}" in API group "{group}" {where}',
                    details={"kind": rtype.plural, **({"group": group} if group else {})},
                )
        if verb not in rtype.verbs and sub is None:
            raise StatusError(
                405, f"the server does not allow this method on the requested resource ({verb})"
            )
        return await self._verb_call(request, rtype, verb, namespace or "", name, sub)

    @staticmethod
    def _verb(request: web.Request, *, name: str | None, sub: str | None) -> str:
        method = request.method
        if sub == "portforward":
            return "create" if method == "POST" else "get"
        if method == "GET":
            if name is None:
                return "watch" if request.query.get("watch") in ("true", "1") else "list"
            return "get"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method, method.lower())

    async def _verb_call(
        self,
        request: web.Request,
        rtype: ResourceType,
        verb: str,
        namespace: str,
        name: str | None,
        sub: str | None,
    ) -> web.StreamResponse:
        fv = request.query.get("fieldValidation")
        scope: str | None = namespace if rtype.namespaced and namespace else None
        if sub == "portforward":
            assert name is not None
            return await self._portforward(request, rtype, namespace, name)
        if verb == "watch":
            return await watch_objects(
                request, self.rest, rtype, scope, default_timeout=self.watch_timeout
            )
        if verb == "list":
            return self._json(list_objects(self.rest, rtype, scope, request.query))
        if verb == "get":
            assert name is not None
            return self._json(self.rest.get(rtype, namespace, name))
        body = await self._body(request)
        if verb == "create":
            if rtype.plural == "selfsubjectaccessreviews":
                return self._json(self.access.review(body), 201)
            if name is not None:
                raise StatusError(
                    405, "the server does not allow this method on the requested resource"
                )
            return self._json(self.rest.create(rtype, namespace, body, field_validation=fv), 201)
        assert name is not None or verb == "deletecollection"
        if verb == "update":
            assert name is not None
            return self._json(
                self.rest.update(rtype, namespace, name, body, subresource=sub, field_validation=fv)
            )
        if verb == "patch":
            assert name is not None
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            return self._json(
                self.rest.patch(
                    rtype,
                    namespace,
                    name,
                    body,
                    content_type=content_type,
                    subresource=sub,
                    field_validation=fv,
                )
            )
        if verb == "delete":
            assert name is not None
            out, _ = self.rest.delete(rtype, namespace, name, body)
            return self._json(out)
        if verb == "deletecollection":
            listed = list_objects(self.rest, rtype, scope, request.query)
            for item in listed["items"]:
                self.rest.delete(
                    rtype, item["metadata"].get("namespace", ""), item["metadata"]["name"], None
                )
            return self._json(listed)
        raise StatusError(405, f"the server does not allow this method ({request.method})")

    async def _portforward(
        self, request: web.Request, rtype: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise StatusError(
                405, "the server does not allow this method on the requested resource"
            )
        self.rest.get(rtype, namespace, name)  # 404 for a missing pod
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise StatusError(400, "Upgrade request required")
        try:
            ports = parse_ports(",".join(request.query.getall("ports", [])))
        except ValueError as exc:
            raise StatusError(400, str(exc)) from exc
        backends = dict(self.backends.get((namespace, name), {}))
        return await serve_portforward(request, ports=ports, backends=backends, pod=name)

    async def _control(self, request: web.Request) -> web.Response:
        from tests.standins.kube_control import handle_control

        return await handle_control(self, request)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.standins.kubeapi ...` (see `kube_control.main`)."""
    from tests.standins.kube_control import main as run

    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
