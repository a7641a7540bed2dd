"""The console's HTML: the page frame and the pieces each page is built from.

Everything here goes through `gadgetwatch.console.html` (values escaped unless `Markup`). No
inline script or style anywhere: behaviour is in /static/console.js, looks in
/static/console.css, both served by the console itself (the Content-Security-Policy forbids
everything else).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from detector.alerts import Severity
from gadgetwatch.console.chart import fmt_time
from gadgetwatch.console.html import Markup, clip, escape, join, link, render
from gadgetwatch.console.store import Incident, Summary

SEVERITIES = [s.label for s in Severity]


def severity_badge(sev: int) -> Markup:
    label = Severity(sev).label if 1 <= sev <= 5 else "?"
    return render('<span class="badge sev-{s}">{label}</span>', s=sev, label=label)


def page(
    title: str,
    body: Markup,
    *,
    csrf: str,
    principal: str,
    active: str = "",
    insecure: bool = False,
) -> Markup:
    nav = join(
        render('<a href="{h}" class="{c}">{t}</a>', h=href, t=text, c="on" if key == active else "")
        for key, href, text in (
            ("alerts", "/alerts", "Alerts"),
            ("profiles", "/profiles", "Profiles"),
            ("health", "/health", "Health"),
        )
    )
    banner = (
        Markup(
            '<div class="insecure">Authentication is OFF (--insecure-no-auth): anyone who '
            "can reach this address can read alerts and write exceptions.</div>"
        )
        if insecure
        else Markup("")
    )
    logout = (
        render(
            '<form method="post" action="/logout" class="logout">'
            '<input type="hidden" name="csrf" value="{csrf}">'
            '<span class="muted">{who}</span> <button type="submit">Log out</button></form>',
            csrf=csrf,
            who=principal,
        )
        if principal and principal != "anonymous"
        else Markup("")
    )
    return render(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} · gadgetwatch</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script>'
        "</head><body>{banner}<header><strong>gadgetwatch</strong> <nav>{nav}</nav>{logout}"
        "</header><main>{body}</main></body></html>\n",
        title=title,
        banner=banner,
        nav=nav,
        logout=logout,
        body=body,
    )


def login_page(*, csrf: str, next_url: str, error: str, users: bool) -> Markup:
    user_field = (
        Markup('<label>User <input name="user" autocomplete="username"></label>')
        if users
        else Markup("")
    )
    return render(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>Log in · gadgetwatch</title>'
        '<link rel="stylesheet" href="/static/console.css"></head><body><main class="login">'
        "<h1>gadgetwatch console</h1>{error}"
        '<form method="post" action="/login">'
        '<input type="hidden" name="csrf" value="{csrf}">'
        '<input type="hidden" name="next" value="{next}">{user}'
        '<label>Token or password <input type="password" name="secret" id="secret" '
        'autocomplete="current-password"></label>'
        '<button type="submit" id="login">Log in</button></form></main></body></html>\n',
        error=render('<p class="error">{e}</p>', e=error) if error else Markup(""),
        csrf=csrf,
        next=next_url,
        user=user_field,
    )


# -- alerts -------------------------------------------------------------------------------


def workload_text(kind: str, name: str) -> str:
    return f"{kind}/{name}" if kind else name or "-"


def alert_row(a: Summary) -> Markup:
    """One row of the alert list; the live view inserts the same HTML (server-sent)."""
    return render(
        '<tr class="alert-row" data-id="{id}"><td class="time">{time}</td><td>{sev}</td>'
        '<td class="rule">{rule}</td><td class="ns">{ns}</td><td class="wl">{wl}</td>'
        '<td class="msg">{msg}</td><td class="num">{count}</td></tr>',
        id=a.id,
        time=fmt_time(a.time_ns),
        sev=severity_badge(a.severity),
        rule=link(f"/alerts/{a.id}", a.rule_id or "?", cls="open-alert"),
        ns=clip(a.namespace or "-", 63),
        wl=clip(workload_text(a.workload_kind, a.workload_name), 80),
        msg=clip(a.message),
        count=a.dedup_count,
    )


def alert_table(rows: Sequence[Summary], stream_url: str) -> Markup:
    return render(
        '<table class="alerts" id="alerts" data-stream="{stream}"><thead><tr><th class="time">'
        'Time</th><th class="sevcol">Severity</th><th class="rule">Rule</th><th class="ns">'
        'Namespace</th><th class="wl">Workload</th><th>Message</th><th class="num">Count</th>'
        '</tr></thead><tbody id="alert-rows">{rows}</tbody></table>',
        stream=stream_url,
        rows=join(alert_row(r) for r in rows),
    )


def _select(name: str, values: Iterable[str], current: str, empty: str) -> Markup:
    options = [render('<option value="">{e}</option>', e=empty)]
    for value in values:
        options.append(
            render(
                '<option value="{v}"{sel}>{t}</option>',
                v=value,
                t=clip(value or "(none)", 60),
                sel=Markup(" selected") if value == current else Markup(""),
            )
        )
    return render(
        '<label>{label} <select name="{n}" id="f-{n}">{opts}</select></label>',
        label=name.capitalize(),
        n=name,
        opts=join(options),
    )


def filter_form(facets: Mapping[str, list[str]], query: Mapping[str, str]) -> Markup:
    selects = join(
        _select(name, facets.get(name, []), query.get(name, ""), "all")
        for name in ("namespace", "workload", "rule")
    )
    severity = _select("severity", SEVERITIES, query.get("severity", ""), "any")
    return render(
        '<form method="get" action="/alerts" class="filters" id="filters">{selects}{severity}'
        '<label>From <input type="datetime-local" name="since" value="{since}" step="1"></label>'
        '<label>To <input type="datetime-local" name="until" value="{until}" step="1"></label>'
        '<button type="submit" id="apply">Filter</button> <a href="/alerts">Clear</a>'
        '<span class="muted">times are UTC; severity shows that level and above</span></form>',
        selects=selects,
        severity=severity,
        since=query.get("since", ""),
        until=query.get("until", ""),
    )


def incidents_table(incidents: Sequence[Incident], window_text: str) -> Markup:
    if not incidents:
        return Markup('<p class="muted">No incidents.</p>')
    rows = join(
        render(
            '<tr class="incident"><td class="time">{start}</td><td>{sev}</td><td class="ns">{ns}'
            '</td><td class="wl">{wl}</td><td class="num">{n}</td><td class="num">{occ}</td>'
            '<td class="rules">{rules}</td><td>{open}</td></tr>',
            start=fmt_time(i.first_ns),
            sev=severity_badge(i.max_severity),
            ns=clip(i.namespace or "-", 63),
            wl=clip(workload_text(i.workload_kind, i.workload_name), 80),
            n=i.alerts,
            occ=i.occurrences,
            rules=clip(", ".join(i.rules), 120),
            open=link(
                "/alerts?"
                + urlencode(
                    {
                        "namespace": i.namespace,
                        "workload": i.workload_name,
                        "since": dt_local(i.window_start_ns),
                        "until": dt_local(i.window_start_ns + window_ns(window_text)),
                    }
                ),
                "show",
            ),
        )
        for i in incidents
    )
    return render(
        '<table class="incidents" id="incidents"><thead><tr><th class="time">First</th>'
        '<th class="sevcol">Worst</th><th class="ns">Namespace</th><th class="wl">Workload</th>'
        '<th class="num">Alerts</th><th class="num">Occurrences</th><th>Rules</th><th></th>'
        "</tr></thead><tbody>{rows}</tbody></table>",
        rows=rows,
    )


#: Incident windows the page offers (seconds), by their label.
WINDOWS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
DEFAULT_WINDOW = "15m"


def window_ns(label: str) -> int:
    return WINDOWS.get(label, WINDOWS[DEFAULT_WINDOW]) * 1_000_000_000


def dt_local(ns: int) -> str:
    """A time as an ``<input type=datetime-local>`` value (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))


