"""The Kubernetes store: `ApplicationProfile` resources (`gadgetwatch.io/v1`), official client.

This is the only module of the package that imports `kubernetes`. The client is synchronous, so
every call runs in a bounded thread pool (`asyncio` ``run_in_executor`` on our own executor,
`threads` workers) and never blocks the event loop; the watch stream gets its own thread so a
long-lived watch never takes a worker from the writes.

Objects live in the workload's namespace, named `profile_name(key)`. Writes are optimistic:
`update` replaces the object with the resourceVersion that was read, and the API server answers
409 when someone else wrote in between (the merge loop in `store.py` re-reads and re-merges).

Errors are translated here and nowhere else: 409 -> `ConflictError`, 404 -> `NotFoundError`,
413 -> `TooLargeError`, 422 (schema) -> `InvalidProfileError`, anything else (including transport
errors) -> `StoreError`.

Pacing: creates, updates and deletes pass an `asyncio_throttle.Throttler` (`writes_per_second`).
A node that starts thousands of containers at once (a node drain landing elsewhere, a cluster
restart) would otherwise fire one write per profile per flush at the API server; the throttle
makes the flush wait instead, which is the right behaviour: nothing is lost (the delta stays in
memory until written) and the API server sees a bounded rate per agent. Reads and the watch are
not paced.

Watch: list (remember the list's resourceVersion), feed the sink, `synced()`, then watch from
that version; a 410 Gone (the version is too old) relists and removes what disappeared.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
import urllib3
from asyncio_throttle.throttler import Throttler
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from profiler.documents import GROUP, PLURAL, VERSION, from_document, to_document
from profiler.errors import (
    ConflictError,
    InvalidProfileError,
    NotFoundError,
    ProfilerError,
    StoreError,
    TooLargeError,
)
from profiler.identity import WorkloadKey, is_namespace_name
from profiler.profiles import Profile, profile_name
from profiler.store import ProfileSink

log = structlog.get_logger(__name__)

#: Server-side timeout of one watch request, seconds. The API server ends watches after 30-60
#: minutes anyway; 5 minutes bounds how long a stopped store's thread lingers.
WATCH_TIMEOUT_S = 300
#: Client-side timeout of one ordinary request (connect, read), seconds: a wedged API server
#: must turn into an error the flush loop can count and retry, not a stuck worker thread.
REQUEST_TIMEOUT_S = (5, 30)


def _translate(exc: Exception, obj: str) -> ProfilerError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = (exc.reason or "").strip() or f"HTTP {status}"
        body = exc.body if isinstance(exc.body, str) else ""
        if body:
            with contextlib.suppress(ValueError, AttributeError):
                message = json.loads(body).get("message") or message
        if status == 409:
            return ConflictError(message, obj=obj)
        if status == 404:
            return NotFoundError(message, obj=obj)
        if status == 413:
            return TooLargeError(message, obj=obj)
        if status == 422:
            return InvalidProfileError(message, obj=obj)
        return StoreError(f"HTTP {status}: {message}", obj=obj)
    return StoreError(f"API server unreachable: {exc}", obj=obj)


def api_client_from(*, kubeconfig: str = "", api_server: str = "") -> Any:
    """An `ApiClient`: explicit kubeconfig, else in-cluster credentials, else ~/.kube/config."""
    configuration = k8s_client.Configuration()
    try:
        if kubeconfig:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            try:
                k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except k8s_config.ConfigException:
                if not api_server:
                    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                        client_configuration=configuration
                    )
    except (k8s_config.ConfigException, OSError) as exc:
        raise StoreError(f"no usable Kubernetes credentials: {exc}", obj=kubeconfig) from exc
    if api_server:
        configuration.host = api_server
    return k8s_client.ApiClient(configuration)


class KubernetesStore:
    """`ProfileStore` over `ApplicationProfile` custom resources."""

    def __init__(
        self, api_client: Any, *, threads: int = 4, writes_per_second: float = 10.0
    ) -> None:
        if writes_per_second <= 0:
            raise ValueError(f"writes_per_second must be positive, got {writes_per_second}")
        self._client = api_client
        # asyncio-throttle counts whole calls per period: N calls per second, or for a rate
        # below one per second, one call per 1/rate seconds.
        if writes_per_second >= 1:
            self._throttler = Throttler(rate_limit=int(writes_per_second), period=1.0)
        else:
            self._throttler = Throttler(rate_limit=1, period=1.0 / writes_per_second)
        self._api = k8s_client.CustomObjectsApi(api_client)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="profiles")
        self._watch_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="profiles-w")
        self._stopping = threading.Event()
        self._watch: Any = None

    @property
    def name(self) -> str:
        return "kubernetes"

    async def _call(self, obj: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        try:
            return await loop.run_in_executor(self._executor, call)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, obj) from exc

    @staticmethod
    def _where(key: WorkloadKey) -> tuple[str, str]:
        if not key.namespace:
            raise StoreError(
                "profiles without a namespace (host mode) need the directory store",
                obj=key.display(),
            )
        if not is_namespace_name(key.namespace):
            # Never let an event's namespace ('..', 'a/b') become part of an API path.
            raise StoreError("not a valid Kubernetes namespace name", obj=key.display())
        return key.namespace, profile_name(key)

    @staticmethod
    def _parse(obj: Any) -> Profile:
        meta = obj.get("metadata", {}) if isinstance(obj, dict) else {}
        source = f"applicationprofile {meta.get('namespace', '?')}/{meta.get('name', '?')}"
        return from_document(obj, source=source)

    async def get(self, key: WorkloadKey) -> Profile | None:
        namespace, name = self._where(key)
        try:
            obj = await self._call(
                f"{namespace}/{name}",
                self._api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )
        except NotFoundError:
            return None
        profile = self._parse(obj)
        if profile.key != key:
            raise InvalidProfileError(
                f"holds {profile.key.display()}, expected {key.display()}",
                obj=f"applicationprofile {namespace}/{name}",
                field="spec.workload",
            )
        return profile

    async def _list_raw(self, namespace: str | None) -> dict[str, Any]:
        listing: dict[str, Any]
        if namespace:
            listing = await self._call(
                namespace,
                self._api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        else:
            listing = await self._call(
                "applicationprofiles", self._api.list_cluster_custom_object, GROUP, VERSION, PLURAL
            )
        return listing

    def _parse_items(
        self, listing: dict[str, Any]
    ) -> tuple[builtins.list[Profile], builtins.list[ProfilerError]]:
        profiles: builtins.list[Profile] = []
        errors: builtins.list[ProfilerError] = []
        for obj in listing.get("items", []):
            try:
                profiles.append(self._parse(obj))
            except ProfilerError as exc:
                errors.append(exc)
        return profiles, errors

    async def list(
        self, namespace: str | None = None
    ) -> tuple[builtins.list[Profile], builtins.list[ProfilerError]]:
        return self._parse_items(await self._list_raw(namespace))

    async def _write(self, obj: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A paced `_call` for writes (see the module docstring)."""
        async with self._throttler:
            return await self._call(obj, fn, *args)

    async def create(self, profile: Profile) -> Profile:
        namespace, name = self._where(profile.key)
        body = to_document(profile)
        body["metadata"].pop("resourceVersion", None)
        obj = await self._write(
            f"{namespace}/{name}",
            self._api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            body,
        )
        return self._parse(obj)

    async def update(self, profile: Profile) -> Profile:
        namespace, name = self._where(profile.key)
        if not profile.resource_version:
            raise ConflictError("update without a resourceVersion", obj=f"{namespace}/{name}")
        obj = await self._write(
            f"{namespace}/{name}",
            self._api.replace_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            to_document(profile),
        )
        return self._parse(obj)

    async def delete(self, key: WorkloadKey) -> None:
        namespace, name = self._where(key)
        await self._write(
            f"{namespace}/{name}",
            self._api.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )

    # -- watch --------------------------------------------------------------------------------

    async def _relist(self, sink: ProfileSink, known: set[WorkloadKey]) -> str:
        listing = await self._list_raw(None)
        profiles, errors = self._parse_items(listing)
        fresh = {p.key for p in profiles}
        for key in known - fresh:
            sink.remove(key)
        known.clear()
        known.update(fresh)
        for profile in profiles:
            sink.upsert(profile)
        for error in errors:
            sink.invalid(error)
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _stream(
        self, resource_version: str, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]
    ) -> None:
        """Runs in the watch thread: forwards events to the loop until the stream ends."""
        watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        self._watch = watcher
        try:
            for event in watcher.stream(  # type: ignore[no-untyped-call]
                self._api.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
                resource_version=resource_version,
                timeout_seconds=WATCH_TIMEOUT_S,
                allow_watch_bookmarks=True,
            ):
                if self._stopping.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except Exception as exc:  # delivered to the loop, translated there
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    async def watch(self, sink: ProfileSink) -> None:
        loop = asyncio.get_running_loop()
        known: set[WorkloadKey] = set()
        resource_version = await self._relist(sink, known)
        sink.synced()
        while not self._stopping.is_set():
            queue: asyncio.Queue[Any] = asyncio.Queue()
            loop.run_in_executor(self._watch_executor, self._stream, resource_version, loop, queue)
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, Exception):
                    if isinstance(item, ApiException) and item.status == 410:
                        resource_version = await self._relist(sink, known)
                    else:
                        error = _translate(item, "applicationprofiles watch")
                        sink.invalid(error)
                    continue
                resource_version = self._apply(item, sink, known) or resource_version

    def _apply(self, event: dict[str, Any], sink: ProfileSink, known: set[WorkloadKey]) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        version = str(obj.get("metadata", {}).get("resourceVersion", ""))
        if kind == "BOOKMARK":
            return version
        if kind == "ERROR":
            sink.invalid(StoreError(f"watch error: {obj.get('message', obj)}", obj="watch"))
            return ""
        try:
            profile = self._parse(obj)
        except ProfilerError as exc:
            sink.invalid(exc)
            return version
        if kind == "DELETED":
            known.discard(profile.key)
            sink.remove(profile.key)
        else:
            known.add(profile.key)
            sink.upsert(profile)
        return version

    async def aclose(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._watch_executor.shutdown(wait=False, cancel_futures=True)
