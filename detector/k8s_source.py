"""Bindings, exceptions and guards from the cluster: list + watch, the detector's only API client.

The only module of the detector that imports `kubernetes`. It lists and watches
`RuntimeRuleAlertBinding` (gadgetwatch.io/v1, cluster-scoped or namespaced: the cluster-wide list
covers both), `RuntimeAlertException`, `RuntimeGuard` and `RuntimeRule` (gadgetwatch.io/v1) with
the official client. The
client is synchronous, so every call runs in a worker thread (`asyncio.to_thread`); watch
events are handed back to the event loop, where the object map is updated and the whole rule
set is re-parsed and delivered through `on_update` (the composition root passes
``lambda rs: detector.update_rules("cluster", rs)``). The hot path never waits on this.

Each object is parsed on its own, so a broken one is reported with its kind/namespace/name and
field path, and the others keep working. Every object with errors gets one Kubernetes Event
(type Warning, reason `InvalidRuntimeRuleAlertBinding` / `InvalidRuntimeAlertException`) per
resourceVersion, so `kubectl describe` shows what is wrong where the user looks.

Failures: a 410 Gone relists; other API errors are counted (`DetectorStats.load_errors
["cluster"]`), logged rate-limited, and retried after `retry_delay_s`; the last good rule set
stays in force meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import urllib3
from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from detector import bindings, custom_rules, exceptions, guards
from detector.errors import RuleSourceError
from detector.loading import Level, Problem, from_object
from detector.rules import Catalogue, Rule
from detector.ruleset import RuleSet, parse_documents, parse_rules
from detector.stats import DetectorStats

log = structlog.get_logger(__name__)

#: The client's watch helper; typed Any because the kubernetes package ships no annotations.
_Watch: Any = k8s_watch.Watch


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's name, ``<plural>.<group>``."""
        return f"{self.plural}.{self.group}"


BINDINGS = Resource(bindings.GROUP, bindings.VERSION, bindings.PLURAL, bindings.KIND)
EXCEPTIONS = Resource("gadgetwatch.io", "v1", "runtimealertexceptions", exceptions.KIND)
GUARDS = Resource("gadgetwatch.io", "v1", "runtimeguards", guards.KIND)
_RULES_GROUP, _, _RULES_VERSION = custom_rules.API_VERSION.partition("/")
RULES = Resource(_RULES_GROUP, _RULES_VERSION, "runtimerules", custom_rules.KIND)
#: Every resource watched; the source is synced once each was listed.
WATCHED = (BINDINGS, EXCEPTIONS, GUARDS, RULES)

ObjKey = tuple[str, str, str]  # (kind, namespace, name)


