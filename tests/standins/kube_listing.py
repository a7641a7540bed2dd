"""List and watch responses: selectors, pagination, resourceVersion semantics, the watch stream.

List: `resourceVersion` unset or "0" answers from current state (the stand-in has only one
state, which is always "not older than" any version it has handed out); with
`resourceVersionMatch=Exact` an old version is 410 Gone, as a compacted etcd answers. `limit`
and `continue` paginate over a snapshot key order.

Watch: a chunked HTTP response of JSON lines `{"type": ..., "object": ...}`. From no
resourceVersion (or "0") the current matching objects come first as synthetic ADDED events; from
a given one, the retained history after it; too old → a single ERROR event carrying a 410
`Status` (HTTP status stays 200, as on the real server). The stream ends at `timeoutSeconds`
(after a BOOKMARK when `allowWatchBookmarks=true`), when the server goes down, or when the
watcher falls too far behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

from aiohttp import web

from tests.standins.kube_resources import ResourceType
from tests.standins.kube_rest import Rest
from tests.standins.kube_selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from tests.standins.kube_status import StatusError, gone
from tests.standins.kube_store import Watcher


def _selectors(rtype: ResourceType, query: Any) -> tuple[Any, Any]:
    try:
        return (
            parse_label_selector(query.get("labelSelector")),
            parse_field_selector(query.get("fieldSelector"), resource=rtype.plural),
        )
    except SelectorError as exc:
        raise StatusError(400, str(exc)) from exc


def list_objects(
    rest: Rest, rtype: ResourceType, namespace: str | None, query: Any
) -> dict[str, Any]:
    labels, fields = _selectors(rtype, query)
    rv_param = query.get("resourceVersion", "")
    exact = query.get("resourceVersionMatch") == "Exact"
    if exact and rv_param not in ("", "0") and int(rv_param) != rest.store.rv:
        raise gone(f"too old resource version: {rv_param} ({rest.store.rv})")
    items = []
    for obj in rest.store.items((rtype.group, rtype.plural), namespace):
        meta = obj.get("metadata") or {}
        if labels(meta.get("labels") or {}) and fields(obj):
            item = rest._present(rtype, obj)
            if not rtype.custom:
                # Typed lists carry kind/apiVersion once, at the top, not on each item.
                item.pop("kind", None)
                item.pop("apiVersion", None)
            items.append(item)
    list_rv = str(rest.store.rv)
    start = 0
    token = query.get("continue")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            start, list_rv = int(decoded["start"]), str(decoded["rv"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StatusError(400, "continue key is not valid") from exc
    meta_out: dict[str, Any] = {"resourceVersion": list_rv}
    limit = int(query.get("limit") or 0)
    if limit > 0:
        end = start + limit
        if end < len(items):
            meta_out["continue"] = base64.urlsafe_b64encode(
                json.dumps({"start": end, "rv": list_rv}).encode()
            ).decode()
            meta_out["remainingItemCount"] = len(items) - end
        items = items[start:end]
    elif start:
        items = items[start:]
    return {
        "kind": f"{rtype.kind}List",
        "apiVersion": rtype.api_version,
        "metadata": meta_out,
        "items": items,
    }


async def watch_objects(
    request: web.Request,
    rest: Rest,
    rtype: ResourceType,
    namespace: str | None,
    *,
    default_timeout: float,
) -> web.StreamResponse:
    query = request.query
    labels, fields = _selectors(rtype, query)
    watcher = Watcher((rtype.group, rtype.plural), namespace, labels, fields)
    # Subscribing and reading the snapshot/history happen without an await in between, so no
    # write can fall between the two (everything runs on one event loop).
    rest.store.subscribe(watcher)
    initial: list[dict[str, Any]] = []
    rv_param = query.get("resourceVersion", "")
    if rv_param in ("", "0"):
        for obj in rest.store.items((rtype.group, rtype.plural), namespace):
            if watcher.matches(obj):
                initial.append({"type": "ADDED", "object": rest._present(rtype, obj)})
    else:
        try:
            since = int(rv_param)
        except ValueError as exc:
            rest.store.unsubscribe(watcher)
            raise StatusError(400, f"invalid resource version: {rv_param}") from exc
        events = rest.store.events_since((rtype.group, rtype.plural), since)
        if events is None:
            status = gone(f"too old resource version: {since} ({rest.store.compacted_rv})")
            initial.append({"type": "ERROR", "object": status.body()})
        else:
            for event in events:
                item = watcher.translate(event)
                if item is not None:
                    initial.append({"type": item[0], "object": rest._present(rtype, item[1])})
    timeout = float(query.get("timeoutSeconds") or default_timeout)
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        for line in initial:
            await response.write(json.dumps(line).encode() + b"\n")
        if any(e["type"] == "ERROR" for e in initial):
            return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if bookmarks:
                    mark = {
                        "kind": rtype.kind,
                        "apiVersion": rtype.api_version,
                        "metadata": {"resourceVersion": str(rest.store.rv)},
                    }
                    await response.write(
                        json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n"
                    )
                break
            try:
                item = await asyncio.wait_for(watcher.queue.get(), timeout=remaining)
            except TimeoutError:
                continue
            if item is None or watcher.overflowed:
                break
            line = {"type": item[0], "object": rest._present(rtype, item[1])}
            await response.write(json.dumps(line).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
    except ConnectionError:
        pass
    finally:
        rest.store.unsubscribe(watcher)
    return response
