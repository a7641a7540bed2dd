"""The agent's Kubernetes adapter: client set-up, the node-local pod cache, probe checks.

This is the only module of the composition root that imports `kubernetes` (import-linter
enforces it). Everything the rest of the agent needs from the cluster about *pods* goes through
here, as plain data:

    API server ──list+watch pods (fieldSelector spec.nodeName=<node>)──► PodCache maps
               ──get ReplicaSet / Job on a new owner (cached, bounded)──► owner map
    PodCache ──PodMetadata (top_owner, labels, annotations, volume_mounts)──► profiler, detector

The official client is synchronous. Every call runs in a bounded thread pool owned by
`KubeClient` (`asyncio` never blocks), and `kubernetes` / `urllib3` errors are translated at
this boundary into one error type, `KubernetesError` (HTTP status, Status reason, operation).

The pod watch is a raw `watch=true` stream read line by line in a worker thread; each event is
handed to the event loop with `call_soon_threadsafe` and applied there, so the in-memory maps
are only ever touched from the loop thread and lookups on the hot path need no lock. On a
stream end the watch resumes from the last resourceVersion seen; on 410 Gone it re-lists; on
any other error it retries with capped exponential backoff.

`PodMetadata` lookups are synchronous and never call the API. An owner not yet resolved gets a
heuristic answer at once (ReplicaSet `web-5d4f8` of a pod labelled `pod-template-hash=5d4f8` →
Deployment `web`; a Job named like a CronJob's run → that CronJob; this is
`profiler.identity.owner_heuristic`, the function the no-cache path uses) and an exact lookup
is started in the background; owners of watched pods are resolved as the pods arrive, before
IG's first event for them usually does.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog
import urllib3
from kubernetes import client as k8s
from kubernetes import config as _k8s_config

from detector.k8s_source import BINDINGS, EXCEPTIONS, GUARDS, RULES
from profiler import documents
from profiler.identity import owner_heuristic

log = structlog.get_logger(__name__)

#: The config loaders are untyped; held as Any so strict mypy accepts the calls.
k8s_config: Any = _k8s_config

T = TypeVar("T")

#: Mount path of the service-account token volume; not a workload volume, so R0002/R1004 must
#: not treat it as one (R0006 watches it instead).
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Name prefix of the projected token volume the API server injects (`kube-api-access-xxxxx`).
SERVICE_ACCOUNT_VOLUME_PREFIX = "kube-api-access-"
#: Owner resolutions kept. A node runs at most 110 pods by default; 4096 entries cover every
#: ReplicaSet and Job of many rollouts without growing with the cluster's history.
OWNER_CACHE_SIZE = 4096
#: Server-side watch timeout. The API server ends watches after 30-60 min anyway; 5 min keeps a
#: silently dead connection from hiding pod changes for long.
WATCH_TIMEOUT_S = 300
#: Client-side read timeout on top of it: a stream that sends nothing (not even the end) for
#: this long is dead.
WATCH_READ_SLACK_S = 30
#: Connect/read timeout of ordinary calls, so a hung API server cannot hold a worker forever.
CALL_TIMEOUT_S = (5.0, 30.0)


class KubernetesError(Exception):
    """A Kubernetes API call failed.

    `status` is the HTTP status (0 when the server could not be reached), `reason` the
    `Status.reason` (`NotFound`, `Conflict`, `Expired`, `Forbidden`, ... or `Unreachable`),
    `operation` what we were doing.
    """

    def __init__(self, message: str, *, status: int, reason: str, operation: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.operation = operation


def _translate(exc: BaseException, operation: str) -> KubernetesError:
    if isinstance(exc, k8s.ApiException):
        reason, message = str(exc.reason or ""), str(exc.reason or "")
        with contextlib.suppress(ValueError, TypeError):
            body = json.loads(exc.body or "")
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
        status = int(exc.status or 0)
        if status == 0:
            reason = "Unreachable"
        return KubernetesError(
            f"{operation}: {message}", status=status, reason=reason, operation=operation
        )
    return KubernetesError(
        f"{operation}: {exc}", status=0, reason="Unreachable", operation=operation
    )


# -- client ---------------------------------------------------------------------------------


def load_configuration(*, kubeconfig: str = "", api_server: str = "") -> Any:
    """A `kubernetes.client.Configuration`: the given kubeconfig, else in-cluster credentials,
    else the default kubeconfig, else just `api_server`. A non-empty `api_server` overrides the
    host in every case. Raises `KubernetesError` when nothing is found."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                default = Path(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
                if default.is_file():
                    k8s_config.load_kube_config(client_configuration=configuration)
                elif not api_server:
                    raise
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise KubernetesError(
            f"no usable Kubernetes configuration: {exc}",
            status=0,
            reason="NoConfiguration",
            operation="load configuration",
        ) from exc
    if api_server:
        configuration.host = api_server
    return configuration


