"""The console over real HTTP on loopback: authentication, CSRF, headers, ingestion, pages,
"Allow this" in file mode and against the stand-in API server, and the CLI's refusals."""

from __future__ import annotations

import base64
import re
import sqlite3
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from detector.k8s_source import EXCEPTIONS
from gadgetwatch.console import health
from gadgetwatch.console.security import CSP
from tests.console.helpers import INGEST, TOKEN, ConsoleProcess, alert, served
from tests.e2e.harness import GADGETWATCH, child_env
from tests.exporters.daemons import make_tls_files
from tests.standins.fixtures import KubeApi

BEARER = {"Authorization": f"Bearer {TOKEN}"}
AGENT = {"Authorization": f"Bearer {INGEST}"}

#: A fix suggestion as the detector writes it for an anomaly (R0001 on web/app).
SUGGESTION = """# If this is expected behaviour, allow it (kubectl apply -f -):
apiVersion: gadgetwatch.io/v1
kind: RuntimeAlertException
metadata:
  name: allow-web-r0001-0a1b2c3d
  namespace: shop
spec:
  reason: Reviewed gadgetwatch alert (replace with why it is expected)
  workloads:
  - kind: Deployment
    name: web
    containers: [app]
  rules: [R0001]
  allow:
    execs: [/usr/bin/curl]
"""


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html[:500]
    return match.group(1)


async def test_everything_but_the_public_paths_needs_a_login(tmp_path: Path) -> None:
    async with served(tmp_path) as console, aiohttp.ClientSession() as http:
        for path in ("/alerts", "/alerts/x", "/events", "/profiles", "/health", "/metrics"):
            async with http.get(console.url + path, allow_redirects=False) as r:
                assert r.status == 401, path
                assert r.headers["Content-Security-Policy"] == CSP
        # A browser is sent to the login page, with the way back.
        async with http.get(
            console.url + "/alerts?rule=R1", headers={"Accept": "text/html"}, allow_redirects=False
        ) as r:
            assert r.status == 303
            where = urlsplit(r.headers["Location"])
            assert where.path == "/login"
            assert parse_qs(where.query)["next"] == ["/alerts?rule=R1"]
        # The ingest token opens ingestion only; the console token opens the pages.
        async with http.get(console.url + "/alerts", headers=AGENT) as r:
            assert r.status == 401
        async with http.get(console.url + "/alerts", headers=BEARER) as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == CSP
            assert r.headers["X-Frame-Options"] == "DENY"
        async with http.get(console.url + "/healthz") as r:
            assert r.status == 200