_MITRE_ID = re.compile(r"^(TA\d{4}|T\d{4})(?:\.(\d{3}))?$")


def mitre_link(ident: str) -> Markup:
    """A link to MITRE ATT&CK for a tactic (TA0002) or technique (T1059, T1059.004) id."""
    m = _MITRE_ID.match(ident or "")
    if m is None:
        return escape(ident or "-")
    base, sub = m.group(1), m.group(2)
    kind = "tactics" if base.startswith("TA") else "techniques"
    href = f"https://attack.mitre.org/{kind}/{base}/" + (f"{sub}/" if sub else "")
    return link(href, ident, cls="mitre")


def kv_table(rows: Iterable[tuple[str, Any]], *, cls: str = "kv") -> Markup:
    return render(
        '<table class="{c}"><tbody>{rows}</tbody></table>',
        c=cls,
        rows=join(render("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in rows),
    )


def value_block(value: Any) -> Markup:
    """A value of any shape, in full, in a block that scrolls instead of stretching the page."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return render('<div class="value">{t}</div>', t=text)


def args_block(args: Sequence[Any]) -> Markup:
    if not args:
        return Markup('<span class="muted">-</span>')
    return render(
        '<ol class="args">{items}</ol>',
        items=join(render('<li><div class="value">{a}</div></li>', a=str(a)) for a in args),
    )