class KubeClient:
    """The official client behind a bounded thread pool; `call` is the only way in."""

    def __init__(self, configuration: Any, *, max_workers: int = 4) -> None:
        self.api_client = k8s.ApiClient(configuration)
        self.core: Any = k8s.CoreV1Api(self.api_client)
        self.apps: Any = k8s.AppsV1Api(self.api_client)
        self.batch: Any = k8s.BatchV1Api(self.api_client)
        self.authorization: Any = k8s.AuthorizationV1Api(self.api_client)
        self.extensions: Any = k8s.ApiextensionsV1Api(self.api_client)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="k8s")

    @classmethod
    def from_settings(
        cls, *, kubeconfig: str = "", api_server: str = "", max_workers: int = 4
    ) -> KubeClient:
        return cls(
            load_configuration(kubeconfig=kubeconfig, api_server=api_server),
            max_workers=max_workers,
        )

    async def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call in the pool; errors become `KubernetesError`."""
        kwargs.setdefault("_request_timeout", CALL_TIMEOUT_S)
        return await self.run_blocking(operation, fn, *args, **kwargs)

    async def run_blocking(
        self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # keep structlog's bound context, as to_thread does
        call = functools.partial(ctx.run, fn, *args, **kwargs)
        try:
            return await loop.run_in_executor(self._executor, call)
        except KubernetesError:
            raise
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, operation) from exc

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.api_client.close)


# -- pod cache --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the cache keeps of one pod."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    #: The controller owner (kind, name), or None for a bare pod.
    owner: tuple[str, str] | None
    #: Mount paths per container (init containers included), service-account token excluded.
    mounts: Mapping[str, tuple[str, ...]]
    #: ``status.podIP``; "" before it is assigned and for host-network pods (the node's IP is
    #: not the pod's own).
    ip: str = ""


def pod_info(raw: Mapping[str, Any]) -> PodInfo:
    """Our view of a pod's JSON (as the watch sends it)."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    owner = None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            owner = (str(ref.get("kind", "")), str(ref.get("name", "")))
            break
    token_volumes = {
        v.get("name")
        for v in spec.get("volumes") or []
        if str(v.get("name", "")).startswith(SERVICE_ACCOUNT_VOLUME_PREFIX)
    }
    mounts: dict[str, tuple[str, ...]] = {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            mounts[str(container.get("name", ""))] = tuple(
                str(m["mountPath"])
                for m in container.get("volumeMounts") or []
                if m.get("mountPath")
                and m.get("mountPath") != SERVICE_ACCOUNT_MOUNT
                and m.get("name") not in token_volumes
            )
    status = raw.get("status") or {}
    ip = "" if spec.get("hostNetwork") else str(status.get("podIP") or "")
    return PodInfo(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        owner=owner,
        mounts=mounts,
        ip=ip,
    )


@dataclass
class PodCacheStats:
    """Counters read by the metrics layer at scrape time."""

    #: full lists of the node's pods, by cause: start, gone (410), error (after a failure)
    lists: Counter[str] = field(default_factory=Counter)
    #: watch events applied, by type
    events: Counter[str] = field(default_factory=Counter)
    #: failed list/watch/lookups, by (operation, reason)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: owner answers, by source: cache, lookup, heuristic
    owners: Counter[str] = field(default_factory=Counter)
    #: pods currently cached (a gauge)
    pods: int = 0


class PodCache:
    """Node-local pod cache and owner resolver; implements `profiler.identity.PodMetadata`."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        node_name: str,
        owner_cache_size: int = OWNER_CACHE_SIZE,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        watch_timeout: int = WATCH_TIMEOUT_S,
    ) -> None:
        self._kube = kube
        self._node = node_name
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._owners: OrderedDict[tuple[str, str, str], tuple[str, str]] = OrderedDict()
        self._owner_cache_size = owner_cache_size
        self._pending: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._watch_timeout = watch_timeout
        self._resource_version = ""
        self._response: Any = None
        self.ready = asyncio.Event()
        self.stats = PodCacheStats()
        self._change = asyncio.Event()
        #: Bumped on every change; lets consumers notice changes without missing one.
        self.generation = 0

    def _changed(self) -> None:
        """Wake everything waiting in `wait_until` (the cache's contents changed)."""
        self.generation += 1
        self._change.set()
        self._change = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked after every change to the cache."""
        while not predicate():
            await self._change.wait()

    # -- PodMetadata --------------------------------------------------------------------------

    def top_owner(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        key = (namespace, kind, name)
        cached = self._owners.get(key)
        if cached is not None:
            self._owners.move_to_end(key)
            self.stats.owners["cache"] += 1
            return cached
        if kind not in ("ReplicaSet", "Job"):
            return kind, name
        self._resolve_later(namespace, kind, name)
        self.stats.owners["heuristic"] += 1
        return self._heuristic(namespace, kind, name)

    def annotations(self, namespace: str, pod: str) -> Mapping[str, str]:
        info = self._pods.get((namespace, pod))
        return info.annotations if info else {}

    def labels(self, namespace: str, pod: str) -> Mapping[str, str]:
        info = self._pods.get((namespace, pod))
        return info.labels if info else {}

    def volume_mounts(self, namespace: str, pod: str, container: str) -> Sequence[str]:
        info = self._pods.get((namespace, pod))
        return info.mounts.get(container, ()) if info else ()

    def pod_ip(self, namespace: str, pod: str) -> str:
        info = self._pods.get((namespace, pod))
        return info.ip if info else ""

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return self._pods.get((namespace, name))

    # -- owners -------------------------------------------------------------------------------

    def _heuristic(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        """`profiler.identity.owner_heuristic`, the same function the no-cache path uses,
        with the pod-template-hash of a watched pod that this ReplicaSet owns."""
        labels: Mapping[str, str] = {}
        if kind == "ReplicaSet":
            for info in self._pods.values():
                if info.namespace == namespace and info.owner == (kind, name):
                    labels = info.labels
                    break
        return owner_heuristic(kind, name, labels)

    def _remember(self, key: tuple[str, str, str], value: tuple[str, str]) -> None:
        self._owners[key] = value
        self._owners.move_to_end(key)
        while len(self._owners) > self._owner_cache_size:
            self._owners.popitem(last=False)
        self._changed()

    def _resolve_later(self, namespace: str, kind: str, name: str) -> None:
        key = (namespace, kind, name)
        if key in self._pending or key in self._owners:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside the loop (a CLI): the heuristic answer stands
        task = asyncio.create_task(
            self.resolve_owner(namespace, kind, name), name=f"owner-{kind}-{name}"
        )
        self._pending[key] = task
        task.add_done_callback(lambda _t: self._pending.pop(key, None))

    async def resolve_owner(self, namespace: str, kind: str, name: str) -> None:
        """Look up a ReplicaSet's or Job's controller and cache the top-level owner."""
        key = (namespace, kind, name)
        read = (
            self._kube.apps.read_namespaced_replica_set
            if kind == "ReplicaSet"
            else self._kube.batch.read_namespaced_job
        )
        try:
            obj = await self._kube.call(f"get {kind}", read, name, namespace)
        except KubernetesError as exc:
            self.stats.errors[(f"get {kind}", exc.reason)] += 1
            self._changed()
            log.warning(
                "owner lookup failed",
                kind=kind,
                namespace=namespace,
                name=name,
                status=exc.status,
                reason=exc.reason,
            )
            if exc.status == 404:
                # Gone for good: the heuristic is the best answer there will ever be.
                self._remember(key, self._heuristic(namespace, kind, name))
            return
        want = "Deployment" if kind == "ReplicaSet" else "CronJob"
        top = (kind, name)
        for ref in obj.metadata.owner_references or []:
            if ref.controller and ref.kind == want:
                top = (want, ref.name)
        self.stats.owners["lookup"] += 1
        self._remember(key, top)

    # -- list + watch -----------------------------------------------------------------------

    async def run(self) -> None:
        """List and watch this node's pods until cancelled (the agent's pod-cache task)."""
        delay = self._retry_delay
        cause = "start"
        while True:
            try:
                await self._list(cause)
                delay = self._retry_delay
                while True:
                    await self._watch_once()
            except KubernetesError as exc:
                self.stats.errors[(exc.operation, exc.reason)] += 1
                self._changed()
                if exc.status == 410:
                    cause = "gone"
                    log.info("pod watch expired, listing again", node=self._node)
                    continue
                cause = "error"
                log.error(
                    "pod watch failed, retrying",
                    node=self._node,
                    status=exc.status,
                    reason=exc.reason,
                    error=str(exc),
                    retry_in_s=round(delay, 2),
                )
                # Jitter spreads the reconnects of every node's agent after an API outage.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._max_retry_delay)
            finally:
                self._close_response()

    def _selector(self) -> str:
        return f"spec.nodeName={self._node}"

    async def _list(self, cause: str) -> None:
        pods = await self._kube.call(
            "list pods",
            self._kube.core.list_pod_for_all_namespaces,
            field_selector=self._selector(),
            _preload_content=False,
        )
        body = json.loads(pods.data)
        fresh: dict[tuple[str, str], PodInfo] = {}
        for raw in body.get("items") or []:
            info = pod_info(raw)
            fresh[(info.namespace, info.name)] = info
        self._pods = fresh
        self._resource_version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        self.stats.lists[cause] += 1
        self.stats.pods = len(self._pods)
        for info in fresh.values():
            self._resolve_pod_owner(info)
        self.ready.set()
        self._changed()

    def _resolve_pod_owner(self, info: PodInfo) -> None:
        if info.owner is not None and info.owner[0] in ("ReplicaSet", "Job"):
            self._resolve_later(info.namespace, *info.owner)

    async def _watch_once(self) -> None:
        loop = asyncio.get_running_loop()
        await self._kube.run_blocking("watch pods", self._watch_blocking, loop)

    def _watch_blocking(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in a worker thread: stream events to the loop until the server ends it."""
        response = self._kube.core.list_pod_for_all_namespaces(
            watch=True,
            field_selector=self._selector(),
            resource_version=self._resource_version,
            timeout_seconds=self._watch_timeout,
            allow_watch_bookmarks=True,
            _preload_content=False,
            _request_timeout=(CALL_TIMEOUT_S[0], self._watch_timeout + WATCH_READ_SLACK_S),
        )
        self._response = response
        try:
            buffer = b""
            for chunk in response.stream(64 * 1024, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._deliver(loop, line)
            if buffer.strip():
                self._deliver(loop, buffer)
        finally:
            self._response = None
            response.release_conn()

    def _deliver(self, loop: asyncio.AbstractEventLoop, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            loop.call_soon_threadsafe(self._count_bad_line)
            return
        if event.get("type") == "ERROR":
            status = event.get("object") or {}
            raise KubernetesError(
                f"watch pods: {status.get('message', '')}",
                status=int(status.get("code", 0)),
                reason=str(status.get("reason", "")),
                operation="watch pods",
            )
        loop.call_soon_threadsafe(self._apply, event)

    def _count_bad_line(self) -> None:
        self.stats.errors[("watch pods", "BadEvent")] += 1
        log.error("pod watch sent an undecodable line", node=self._node)

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type", ""))
        raw = event.get("object") or {}
        rv = (raw.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._resource_version = str(rv)
        self.stats.events[kind] += 1
        if kind == "BOOKMARK":
            return
        info = pod_info(raw)
        key = (info.namespace, info.name)
        if kind == "DELETED":
            self._pods.pop(key, None)
        else:
            self._pods[key] = info
            self._resolve_pod_owner(info)
        self.stats.pods = len(self._pods)
        self._changed()

    def _close_response(self) -> None:
        """Unblock a worker thread reading the watch (on cancel or error)."""
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()

    async def aclose(self) -> None:
        self._close_response()
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)


# -- API server addresses (rule R0007) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiServerAddresses:
    """Where pods reach the API server: the `kubernetes` Service and its endpoints."""

    #: (ip, port) pairs: the Service's clusterIP(s) with its port(s), and the endpoints.
    endpoints: frozenset[tuple[str, int]]

    @property
    def ips(self) -> frozenset[str]:
        return frozenset(ip for ip, _ in self.endpoints)


async def api_server_addresses(kube: KubeClient) -> ApiServerAddresses:
    """Read `default/kubernetes` (Service and Endpoints). Raises `KubernetesError`."""
    service = await kube.call(
        "get service default/kubernetes", kube.core.read_namespaced_service, "kubernetes", "default"
    )
    pairs: set[tuple[str, int]] = set()
    ips = set(service.spec.cluster_ips or []) | {service.spec.cluster_ip}
    ports = [p.port for p in service.spec.ports or []] or [443]
    pairs.update((ip, port) for ip in ips if ip and ip != "None" for port in ports)
    endpoints = await kube.call(
        "get endpoints default/kubernetes",
        kube.core.read_namespaced_endpoints,
        "kubernetes",
        "default",
    )
    for subset in endpoints.subsets or []:
        sub_ports = [p.port for p in subset.ports or []]
        for address in subset.addresses or []:
            pairs.update((address.ip, port) for port in sub_ports)
    return ApiServerAddresses(endpoints=frozenset(pairs))


# -- probe checks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PermissionCheck:
    """One RBAC permission the agent needs."""

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    subresource: str = ""
    #: A single object name, for permissions granted only on named objects.
    name: str = ""

    def display(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        qualified = f"{resource}.{self.group}" if self.group else resource
        named = f"/{self.name}" if self.name else ""
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {qualified}{named}{where}"


@dataclass(frozen=True, slots=True)
class PermissionResult:
    check: PermissionCheck
    allowed: bool
    #: The authorizer's reason, or our error when the review itself failed.
    detail: str = ""


#: The CRDs the agent uses (`gadgetwatch probe` checks them; the chart installs them).
AGENT_CRDS = (
    documents.CRD_NAME,
    BINDINGS.crd_name,
    EXCEPTIONS.crd_name,
    GUARDS.crd_name,
    RULES.crd_name,
)


def agent_permissions(*, gadget_namespace: str | None = None) -> list[PermissionCheck]:
    """What the agent's ServiceAccount needs: exactly what the Helm chart and the kustomize base
    grant (tests/deploy checks both ways).

    `gadget_namespace` is set when IG is reached through the API server's port-forward.
    """
    checks = [
        *(PermissionCheck(verb, "pods") for verb in ("get", "list", "watch")),
        PermissionCheck("get", "replicasets", "apps"),
        PermissionCheck("get", "jobs", "batch"),
        *(
            PermissionCheck(verb, documents.PLURAL, documents.GROUP)
            for verb in ("get", "list", "watch", "create", "update")
        ),
        *(
            PermissionCheck(verb, res.plural, res.group)
            for res in (BINDINGS, EXCEPTIONS, GUARDS, RULES)
            for verb in ("list", "watch")
        ),
        PermissionCheck("create", "events"),
        PermissionCheck("create", "selfsubjectaccessreviews", "authorization.k8s.io"),
        *(
            PermissionCheck("get", "customresourcedefinitions", "apiextensions.k8s.io", name=crd)
            for crd in AGENT_CRDS
        ),
        # The API server's addresses for R0007 (granted on these named objects only).
        PermissionCheck("get", "services", namespace="default", name="kubernetes"),
        PermissionCheck("get", "endpoints", namespace="default", name="kubernetes"),
    ]
    if gadget_namespace:
        checks.extend(
            PermissionCheck(verb, "pods", namespace=gadget_namespace, subresource="portforward")
            for verb in ("create", "get")
        )
    return checks


async def check_permissions(
    kube: KubeClient, checks: Sequence[PermissionCheck]
) -> list[PermissionResult]:
    """Ask the API server (SelfSubjectAccessReview) about each permission, in order."""
    results = []
    for check in checks:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "verb": check.verb,
                    "group": check.group,
                    "resource": check.resource,
                    "namespace": check.namespace,
                    "subresource": check.subresource,
                    "name": check.name,
                }
            },
        }
        try:
            review = await kube.call(
                "create selfsubjectaccessreview",
                kube.authorization.create_self_subject_access_review,
                body,
            )
        except KubernetesError as exc:
            results.append(PermissionResult(check, allowed=False, detail=str(exc)))
            continue
        status = review.status
        results.append(
            PermissionResult(
                check,
                allowed=bool(status.allowed),
                detail=str(status.reason or status.evaluation_error or ""),
            )
        )
    return results


@dataclass(frozen=True, slots=True)
class CrdResult:
    name: str
    present: bool
    established: bool = False
    versions: tuple[str, ...] = ()
    detail: str = ""


async def check_crds(kube: KubeClient, names: Sequence[str]) -> list[CrdResult]:
    """Whether each CRD (`plural.group`) is installed and Established, in order."""
    results = []
    for name in names:
        try:
            crd = await kube.call(
                "get customresourcedefinition",
                kube.extensions.read_custom_resource_definition,
                name,
            )
        except KubernetesError as exc:
            detail = "not installed" if exc.status == 404 else str(exc)
            results.append(CrdResult(name, present=False, detail=detail))
            continue
        conditions = {c.type: c.status for c in (crd.status.conditions or [])} if crd.status else {}
        results.append(
            CrdResult(
                name,
                present=True,
                established=conditions.get("Established") == "True",
                versions=tuple(v.name for v in crd.spec.versions if v.served),
            )
        )
    return results