class ClusterRulesSource:
    def __init__(
        self,
        api_client: Any,
        *,
        catalogue: Catalogue,
        on_update: Callable[[RuleSet], None],
        stats: DetectorStats,
        watch_timeout_s: int = 300,
        retry_delay_s: float = 5.0,
        component: str = "gadgetwatch",
    ) -> None:
        self._custom: Any = k8s_client.CustomObjectsApi(api_client)
        self._core = k8s_client.CoreV1Api(api_client)
        self._catalogue = catalogue
        self._on_update = on_update
        self._stats = stats
        #: Server-side watch timeout: bounds how long a worker thread outlives a cancel.
        self._watch_timeout_s = watch_timeout_s
        self._retry_delay_s = retry_delay_s
        self._component = component
        self._objects: dict[ObjKey, dict[str, Any]] = {}
        self._reported: set[tuple[str, str]] = set()
        self._watches: list[Any] = []
        self.ruleset = RuleSet()
        #: Set after the first complete list of every watched resource (readiness).
        self.synced = asyncio.Event()
        self._listed: set[str] = set()

    async def run(self) -> None:
        """List and watch every resource (`WATCHED`) until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._follow(BINDINGS), name="watch-bindings")
                tg.create_task(self._follow(EXCEPTIONS), name="watch-exceptions")
                tg.create_task(self._follow(GUARDS), name="watch-guards")
                tg.create_task(self._follow(RULES), name="watch-rules")
        finally:
            for w in self._watches:
                w.stop()

    async def _follow(self, res: Resource) -> None:
        while True:
            try:
                version = await self._list(res)
                while True:
                    version = await self._watch(res, version)
            except RuleSourceError as exc:
                self._stats.load_errors["cluster"] += 1
                log.error("rule resources unavailable", resource=res.plural, error=str(exc))
                await asyncio.sleep(self._retry_delay_s)

    async def _list(self, res: Resource) -> str:
        try:
            body: dict[str, Any] = await asyncio.to_thread(
                self._custom.list_cluster_custom_object, res.group, res.version, res.plural
            )
        except ApiException as exc:
            raise RuleSourceError(
                f"list failed: {exc.status} {exc.reason}", source=res.plural
            ) from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise RuleSourceError(f"list failed: {exc}", source=res.plural) from exc
        for key in [k for k in self._objects if k[0] == res.kind]:
            del self._objects[key]
        for obj in body.get("items", []):
            obj.setdefault("kind", res.kind)
            obj.setdefault("apiVersion", f"{res.group}/{res.version}")
            self._objects[_key(res.kind, obj)] = obj
        self._listed.add(res.kind)
        await self._rebuild()
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, res: Resource, version: str) -> str:
        """Follow one watch request; returns the resourceVersion to continue from."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        w: Any = _Watch()
        self._watches.append(w)

        def consume() -> None:
            try:
                for event in w.stream(
                    self._custom.list_cluster_custom_object,
                    res.group,
                    res.version,
                    res.plural,
                    resource_version=version,
                    timeout_seconds=self._watch_timeout_s,
                ):
                    loop.call_soon_threadsafe(queue.put_nowait, (event["type"], event["object"]))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = asyncio.create_task(asyncio.to_thread(consume))
        try:
            while (item := await queue.get()) is not None:
                kind, obj = item
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return await self._list(res)
                    raise RuleSourceError(f"watch error: {obj.get('message')}", source=res.plural)
                obj.setdefault("kind", res.kind)
                obj.setdefault("apiVersion", f"{res.group}/{res.version}")
                version = str(obj.get("metadata", {}).get("resourceVersion", version))
                if kind == "DELETED":
                    self._objects.pop(_key(res.kind, obj), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._objects[_key(res.kind, obj)] = obj
                await self._rebuild()
            try:
                await worker
            except ApiException as exc:
                if exc.status == 410:
                    return await self._list(res)
                raise RuleSourceError(
                    f"watch failed: {exc.status} {exc.reason}", source=res.plural
                ) from exc
            except (OSError, urllib3.exceptions.HTTPError, ValueError) as exc:
                # A dropped connection surfaces as urllib3's ProtocolError ("Response ended
                # prematurely"); a truncated line as a JSON ValueError. Both mean: relist.
                raise RuleSourceError(f"watch failed: {exc}", source=res.plural) from exc
            return version
        finally:
            await _stop_worker(w, worker)
            self._watches.remove(w)

    async def _rebuild(self) -> None:
        # RuntimeRules first (each on its own, ids checked against the ones before), so the
        # bindings and exceptions parsed after them can name them.
        rule_docs = [
            (key, self._objects[key]) for key in sorted(self._objects) if key[0] == RULES.kind
        ]
        rules: list[Rule] = []
        parts = []
        for _, obj in rule_docs:
            problems: list[Problem] = []
            found = parse_rules(
                [from_object(obj)],
                catalogue=self._catalogue.extended(rules),
                problems=problems,
            )
            rules.extend(found)
            parts.append(RuleSet(problems=tuple(problems), rules=found))
            errors = [p for p in problems if p.level is Level.ERROR]
            if errors:
                await self._report(obj, "; ".join(f"{p.field}: {p.message}" for p in errors))
        catalogue = self._catalogue.extended(rules)
        for key in sorted(self._objects):
            if key[0] == RULES.kind:
                continue
            obj = self._objects[key]
            part = parse_documents([from_object(obj)], catalogue=catalogue)
            parts.append(part)
            errors = [p for p in part.problems if p.level is Level.ERROR]
            if errors:
                await self._report(obj, "; ".join(f"{p.field}: {p.message}" for p in errors))
        self.ruleset = RuleSet.union(parts)
        if len(self._listed) == len(WATCHED):
            self.synced.set()
        self._on_update(self.ruleset)

    async def _report(self, obj: dict[str, Any], message: str) -> None:
        meta = obj.get("metadata", {})
        marker = (str(meta.get("uid", meta.get("name"))), str(meta.get("resourceVersion", "")))
        if marker in self._reported:
            return
        self._reported.add(marker)
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC)
        event = k8s_client.CoreV1Event(
            metadata=k8s_client.V1ObjectMeta(generate_name=f"{meta.get('name', 'rule')}."),
            involved_object=k8s_client.V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=obj.get("kind"),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=f"Invalid{obj.get('kind')}",
            message=message[:1024],
            type="Warning",
            source=k8s_client.V1EventSource(component=self._component),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            await asyncio.to_thread(self._core.create_namespaced_event, namespace, event)
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            log.error("cannot emit kubernetes event", object=meta.get("name"), error=str(exc))


#: How long a cancelled watch waits for its worker thread to notice. Watch.stop() shuts the
#: socket down, which unblocks the read at once; the grace only covers a stop that raced the
#: request being sent (the client resets its stop flag when a stream starts).
_STOP_GRACE_S = 2.0
#: How often stop() is repeated within the grace, to catch that race.
_STOP_RETRY_S = 0.05


async def _stop_worker(w: Any, worker: asyncio.Task[None]) -> None:
    """Stop a watch and wait (bounded) for its thread, so no task outlives the source."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STOP_GRACE_S
    w.stop()
    while not worker.done() and loop.time() < deadline:
        await asyncio.wait({worker}, timeout=_STOP_RETRY_S)
        w.stop()
    if not worker.done():
        # The thread ends at the server-side watch timeout at the latest.
        log.warning("watch worker still running after stop", grace_s=_STOP_GRACE_S)
        return
    if not worker.cancelled():
        worker.exception()  # retrieved here: the watch was abandoned, its error is moot


def _key(kind: str, obj: dict[str, Any]) -> ObjKey:
    meta = obj.get("metadata", {})
    return (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


async def create_exception(api_client: Any, body: dict[str, Any]) -> bool:
    """Create a `RuntimeAlertException` in its namespace (the console's "Allow this").

    Returns False when one of that name exists already (the suggestion's name is derived from
    the finding, so it was allowed before). Any other refusal or an unreachable server raises
    `RuleSourceError` with the status, so the caller shows one line, never a client exception.
    """
    namespace = str(body.get("metadata", {}).get("namespace") or "")
    custom: Any = k8s_client.CustomObjectsApi(api_client)
    try:
        await asyncio.to_thread(
            custom.create_namespaced_custom_object,
            EXCEPTIONS.group,
            EXCEPTIONS.version,
            namespace,
            EXCEPTIONS.plural,
            body,
        )
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise RuleSourceError(
            f"the API server refused it: {exc.status} {exc.reason}", source=EXCEPTIONS.plural
        ) from None
    except (OSError, urllib3.exceptions.HTTPError) as exc:
        raise RuleSourceError(
            f"the API server is unreachable: {exc}", source=EXCEPTIONS.plural
        ) from None
    return True