async def test_login_sets_a_strict_session_cookie_and_writes_need_the_csrf_token(
    tmp_path: Path,
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
    async with served(tmp_path) as console, aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(console.url + "/login") as r:
            login_csrf = _csrf(await r.text())
        form = {"csrf": login_csrf, "secret": "wrong", "next": "/alerts"}
        async with http.post(console.url + "/login", data=form) as r:
            assert r.status == 401
        form["secret"] = TOKEN
        form["next"] = "//evil.example/"
        async with http.post(console.url + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/alerts"  # no open redirect
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
        async with http.get(console.url + "/alerts") as r:
            assert r.status == 200
            csrf = _csrf(await r.text())
        # Logging out is a write: without the token, or from another origin, it is refused.
        async with http.post(console.url + "/logout", data={"csrf": "nope"}) as r:
            assert r.status == 403
        async with http.post(
            console.url + "/logout",
            data={"csrf": csrf},
            headers={"Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403
        async with http.post(
            console.url + "/logout", data={"csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303
        # A forged cookie is no session.
        http.cookie_jar.clear()
        async with http.get(
            console.url + "/alerts", headers={"Cookie": "gw_session=dG9rZW58OTk5OTk5OTk5OQ.AAAA"}
        ) as r:
            assert r.status == 401


async def test_ingestion_validates_each_alert_and_counts_what_it_refuses(tmp_path: Path) -> None:
    async with served(tmp_path) as console, aiohttp.ClientSession() as http:
        url = console.url + "/api/v1/alerts"
        async with http.post(url, json=alert()) as r:
            assert r.status == 401
        async with http.post(url, json=alert(), headers=BEARER) as r:
            assert r.status == 401  # the console token is not the ingest token here
        async with http.post(url, data=b"{not json", headers=AGENT) as r:
            assert r.status == 400
        good = alert(alert_id="good")
        batch = {"alerts": [good, {**alert(), "time": "soon"}, good]}
        async with http.post(url, json=batch, headers=AGENT) as r:
            assert r.status == 200
            result: dict[str, Any] = await r.json()
        assert (result["accepted"], result["duplicates"]) == (1, 1)
        assert result["rejected"] == ["alerts[1]: time: Invalid isoformat string: 'soon+00:00'"]
        async with http.post(url, json={"alerts": [{"id": 1}]}, headers=AGENT) as r:
            assert r.status == 400  # nothing valid: the exporter drops it instead of retrying
        async with http.post(url, data=b"x" * (9 * 1024 * 1024), headers=AGENT) as r:
            assert r.status == 413
        async with http.get(console.url + "/metrics", headers=BEARER) as r:
            text = await r.text()
        assert "gadgetwatch_console_alerts_accepted_total 1" in text
        assert "gadgetwatch_console_alerts_duplicate_total 1" in text
        assert 'gadgetwatch_console_alerts_rejected_total{reason="time"} 1' in text
        assert 'gadgetwatch_console_alerts_rejected_total{reason="id"} 1' in text
        assert 'gadgetwatch_console_alerts_rejected_total{reason="json"} 1' in text
        assert 'gadgetwatch_console_alerts_rejected_total{reason="unauthorized"} 2' in text


async def test_pages_escape_what_the_alert_says(tmp_path: Path) -> None:
    hostile = alert(
        alert_id="h1",
        message='<img src=x onerror=alert(1)> "quoted" \u202eexe.txt',
        namespace="<b>ns</b>",
    )
    async with served(tmp_path) as console, aiohttp.ClientSession(headers=BEARER) as http:
        async with http.post(console.url + "/api/v1/alerts", json=hostile, headers=AGENT) as r:
            assert r.status == 200
        for path in ("/alerts", "/alerts/h1"):
            async with http.get(console.url + path) as r:
                html = await r.text()
            assert "<img" not in html
            assert "<b>ns" not in html
            assert "&lt;img src=x onerror=alert(1)&gt;" in html
            assert "\u202e" not in html
            assert "⟨U+202E⟩exe.txt" in html
        # The MITRE ids become links to attack.mitre.org; nothing else from the alert does.
        assert 'href="https://attack.mitre.org/techniques/T1059/"' in html


async def test_allow_in_file_mode_downloads_the_exception_with_the_reason(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as console, aiohttp.ClientSession(headers=BEARER) as http:
        body = alert(alert_id="a1", fixSuggestion=SUGGESTION)
        async with http.post(console.url + "/api/v1/alerts", json=body, headers=AGENT) as r:
            assert r.status == 200
        async with http.get(console.url + "/alerts/a1/allow") as r:
            page = await r.text()
        assert "allow-web-r0001-0a1b2c3d" in page
        assert "downloaded as a file" in page
        form = {"csrf": _csrf(page), "reason": "deploy hook runs curl", "confirm": "yes"}
        async with http.post(console.url + "/alerts/a1/allow", data={**form, "csrf": "x"}) as r:
            assert r.status == 403
        async with http.post(console.url + "/alerts/a1/allow", data={**form, "confirm": ""}) as r:
            assert "Tick the confirmation first" in await r.text()
        async with http.post(console.url + "/alerts/a1/allow", data=form) as r:
            assert r.status == 200
            assert r.headers["Content-Disposition"] == (
                'attachment; filename="allow-web-r0001-0a1b2c3d.yaml"'
            )
            doc = yaml.safe_load(await r.text())
        assert doc["spec"]["reason"] == "deploy hook runs curl"
        assert doc["spec"]["allow"] == {"execs": ["/usr/bin/curl"]}


async def test_allow_refuses_a_suggestion_the_detector_would_reject(tmp_path: Path) -> None:
    broken = SUGGESTION.replace("kind: Deployment", "kind: Spaceship")
    async with served(tmp_path) as console, aiohttp.ClientSession(headers=BEARER) as http:
        body = alert(alert_id="b1", fixSuggestion=broken)
        async with http.post(console.url + "/api/v1/alerts", json=body, headers=AGENT) as r:
            assert r.status == 200
        async with http.get(console.url + "/alerts/b1/allow") as r:
            csrf = _csrf(await r.text())
        form = {"csrf": csrf, "reason": "x", "confirm": "yes"}
        async with http.post(console.url + "/alerts/b1/allow", data=form) as r:
            assert r.status == 400
            assert "the suggested exception is invalid" in await r.text()


async def test_allow_in_cluster_mode_creates_the_exception(
    tmp_path: Path, kube_api: KubeApi
) -> None:
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    async with (
        served(tmp_path, kube_api=kube_api.api_client()) as console,
        aiohttp.ClientSession(headers=BEARER) as http,
    ):
        body = alert(alert_id="c1", fixSuggestion=SUGGESTION)
        async with http.post(console.url + "/api/v1/alerts", json=body, headers=AGENT) as r:
            assert r.status == 200
        async with http.get(console.url + "/alerts/c1/allow") as r:
            csrf = _csrf(await r.text())
        form = {"csrf": csrf, "reason": "deploy hook", "confirm": "yes"}
        async with http.post(console.url + "/alerts/c1/allow", data=form) as r:
            assert "Created RuntimeAlertException shop/allow-web-r0001-0a1b2c3d" in (await r.text())
        async with http.post(console.url + "/alerts/c1/allow", data=form) as r:
            assert "already allowed" in await r.text()
    (obj,) = kube_api.objects(EXCEPTIONS.plural, "shop")
    assert obj["spec"]["reason"] == "deploy hook"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "authentication is required"),
        (["--insecure-no-auth", "--listen", "0.0.0.0:0"], "only allowed on a loopback address"),
        (["--token-file", "/nonexistent"], "cannot read the token"),
        (["--insecure-no-auth", "--exceptions", "cluster"], "--exceptions cluster needs"),
    ],
)
def test_the_cli_refuses_unsafe_or_broken_settings(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [GADGETWATCH, "console", "--database", str(tmp_path / "c.db"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


async def test_without_auth_every_page_says_so(tmp_path: Path) -> None:
    async with served(tmp_path, disabled=True) as console, aiohttp.ClientSession() as http:
        async with http.get(console.url + "/alerts") as r:
            assert r.status == 200
            assert "Authentication is OFF" in await r.text()
        async with http.post(console.url + "/api/v1/alerts", json=alert()) as r:
            assert r.status == 200


async def test_health_reads_the_figures_that_matter_from_an_agents_metrics(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    received = Counter("gadgetwatch_gadget_events_received", "", ["gadget"], registry=registry)
    received.labels("trace_exec").inc(120)
    received.labels("trace_open").inc(30)
    Counter("gadgetwatch_gadget_events_lost", "", ["gadget"], registry=registry).labels(
        "trace_open"
    ).inc(4)
    up = Gauge("gadgetwatch_exporter_up", "", ["exporter"], registry=registry)
    up.labels("http").set(1)
    up.labels("syslog").set(0)
    text = generate_latest(registry)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=text, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        (found,) = await health.scrape_all((f"http://127.0.0.1:{port}/metrics",))
        # A discovery name: every address it resolves to is one agent.
        discovered = await health.scrape_all((), (f"http://localhost:{port}/metrics",))
    finally:
        await runner.cleanup()
    by_url = {a.url: a for a in discovered}
    assert by_url[f"http://127.0.0.1:{port}/metrics"].figures == found.figures
    assert found.error == ""
    assert found.figures["events received"] == {"trace_exec": 120.0, "trace_open": 30.0}
    assert found.figures["events lost (kernel)"] == {"trace_open": 4.0}
    assert found.figures["exporter up"] == {"http": 1.0, "syslog": 0.0}
    (gone,) = await health.scrape_all(("http://127.0.0.1:9/metrics",))
    assert gone.error.startswith("unreachable")


def test_the_console_process_serves_https_with_basic_auth_users(tmp_path: Path) -> None:
    """`gadgetwatch console` as its own process: TLS from files, users from a
    `user:password` file (HTTP Basic and the login form), the session cookie marked Secure."""
    tls = make_tls_files(tmp_path)
    users = tmp_path / "users"
    users.write_text("# people\nalice:wonder-land-42\n")
    ingest = tmp_path / "ingest"
    ingest.write_text("Bearer agents-token\n")
    console = ConsoleProcess(
        [
            "--basic-auth-file",
            str(users),
            "--tls-cert-file",
            str(tls.cert),
            "--tls-key-file",
            str(tls.key),
            "--database",
            str(tmp_path / "c.db"),
            "--ingest-token-file",
            str(ingest),
        ],
        env=child_env(tmp_path),
    )
    try:
        assert console.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tls.ca))

        def get(path: str, headers: dict[str, str]) -> int:
            request = urllib.request.Request(console.url + path, headers=headers)
            try:
                with urllib.request.urlopen(request, context=context, timeout=20) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        basic = base64.b64encode(b"alice:wonder-land-42").decode()
        wrong = base64.b64encode(b"alice:nope").decode()
        assert get("/alerts", {"Authorization": f"Basic {basic}"}) == 200
        assert get("/alerts", {"Authorization": f"Basic {wrong}"}) == 401
        assert get("/healthz", {}) == 200
        # The login form: a Secure, HttpOnly, SameSite=Strict cookie over TLS.
        with urllib.request.urlopen(console.url + "/login", context=context, timeout=20) as r:
            csrf = _csrf(r.read().decode())
        form = urllib.parse.urlencode(
            {"csrf": csrf, "user": "alice", "secret": "wonder-land-42", "next": "/profiles"}
        ).encode()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(
            NoRedirect, urllib.request.HTTPSHandler(context=context)
        )
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(console.url + "/login", data=form, timeout=20)
        assert redirect.value.code == 303
        assert redirect.value.headers["Location"] == "/profiles"
        cookie = redirect.value.headers["Set-Cookie"]
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
    finally:
        console.stop()


async def test_the_alert_list_pages_back_through_history(tmp_path: Path) -> None:
    async with served(tmp_path) as console, aiohttp.ClientSession(headers=BEARER) as http:
        bodies = [
            alert(alert_id=f"a{i:03}", time=f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z")
            for i in range(130)
        ]
        async with http.post(
            console.url + "/api/v1/alerts", json={"alerts": bodies}, headers=AGENT
        ) as r:
            assert (await r.json())["accepted"] == 130
        async with http.get(console.url + "/alerts") as r:
            first = await r.text()
        ids = re.findall(r'data-id="(a\d+)"', first)
        assert ids == [f"a{i:03}" for i in range(129, 29, -1)]
        older = re.search(r'href="(/alerts\?before=[^"]+)" class="older"', first)
        assert older is not None
        async with http.get(console.url + older.group(1).replace("&amp;", "&")) as r:
            second = await r.text()
        assert re.findall(r'data-id="(a\d+)"', second) == [f"a{i:03}" for i in range(29, -1, -1)]
        assert 'data-stream=""' in second  # history: no live rows on top
        assert 'class="older"' not in second


def test_an_unreadable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all " * 10)
    future = tmp_path / "future.db"
    db = sqlite3.connect(future)
    db.execute("PRAGMA user_version=99")
    db.close()
    for path, message in ((garbage, "file is not a database"), (future, "schema version 99")):
        result = subprocess.run(
            [
                GADGETWATCH,
                "console",
                "--token-file",
                str(token),
                "--database",
                str(path),
                "--listen",
                "127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert f"--database {path}: {message}" in result.stderr
        assert "Traceback" not in result.stderr
