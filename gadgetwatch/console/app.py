"""`gadgetwatch console`: the aiohttp application (routes, live view, ingestion).

Routes (all but the public ones need a login, see `security`):

- ``POST /api/v1/alerts``: the webhook exporter's body (one alert, or ``{"alerts": [...]}``),
  ``Authorization: Bearer <ingest token>``. Every alert is validated on its own: the valid ones
  are stored, the others counted by reason; 200 when anything was stored or everything was a
  duplicate, 400 when nothing in the body was valid (the exporter then drops the batch and
  counts it instead of retrying it for ever), 413 beyond `MAX_REQUEST`.
- ``GET /alerts`` (filters, incidents, chart, newest alerts), ``GET /alerts/{id}`` (detail),
  ``GET|POST /alerts/{id}/allow`` ("Allow this"), ``GET /events`` (server-sent events: new
  alerts matching the page's filters, as rendered rows).
- ``GET /profiles``, ``/profiles/{ns}/{name}``, ``/profiles/{ns}/{name}/{download}``,
  ``/profiles/diff?a=&b=``; ``GET /health``; ``GET /metrics`` (the console's own counters).
- ``GET /login``, ``POST /login``, ``POST /logout``, ``GET /healthz``, ``POST /csp-report``.

The live view: each open Alerts page holds one SSE connection with its filters; a new alert is
rendered once per matching subscriber and queued (bounded). A subscriber that does not keep up
loses messages, counted, and is told to reload, so a slow browser never holds memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog
from aiohttp import web

from detector.alerts import Severity
from gadgetwatch.console import allow as allowing
from gadgetwatch.console import health, pages
from gadgetwatch.console import profiles as profile_pages
from gadgetwatch.console.chart import fmt_time, histogram_svg
from gadgetwatch.console.html import Markup, escape, join, link, render
from gadgetwatch.console.security import (
    COOKIE,
    PRINCIPAL,
    SESSION_TTL_S,
    Auth,
    add_security_headers,
    auth_middleware,
)
from gadgetwatch.console.store import (
    AlertFilter,
    AlertStore,
    InvalidAlertError,
    Row,
    Summary,
    row_of,
)
from profiler.errors import NotFoundError, ProfilerError
from profiler.store import ProfileStore

log = structlog.get_logger(__name__)

#: Largest ingestion request: a batch of 64 agent alerts is well under 1 MiB (each alert's
#: strings are bounded by the agent); 8 MiB leaves room for larger batches from other senders.
MAX_REQUEST = 8 * 1024 * 1024
#: Most alerts in one ingestion body (the exporter's batchMaxAlerts is 1-500).
MAX_BATCH = 1000
#: Alerts listed on the Alerts page (newest first); older ones are reached by filtering.
PAGE_ALERTS = 100
#: Rendered rows waiting per live subscriber before it is told to reload.
LIVE_QUEUE = 200
#: Most live subscribers at once: each holds a connection and up to LIVE_QUEUE rendered rows
#: (~100 people watching is far beyond one cluster's security team).
MAX_SUBSCRIBERS = 100
#: Comment sent on an idle live stream so proxies keep it open.
KEEPALIVE_S = 15.0
#: CSP violation reports kept for the Health page (the count is kept in full).
MAX_CSP_REPORTS = 20
#: Largest CSP report accepted (a browser's is a few hundred bytes).
MAX_CSP_REPORT = 16 * 1024

STATIC = resources.files("gadgetwatch.console") / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(slots=True, eq=False)
class Subscriber:
    flt: AlertFilter
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(LIVE_QUEUE))
    overflowed: bool = False


@dataclass(slots=True)
class ConsoleState:
    store: AlertStore
    auth: Auth
    profiles: ProfileStore | None
    #: the API client exceptions are written with; None: "Allow this" offers a file instead
    kube_api: Any = None
    agent_metrics: tuple[str, ...] = ()
    #: metrics URLs whose host names stand for every agent (each address is scraped)
    agent_discovery: tuple[str, ...] = ()
    retention_interval_s: float = 60.0
    subscribers: set[Subscriber] = field(default_factory=set)
    live_skipped: int = 0
    csp_reports: int = 0
    csp_recent: list[str] = field(default_factory=list)
    allowed: dict[str, int] = field(default_factory=dict)


STATE = web.AppKey("state", ConsoleState)


def _state(request: web.Request) -> ConsoleState:
    return request.app[STATE]


def _page(request: web.Request, title: str, body: Markup, active: str = "") -> web.Response:
    state = _state(request)
    html = pages.page(
        title,
        body,
        csrf=state.auth.csrf_token(request),
        principal=request.get(PRINCIPAL, ""),
        active=active,
        insecure=state.auth.disabled,
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    response = _page(
        request, title, render('<h1>{t}</h1><p class="error">{m}</p>', t=title, m=message)
    )
    response.set_status(status)
    return response


# -- ingestion ------------------------------------------------------------------------------


async def ingest(request: web.Request) -> web.Response:
    state = _state(request)
    if not state.auth.check_ingest(request):
        state.store.reject("unauthorized")
        raise web.HTTPUnauthorized(text="ingest token required\n")
    try:
        body = orjson.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        state.store.reject("too_large")
        raise
    except orjson.JSONDecodeError:
        state.store.reject("json")
        raise web.HTTPBadRequest(text="body: not JSON\n") from None
    alerts = body.get("alerts") if isinstance(body, dict) and "alerts" in body else [body]
    if not isinstance(alerts, list) or len(alerts) > MAX_BATCH:
        state.store.reject("batch")
        raise web.HTTPBadRequest(text=f"alerts: expected a list of at most {MAX_BATCH}\n")
    rows: list[Row] = []
    problems: list[str] = []
    for index, alert in enumerate(alerts):
        try:
            rows.append(row_of(alert))
        except InvalidAlertError as exc:
            reason = str(exc).split(":", 1)[0]
            state.store.reject(reason)
            problems.append(f"alerts[{index}]: {exc}")
    if not rows:
        raise web.HTTPBadRequest(text="".join(f"{p}\n" for p in problems) or "no alerts\n")
    result = await state.store.ingest(rows)
    for row in result.rows:
        _publish(state, row)
    return web.json_response(
        {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": problems}
    )


def _summary_of(row: Row) -> Summary:
    return Summary(
        seq=0,
        id=row.id,
        time_ns=row.time_ns,
        namespace=row.namespace,
        workload_kind=row.workload_kind,
        workload_name=row.workload_name,
        container=row.container,
        rule_id=row.rule_id,
        rule_name=row.rule_name,
        severity=row.severity,
        message=row.message,
        dedup_count=row.dedup_count,
        deliveries=1,
        node=row.node,
    )


def _publish(state: ConsoleState, row: Row) -> None:
    html: str | None = None
    for sub in state.subscribers:
        if not sub.flt.matches(row):
            continue
        if html is None:
            html = pages.alert_row(_summary_of(row))
        try:
            sub.queue.put_nowait(html)
        except asyncio.QueueFull:
            state.live_skipped += 1
            sub.overflowed = True


# -- alerts ---------------------------------------------------------------------------------


def _parse_local(text: str) -> int:
    """An ``<input type=datetime-local>`` value, read as UTC, to ns (0 when empty/invalid)."""
    if not text:
        return 0
    try:
        moment = dt.datetime.fromisoformat(text[:19]).replace(tzinfo=dt.UTC)
    except ValueError:
        return 0
    return int(moment.timestamp()) * 1_000_000_000


def _filter(query: Any) -> AlertFilter:
    severity = query.get("severity", "")
    try:
        min_sev = int(Severity.parse(severity)) if severity else 0
    except ValueError:
        min_sev = 0
    return AlertFilter(
        namespace=query.get("namespace", "")[:256],
        workload=query.get("workload", "")[:256],
        rule=query.get("rule", "")[:64],
        min_severity=min_sev,
        since_ns=_parse_local(query.get("since", "")),
        until_ns=_parse_local(query.get("until", "")),
    )


async def alerts_page(request: web.Request) -> web.Response:
    state = _state(request)
    query = {k: v for k, v in request.query.items() if isinstance(v, str)}
    flt = _filter(query)
    window = query.get("window", pages.DEFAULT_WINDOW)
    if window not in pages.WINDOWS:
        window = pages.DEFAULT_WINDOW
    before = _cursor(query.get("before", ""))
    recent, total, incidents, hist, facets = await asyncio.gather(
        state.store.recent(flt, limit=PAGE_ALERTS, before=before),
        state.store.count(flt),
        state.store.incidents(flt, window_ns=pages.window_ns(window)),
        state.store.histogram(flt),
        state.store.facets(),
    )
    live = {k: v for k, v in query.items() if k in ("namespace", "workload", "rule", "severity",
                                                     "since", "until") and v}  # fmt: skip
    # An older page is history: no live rows on top of it.
    stream = "" if before else "/events" + (f"?{urlencode(live)}" if live else "")
    windows = join(
        render(
            '<a href="{h}" class="{c}">{w}</a>',
            h="/alerts?" + urlencode({**query, "window": w}),
            w=w,
            c="on" if w == window else "",
        )
        for w in pages.WINDOWS
    )
    body = render(
        "<h1>Alerts</h1>{filters}"
        '<section><h2>Over time, by severity</h2>{chart}<p class="legend">{legend}</p></section>'
        '<section><h2>Incidents <span class="muted">(workload + {window} window; '
        'window:</span> {windows}<span class="muted">)</span></h2>{incidents}</section>'
        '<section><h2>Alerts <span class="muted" id="total">{total} matching, newest {shown} '
        'shown</span> <span id="live-state" class="muted">live: connecting</span> '
        '<span id="live-count" class="muted"></span></h2>{table}{older}</section>',
        filters=pages.filter_form(facets, query),
        chart=histogram_svg(*hist),
        legend=join(pages.severity_badge(int(s)) for s in Severity),
        window=window,
        windows=windows,
        incidents=pages.incidents_table(incidents, window),
        total=total,
        shown=len(recent),
        table=pages.alert_table(recent, stream),
        older=(
            render(
                '<p class="paging">{a}</p>',
                a=link(
                    "/alerts?"
                    + urlencode({**query, "before": f"{recent[-1].time_ns}:{recent[-1].seq}"}),
                    f"Older than these {len(recent)} →",
                    cls="older",
                ),
            )
            if len(recent) == PAGE_ALERTS
            else Markup("")
        ),
    )
    return _page(request, "Alerts", body, "alerts")


def _cursor(text: str) -> tuple[int, int] | None:
    """The ``before=TIME:SEQ`` paging cursor, or None (absent or malformed: the first page)."""
    time_text, _, seq_text = text.partition(":")
    if not time_text.isdigit() or not seq_text.isdigit():
        return None
    return int(time_text), int(seq_text)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return ""
        data = data.get(key, "")
    return data


async def alert_page(request: web.Request) -> web.Response:
    state = _state(request)
    found = await state.store.get(request.match_info["id"])
    if found is None:
        return _error_page(request, 404, "Alert", "No such alert (it may have expired).")
    alert, deliveries, received_ns = found
    fingerprint = str(alert.get("fingerprint") or "")
    n_alerts, occurrences, first, last = await state.store.finding(fingerprint)
    rule = _get(alert, "rule")
    k8s = _get(alert, "kubernetes")
    proc = _get(alert, "process")
    event = _get(alert, "event")
    dedup = _get(alert, "dedup")
    profile = alert.get("profile")
    sev = str(_get(rule, "severity"))
    try:
        sev_badge = pages.severity_badge(int(Severity.parse(sev)))
    except ValueError:
        sev_badge = escape(sev)
    summary = pages.kv_table(
        [
            ("Rule", render("{i} {n} {b}", i=_get(rule, "id"), n=_get(rule, "name"), b=sev_badge)),
            ("Message", pages.value_block(alert.get("message", ""))),
            ("Time", str(alert.get("time", ""))),
            ("Cluster / node", f"{alert.get('cluster') or '-'} / {_get(k8s, 'node') or '-'}"),
            ("Namespace", _get(k8s, "namespace") or "-"),
            (
                "Workload",
                pages.workload_text(str(_get(k8s, "workloadKind")), str(_get(k8s, "workloadName"))),
            ),
            ("Pod / container", f"{_get(k8s, 'pod') or '-'} / {_get(k8s, 'container') or '-'}"),
            ("Image", pages.value_block(_get(alert, "runtime", "image") or "-")),
            (
                "MITRE ATT&CK",
                render(
                    "tactic {t} · technique {q}",
                    t=pages.mitre_link(str(_get(rule, "mitre", "tactic"))),
                    q=pages.mitre_link(str(_get(rule, "mitre", "technique"))),
                ),
            ),
            (
                "Profile",
                (
                    render(
                        "{n} ({s})",
                        n=_profile_link(str(_get(k8s, "namespace")), str(profile.get("name", ""))),
                        s=profile.get("status", ""),
                    )
                    if isinstance(profile, dict)
                    else "none"
                ),
            ),
        ],
        cls="kv alert-summary",
    )
    process = pages.kv_table(
        [
            ("PID", _get(proc, "pid")),
            ("Command", pages.value_block(_get(proc, "comm"))),
            ("Executable", pages.value_block(_get(proc, "exe") or "-")),
            ("Arguments", pages.args_block(_get(proc, "args") or [])),
            ("Working directory", pages.value_block(_get(proc, "cwd") or "-")),
            ("UID / GID", f"{_get(proc, 'uid')} / {_get(proc, 'gid')}"),
        ],
        cls="kv process",
    )
    parent = pages.kv_table(
        [
            ("PPID", _get(proc, "ppid")),
            ("Command", pages.value_block(_get(proc, "pcomm") or "-")),
            ("Executable", pages.value_block(_get(event, "parentExe") or "-")),
        ],
        cls="kv parent",
    )
    event_table = pages.kv_table(
        [
            (str(k), pages.value_block(v))
            for k, v in (event.items() if isinstance(event, dict) else [])
        ],
        cls="kv event",
    )
    dedup_table = pages.kv_table(
        [
            ("Occurrences in this alert", _get(dedup, "count")),
            ("First / last seen", f"{_get(dedup, 'firstSeen')} / {_get(dedup, 'lastSeen')}"),
            ("Deliveries received", deliveries),
            ("Received", fmt_time(received_ns)),
            (
                "This finding",
                render(
                    "{n} alerts, {o} occurrences, {f} to {l} (fingerprint {fp})",
                    n=n_alerts,
                    o=occurrences,
                    f=fmt_time(first) if first else "-",
                    l=fmt_time(last) if last else "-",
                    fp=fingerprint or "-",
                ),
            ),
        ],
        cls="kv dedup",
    )
    suggestion = str(alert.get("fixSuggestion") or "")
    can_allow = allowing.suggestion_document(suggestion) is not None
    allow_button = (
        render(
            '<p><a class="button" id="allow" href="/alerts/{id}/allow">Allow this…</a></p>',
            id=str(alert.get("id", "")),
        )
        if can_allow
        else Markup("")
    )
    body = render(
        '<h1 class="alert-title">{rid} {name}</h1>{summary}<h2>Process</h2>{process}'
        "<h2>Parent</h2>{parent}<h2>Event</h2>{event}<h2>Deduplication</h2>{dedup}"
        '<h2>Fix suggestion</h2><pre class="snippet" id="fix">{fix}</pre>{allow}',
        rid=_get(rule, "id"),
        name=_get(rule, "name"),
        summary=summary,
        process=process,
        parent=parent,
        event=event_table,
        dedup=dedup_table,
        fix=suggestion or "-",
        allow=allow_button,
    )
    return _page(request, f"Alert {_get(rule, 'id')}", body, "alerts")


def _profile_link(namespace: str, name: str) -> Markup:
    if not name:
        return escape("-")
    return link(f"/profiles/{namespace or profile_pages.HOST_NS}/{name}", name)


async def allow_page(request: web.Request) -> web.Response:
    state = _state(request)
    alert_id = request.match_info["id"]
    found = await state.store.get(alert_id)
    if found is None:
        return _error_page(request, 404, "Allow", "No such alert (it may have expired).")
    alert = found[0]
    suggestion = str(alert.get("fixSuggestion") or "")
    doc = allowing.suggestion_document(suggestion)
    if doc is None:
        return _error_page(
            request, 400, "Allow", "This alert's fix suggestion is not a RuntimeAlertException."
        )
    reason = str(doc["spec"].get("reason", ""))
    return _page(request, "Allow", _allow_form(request, alert_id, suggestion, reason, ""), "alerts")


def _allow_form(
    request: web.Request, alert_id: str, suggestion: str, reason: str, error: str
) -> Markup:
    state = _state(request)
    doc = allowing.suggestion_document(suggestion) or {}
    namespace = str(_get(doc, "metadata", "namespace") or "")
    if state.kube_api is not None and namespace:
        where = render(
            "It will be created in namespace <strong>{ns}</strong> through the Kubernetes API; "
            "agents watching exceptions apply it within seconds.",
            ns=namespace,
        )
    else:
        where = Markup(
            "It will be downloaded as a file: apply it with <code>kubectl apply -f</code> or "
            "pass it to <code>gadgetwatch run --exceptions</code>."
        )
    return render(
        "<h1>Allow this behaviour</h1>{error}<p>The alert's suggested exception (the reason "
        'below replaces the one in it). {where}</p><pre class="snippet" id="snippet">{s}</pre>'
        '<form method="post" action="/alerts/{id}/allow" id="allow-form">'
        '<input type="hidden" name="csrf" value="{csrf}">'
        '<label>Reason (why this is expected) <textarea name="reason" id="reason" rows="3" '
        'maxlength="{max}" required>{reason}</textarea></label>'
        '<label class="confirm"><input type="checkbox" name="confirm" value="yes" id="confirm" '
        "required> I reviewed the exception: this behaviour is expected for this workload.</label>"
        '<button type="submit" id="allow-submit">Allow</button> '
        '<a href="/alerts/{id}">Cancel</a></form>',
        error=render('<p class="error" id="allow-error">{e}</p>', e=error) if error else Markup(""),
        where=where,
        s=suggestion,
        id=alert_id,
        csrf=state.auth.csrf_token(request),
        max=allowing.MAX_REASON,
        reason=reason,
    )


async def allow_submit(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    form = await request.post()
    if not state.auth.check_csrf(request, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page\n")
    alert_id = request.match_info["id"]
    found = await state.store.get(alert_id)
    if found is None:
        return _error_page(request, 404, "Allow", "No such alert (it may have expired).")
    suggestion = str(found[0].get("fixSuggestion") or "")
    reason = str(form.get("reason", ""))
    if form.get("confirm") != "yes":
        body = _allow_form(request, alert_id, suggestion, reason, "Tick the confirmation first.")
        return _page(request, "Allow", body, "alerts")
    try:
        allowed = allowing.allowance(suggestion, reason)
        if state.kube_api is not None and allowed.namespace:
            outcome = await allowing.create_in_cluster(state.kube_api, allowed)
        else:
            outcome = "download"
    except allowing.AllowError as exc:
        response = _page(
            request, "Allow", _allow_form(request, alert_id, suggestion, reason, str(exc)), "alerts"
        )
        response.set_status(400 if "refused" not in str(exc) else 502)
        return response
    state.allowed[outcome] = state.allowed.get(outcome, 0) + 1
    log.info(
        "exception written",
        outcome=outcome,
        name=allowed.name,
        namespace=allowed.namespace,
        by=request.get(PRINCIPAL, ""),
    )
    if outcome == "download":
        return web.Response(
            text=allowed.yaml(),
            content_type="application/yaml",
            headers={"Content-Disposition": f'attachment; filename="{allowed.name}.yaml"'},
        )
    message = (
        "Created RuntimeAlertException"
        if outcome == "created"
        else "This finding was already allowed: RuntimeAlertException exists"
    )
    body = render(
        '<h1>Allowed</h1><p id="allow-result">{m} {ns}/{n}.</p><pre class="snippet">{y}</pre>'
        '<p><a href="/alerts/{id}">Back to the alert</a></p>',
        m=message,
        ns=allowed.namespace,
        n=allowed.name,
        y=allowed.yaml(),
        id=alert_id,
    )
    return _page(request, "Allowed", body, "alerts")


# -- live view ------------------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    if len(state.subscribers) >= MAX_SUBSCRIBERS:
        raise web.HTTPServiceUnavailable(text="too many live viewers\n")
    sub = Subscriber(_filter(request.query))
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    state.subscribers.add(sub)
    try:
        await response.write(b"event: ready\ndata: ok\n\n")
        while True:
            try:
                html = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            data = "".join(f"data: {line}\n" for line in html.split("\n"))
            await response.write(f"event: alert\n{data}\n".encode())
            if sub.overflowed and sub.queue.empty():
                sub.overflowed = False
                await response.write(b"event: overflow\ndata: reload\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.subscribers.discard(sub)
    return response


# -- profiles -------------------------------------------------------------------------------


def _profiles(request: web.Request) -> ProfileStore:
    store = _state(request).profiles
    if store is None:
        raise web.HTTPNotFound(text="no profile store configured\n")
    return store


async def profiles_page(request: web.Request) -> web.Response:
    store = _profiles(request)
    try:
        found, errors = await store.list(None)
    except ProfilerError as exc:
        return _page(request, "Profiles", profile_pages.error_body(str(exc)), "profiles")
    found.sort(key=lambda p: (p.key.namespace, p.name))
    return _page(request, "Profiles", profile_pages.list_body(found, errors), "profiles")


async def profile_page(request: web.Request) -> web.Response:
    store = _profiles(request)
    try:
        profile = await profile_pages.find(
            store, request.match_info["ns"], request.match_info["name"]
        )
    except NotFoundError as exc:
        return _error_page(request, 404, "Profile", str(exc))
    except ProfilerError as exc:
        return _error_page(request, 502, "Profile", str(exc))
    return _page(request, "Profile", profile_pages.detail_body(profile, store.name), "profiles")


async def profile_download(request: web.Request) -> web.StreamResponse:
    store = _profiles(request)
    try:
        profile = await profile_pages.find(
            store, request.match_info["ns"], request.match_info["name"]
        )
        body, ctype, filename = profile_pages.download(
            profile, request.match_info["what"], force=request.query.get("force") == "1"
        )
    except NotFoundError as exc:
        return _error_page(request, 404, "Download", str(exc))
    except ProfilerError as exc:
        return _error_page(request, 409, "Download", str(exc))
    return web.Response(
        text=body,
        content_type=ctype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def diff_page(request: web.Request) -> web.Response:
    store = _profiles(request)
    refs = [request.query.get("a", ""), request.query.get("b", "")]
    found = []
    for ref in refs:
        ns, sep, name = ref.partition("/")
        if not sep or not name:
            return _error_page(request, 400, "Diff", "Pick two profiles (NAMESPACE/NAME).")
        try:
            found.append(await profile_pages.find(store, ns, name))
        except NotFoundError as exc:
            return _error_page(request, 404, "Diff", str(exc))
        except ProfilerError as exc:
            return _error_page(request, 502, "Diff", str(exc))
    return _page(request, "Diff", profile_pages.diff_body(found[0], found[1]), "profiles")


# -- health ---------------------------------------------------------------------------------


async def health_page(request: web.Request) -> web.Response:
    state = _state(request)
    agents, nodes, total = await asyncio.gather(
        health.scrape_all(state.agent_metrics, state.agent_discovery),
        state.store.by_node(),
        state.store.count(AlertFilter()),
    )
    stats = state.store.stats
    own = pages.kv_table(
        [
            ("Alerts stored", total),
            ("Alerts accepted", stats.accepted),
            ("Duplicate deliveries", stats.duplicates),
            ("Rejected, by reason", _by_reason(stats.rejected)),
            ("Expired by retention", _by_reason(stats.expired)),
            ("Live viewers", len(state.subscribers)),
            ("Live rows skipped (slow viewers)", state.live_skipped),
            ("Exceptions written", _by_reason(state.allowed)),
            ("CSP violation reports", state.csp_reports),
        ],
        cls="kv own",
    )
    node_rows = join(
        render(
            '<tr><td>{c}</td><td>{n}</td><td class="num">{a}</td><td>{t}</td></tr>',
            c=c or "-",
            n=n or "-",
            a=a,
            t=fmt_time(t),
        )
        for c, n, a, t in nodes
    )
    agent_parts = []
    for agent in agents:
        if agent.error:
            agent_parts.append(
                render(
                    '<section class="agent"><h3>{u}</h3><p class="error">{e}</p></section>',
                    u=agent.url,
                    e=agent.error,
                )
            )
            continue
        agent_parts.append(
            render(
                '<section class="agent"><h3>{u}</h3>{t}</section>',
                u=agent.url,
                t=pages.kv_table(
                    [(label, _by_reason(values)) for label, values in agent.figures.items()],
                    cls="kv agent-figures",
                ),
            )
        )
    body = render(
        "<h1>Health</h1><h2>Agents</h2>{agents}<h2>Received, by node</h2>"
        '<table class="nodes"><thead><tr><th>Cluster</th><th>Node</th><th class="num">Alerts'
        "</th><th>Last received</th></tr></thead><tbody>{nodes}</tbody></table>"
        "<h2>This console</h2>{own}",
        agents=join(agent_parts)
        if agent_parts
        else Markup(
            '<p class="muted">No agent metrics URLs configured '
            "(--agent-metrics, --agent-metrics-dns).</p>"
        ),
        nodes=node_rows,
        own=own,
    )
    return _page(request, "Health", body, "health")


def _by_reason(values: dict[str, Any]) -> str:
    if not values:
        return "0"
    return ", ".join(
        f"{k or 'total'} {v:g}" if isinstance(v, float) else f"{k or 'total'} {v}"
        for k, v in sorted(values.items())
    )


async def metrics(request: web.Request) -> web.Response:
    state = _state(request)
    stats = state.store.stats
    lines = [
        "# HELP gadgetwatch_console_alerts_accepted_total Alerts stored.",
        "# TYPE gadgetwatch_console_alerts_accepted_total counter",
        f"gadgetwatch_console_alerts_accepted_total {stats.accepted}",
        "# HELP gadgetwatch_console_alerts_duplicate_total Repeated deliveries of a stored id.",
        "# TYPE gadgetwatch_console_alerts_duplicate_total counter",
        f"gadgetwatch_console_alerts_duplicate_total {stats.duplicates}",
        "# HELP gadgetwatch_console_alerts_rejected_total Alerts refused at ingestion.",
        "# TYPE gadgetwatch_console_alerts_rejected_total counter",
        *(
            f'gadgetwatch_console_alerts_rejected_total{{reason="{_label(r)}"}} {n}'
            for r, n in sorted(stats.rejected.items())
        ),
        "# HELP gadgetwatch_console_alerts_expired_total Alerts deleted by retention.",
        "# TYPE gadgetwatch_console_alerts_expired_total counter",
        *(
            f'gadgetwatch_console_alerts_expired_total{{reason="{r}"}} {n}'
            for r, n in sorted(stats.expired.items())
        ),
        "# HELP gadgetwatch_console_live_skipped_total Live rows not sent to slow viewers.",
        "# TYPE gadgetwatch_console_live_skipped_total counter",
        f"gadgetwatch_console_live_skipped_total {state.live_skipped}",
        "# HELP gadgetwatch_console_csp_reports_total Content-Security-Policy violation reports.",
        "# TYPE gadgetwatch_console_csp_reports_total counter",
        f"gadgetwatch_console_csp_reports_total {state.csp_reports}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def _label(value: str) -> str:
    return "".join(c if c.isalnum() or c in "._[]-" else "_" for c in value)[:64]


async def csp_report(request: web.Request) -> web.Response:
    state = _state(request)
    body = await request.content.read(MAX_CSP_REPORT)
    state.csp_reports += 1
    state.csp_recent = [
        *state.csp_recent[-(MAX_CSP_REPORTS - 1) :],
        body.decode("utf-8", "replace"),
    ]
    log.warning(
        "content security policy violation reported", report=body[:2048].decode("utf-8", "replace")
    )
    return web.Response(status=204)


# -- login ----------------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path of this site: no scheme, no ``//host`` (no open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/alerts"


async def login_page(request: web.Request) -> web.Response:
    state = _state(request)
    html = pages.login_page(
        csrf=state.auth.csrf_token(request),
        next_url=_safe_next(request.query.get("next", "/alerts")),
        error="",
        users=bool(state.auth.users),
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def login_submit(request: web.Request) -> web.Response:
    state = _state(request)
    form = await request.post()
    next_url = _safe_next(str(form.get("next", "/alerts")))
    if not state.auth.check_csrf(request, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the login page\n")
    who = state.auth.check_login(str(form.get("user", "")), str(form.get("secret", "")))
    if who is None:
        log.warning("console login failed", remote=request.remote)
        html = pages.login_page(
            csrf=state.auth.csrf_token(request),
            next_url=next_url,
            error="Wrong token or password.",
            users=bool(state.auth.users),
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8", status=401)
    response = web.Response(status=303, headers={"Location": next_url})
    response.set_cookie(
        COOKIE,
        state.auth.new_session(who),
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=state.auth.secure_cookie,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    state = _state(request)
    form = await request.post()
    if not state.auth.check_csrf(request, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="CSRF token missing or wrong\n")
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(COOKIE, path="/")
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/alerts")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    suffix = Path(name).suffix
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
        raise web.HTTPNotFound()
    item = STATIC / name
    if not item.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=item.read_bytes(),
        content_type=STATIC_TYPES[suffix],
        headers={"Cache-Control": "max-age=300"},
    )


# -- the application ------------------------------------------------------------------------


async def _retention(state: ConsoleState) -> None:
    while True:
        try:
            removed = await state.store.enforce_retention()
            if any(removed.values()):
                log.info("alerts expired", **removed)
        except Exception as exc:  # the page keeps working; retention retries next period
            log.error("retention failed", error=str(exc))
        await asyncio.sleep(state.retention_interval_s)


def build_app(state: ConsoleState) -> web.Application:
    app = web.Application(middlewares=[auth_middleware(state.auth)], client_max_size=MAX_REQUEST)
    # On prepare, not in a middleware: streamed answers (the live view) send their headers
    # before a middleware would see the response, and error answers must carry them too.
    app.on_response_prepare.append(add_security_headers)
    app[STATE] = state
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/{name}", static)
    app.router.add_post("/csp-report", csp_report)
    app.router.add_post("/api/v1/alerts", ingest)
    app.router.add_get("/alerts", alerts_page)
    app.router.add_get("/alerts/{id}", alert_page)
    app.router.add_get("/alerts/{id}/allow", allow_page)
    app.router.add_post("/alerts/{id}/allow", allow_submit)
    app.router.add_get("/events", events)
    app.router.add_get("/profiles", profiles_page)
    app.router.add_get("/profiles/diff", diff_page)
    app.router.add_get("/profiles/{ns}/{name}", profile_page)
    app.router.add_get("/profiles/{ns}/{name}/{what}", profile_download)
    app.router.add_get("/health", health_page)
    app.router.add_get("/metrics", metrics)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await state.store.open()
        task = asyncio.create_task(_retention(state), name="console-retention")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await state.store.close()
        if state.profiles is not None:
            await state.profiles.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app
