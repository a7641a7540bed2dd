"""The console as a person uses it: Debian's chromium, driven by Selenium through chromedriver.

One cluster for the module: the stand-in API server with the scenario's workloads and the
all-rules binding; a `gadgetwatch console` process (token login, profiles and exceptions
through the stand-in); a real `gadgetwatch run --replay` of the scenario capture whose webhook
exporter posts to the console. One browser session for the module (start-up is the expensive
part). Every wait is a WebDriverWait condition; nothing sleeps. Screenshots of each page go
to test-artifacts/console/ (gitignored; CI keeps them as artefacts).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from detector.k8s_source import BINDINGS, EXCEPTIONS
from tests.console.helpers import INGEST, TOKEN, ConsoleProcess, alert
from tests.e2e.cluster import binding, seed
from tests.e2e.harness import GADGETWATCH, RUN_DEADLINE_S, child_env
from tests.e2e.scenario import CAPTURE, EXPECTED, LEARNING_PERIOD, NAMESPACE, NODE, expected_of
from tests.standins.fixtures import KubeApi, make_kube_api

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Deadline of one browser condition: loopback pages answer in milliseconds; a loaded CI
#: machine (2 cores, several test processes) has been seen taking seconds.
WAIT_S = 30
#: The browser's window: a laptop screen. The hostile test checks nothing grows wider.
WINDOW = (1280, 900)
#: The finding the test allows: the api worker resolving updates.example.org (R0005).
ALLOWED = next(e for e in EXPECTED if e.rule_id == "R0005" and e.key == "updates.example.org")


# -- the module's cluster, console and browser ----------------------------------------------


def _replay(env: dict[str, str], console_url: str | None) -> list[dict[str, Any]]:
    """`gadgetwatch run --replay` of the scenario against the stand-in; returns stdout alerts."""
    args = [
        GADGETWATCH, "run", "--no-metrics", "--replay", str(CAPTURE), "--node-name", NODE,
        "--learning-period", LEARNING_PERIOD, "--stdout",
    ]  # fmt: skip
    if console_url:
        args += ["--webhook", f"{console_url}/api/v1/alerts"]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=RUN_DEADLINE_S)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


class Cluster:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-console-"))
        self.api: KubeApi = make_kube_api()
        seed(self.api)
        custom: Any = k8s_client.CustomObjectsApi(self.api.api_client())
        custom.create_cluster_custom_object(
            BINDINGS.group, BINDINGS.version, BINDINGS.plural, binding()
        )
        (self.tmp / "home").mkdir()
        (self.tmp / "token").write_text(TOKEN + "\n")
        (self.tmp / "ingest").write_text(INGEST + "\n")
        self.env = child_env(
            self.tmp / "home",
            {
                "GADGETWATCH_KUBERNETES__MODE": "on",
                "GADGETWATCH_KUBERNETES__API_SERVER": self.api.url,
                "GADGETWATCH_PROFILER__STORE": "kubernetes",
                "GADGETWATCH_GADGETCLIENT__SECCOMP_WINDOW": "10m",
                "GADGETWATCH_EXPORTERS__HTTP__HEADERS__AUTHORIZATION": f"Bearer {INGEST}",
            },
        )
        self.console = ConsoleProcess(
            [
                "--token-file",
                str(self.tmp / "token"),
                "--ingest-token-file",
                str(self.tmp / "ingest"),
                "--database",
                str(self.tmp / "alerts.db"),
                "--api-server",
                self.api.url,
                "--agent-metrics",
                "http://127.0.0.1:9/metrics",
            ],
            env=child_env(self.tmp / "home"),
        )
        self.first_run = _replay(self.env, self.console.url)

    def close(self) -> None:
        self.console.stop()
        self.api.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def browser(cluster: Cluster) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get(cluster.console.url + "/login")
        driver.find_element(By.ID, "secret").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.ID, "alerts")))
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT_S)


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], min(max(int(height), WINDOW[1]), 4000))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(*WINDOW)


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + "/api/v1/alerts",
        data=json.dumps({"alerts": alerts}).encode(),
        headers={"Authorization": f"Bearer {INGEST}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def download(url: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        assert response.headers["Content-Disposition"].startswith("attachment; filename=")
        text: str = response.read().decode()
    return text


def rows(driver: WebDriver) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, "#alert-rows tr"))


def open_page(driver: WebDriver, url: str, ready: str) -> None:
    driver.get(url)
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, ready)))


def no_dialog(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018  (raises when there is none)
    except NoAlertPresentException:
        return True
    return False


def console_metric(cluster: Cluster, name: str) -> float:
    request = urllib.request.Request(
        cluster.console.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


# -- the pages --------------------------------------------------------------------------------


def test_the_alerts_page_shows_what_the_agent_sent(cluster: Cluster, browser: WebDriver) -> None:
    expected = sorted(expected_of(a) for a in cluster.first_run)
    assert sorted(EXPECTED) == expected  # the real agent raised the scenario's alerts
    open_page(browser, cluster.console.url + "/alerts", "#alert-rows")
    ids = {r.get_attribute("data-id") for r in rows(browser)}
    assert ids == {a["id"] for a in cluster.first_run}
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect")  # the chart has bars
    incidents = browser.find_elements(By.CSS_SELECTOR, "#incidents tr.incident")
    assert {i.find_element(By.CSS_SELECTOR, "td.wl").text for i in incidents} == {
        "Deployment/web", "Deployment/api", "StatefulSet/db"
    }  # fmt: skip
    shot(browser, "alerts")


def test_filters_narrow_the_list(cluster: Cluster, browser: WebDriver) -> None:
    open_page(browser, cluster.console.url + "/alerts", "#filters")
    Select(browser.find_element(By.ID, "f-rule")).select_by_value("R0005")
    Select(browser.find_element(By.ID, "f-workload")).select_by_value("api")
    browser.find_element(By.ID, "apply").click()
    wait(browser).until(ec.url_contains("rule=R0005"))
    found = {r.find_element(By.CSS_SELECTOR, "td.rule").text for r in rows(browser)}
    want = [a for a in cluster.first_run if a["rule"]["id"] == "R0005"]
    assert found == {"R0005"}
    assert len(rows(browser)) == len(want) == 2
    open_page(browser, cluster.console.url + "/alerts", "#filters")
    Select(browser.find_element(By.ID, "f-severity")).select_by_value("high")
    browser.find_element(By.ID, "apply").click()
    wait(browser).until(ec.url_contains("severity=high"))
    shown = {r.get_attribute("data-id") for r in rows(browser)}
    want_ids = {a["id"] for a in cluster.first_run if a["rule"]["severity"] in ("high", "critical")}
    assert shown == want_ids
    assert 0 < len(shown) < len(cluster.first_run)


def test_open_an_alert_and_allow_it_then_the_replay_does_not_alert(
    cluster: Cluster, browser: WebDriver
) -> None:
    target = next(a for a in cluster.first_run if expected_of(a) == ALLOWED)
    open_page(browser, cluster.console.url + "/alerts?rule=R0005", "#alert-rows")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{target["id"]}"]')
    row.find_element(By.CSS_SELECTOR, "a.open-alert").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "fix")))
    title = browser.find_element(By.CSS_SELECTOR, "h1.alert-title").text
    assert title.startswith("R0005")
    assert "updates.example.org" in browser.find_element(By.CSS_SELECTOR, "table.event").text
    mitre = [
        a.get_attribute("href") or "" for a in browser.find_elements(By.CSS_SELECTOR, "a.mitre")
    ]
    assert mitre
    assert all(h.startswith("https://attack.mitre.org/") for h in mitre)
    assert "1 alerts" in browser.find_element(By.CSS_SELECTOR, "table.dedup").text
    shot(browser, "alert-detail")

    browser.find_element(By.ID, "allow").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "allow-form")))
    assert "RuntimeAlertException" in browser.find_element(By.ID, "snippet").text
    reason = browser.find_element(By.ID, "reason")
    reason.clear()
    reason.send_keys("the worker checks for updates")
    shot(browser, "allow")
    browser.find_element(By.ID, "confirm").click()
    browser.find_element(By.ID, "allow-submit").click()
    result = wait(browser).until(ec.presence_of_element_located((By.ID, "allow-result")))
    assert result.text.startswith("Created RuntimeAlertException shop/allow-api-r0005-")

    (exception,) = cluster.api.objects(EXCEPTIONS.plural, NAMESPACE)
    assert exception["spec"]["reason"] == "the worker checks for updates"
    # The next replay of the same behaviour: the agent reads the exception from the cluster
    # and the finding does not alert again; the other DNS finding of the worker still does.
    again = {expected_of(a) for a in _replay(cluster.env, None)}
    assert ALLOWED not in again
    assert any(e.rule_id == "R0005" and e.key == "pool.minexmr.com" for e in again)


def test_profiles_a_profile_and_a_diff(cluster: Cluster, browser: WebDriver) -> None:
    open_page(browser, cluster.console.url + "/profiles", "#profiles")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.open-profile")]
    assert "deployment-web-app" in names
    assert "deployment-web-nginx" in names
    statuses = browser.find_elements(By.CSS_SELECTOR, "#profiles .status")
    assert {s.text for s in statuses} == {"completed"}
    shot(browser, "profiles")
    browser.find_element(By.LINK_TEXT, "deployment-web-app").click()
    execs = wait(browser).until(ec.presence_of_element_located((By.ID, "cat-exec")))
    assert "/usr/local/bin/gunicorn" in execs.text
    links = {
        cls: browser.find_element(By.CSS_SELECTOR, f"a.{cls}").get_attribute("href") or ""
        for cls in ("dl-seccomp", "dl-netpol", "dl-advice")
    }
    shot(browser, "profile")
    # The downloads are the documents `gadgetwatch profile seccomp|netpol|advise` derive.
    # This profile learned no syscalls (the page says so), so the seccomp profile is refused
    # with the reason, and derived anyway with ?force=1.
    with pytest.raises(urllib.error.HTTPError) as refused:
        download(links["dl-seccomp"])
    assert refused.value.code == 409
    assert "no syscalls were recorded" in refused.value.read().decode()
    seccomp = json.loads(download(links["dl-seccomp"] + "?force=1"))
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    policy = yaml.safe_load(download(links["dl-netpol"]))
    assert policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["namespace"] == NAMESPACE
    advice = yaml.safe_load(download(links["dl-advice"]))
    assert "securityContext" in advice
    assert advice["evidence"]
    open_page(browser, cluster.console.url + "/profiles", "#diff-form")
    Select(browser.find_element(By.ID, "diff-a")).select_by_value("shop/deployment-web-app")
    Select(browser.find_element(By.ID, "diff-b")).select_by_value("shop/deployment-web-nginx")
    browser.find_element(By.ID, "diff-go").click()
    diff = wait(browser).until(ec.presence_of_element_located((By.ID, "diff")))
    assert "- exec /usr/local/bin/gunicorn" in diff.text
    assert any(line.startswith("+ open /etc/nginx/nginx.conf") for line in diff.text.splitlines())
    shot(browser, "diff")


def test_a_live_alert_arrives_without_reloading(cluster: Cluster, browser: WebDriver) -> None:
    open_page(browser, cluster.console.url + "/alerts", "#alert-rows")
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live")
                        == "open")  # fmt: skip
    marker = browser.find_element(By.ID, "total")  # goes stale if the page reloads
    live = alert(message="live one: nc -e /bin/sh", time="2026-01-01T00:10:00Z")
    assert post_alerts(cluster.console.url, [live])["accepted"] == 1
    row = wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{live["id"]}"]'))
    )
    assert "live one: nc -e /bin/sh" in row.text
    assert rows(browser)[0].get_attribute("data-id") == live["id"]
    assert marker.is_displayed()  # the same document: nothing reloaded
    # A filtered page does not receive what its filter excludes.
    open_page(browser, cluster.console.url + "/alerts?namespace=elsewhere", "#alert-rows")
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live")
                        == "open")  # fmt: skip
    other = alert(namespace="shop", time="2026-01-01T00:11:00Z")
    mine = alert(namespace="elsewhere", time="2026-01-01T00:11:00Z")
    post_alerts(cluster.console.url, [other, mine])
    wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{mine["id"]}"]'))
    )
    assert [r.get_attribute("data-id") for r in rows(browser)] == [mine["id"]]


def test_health_shows_what_arrived_and_unreachable_agents(
    cluster: Cluster, browser: WebDriver
) -> None:
    open_page(browser, cluster.console.url + "/health", "table.nodes")
    nodes = browser.find_element(By.CSS_SELECTOR, "table.nodes").text
    assert NODE in nodes
    agent = browser.find_element(By.CSS_SELECTOR, "section.agent").text
    assert "http://127.0.0.1:9/metrics" in agent
    assert "unreachable" in agent
    shot(browser, "health")


# -- hostile input ----------------------------------------------------------------------------

HUGE = "A" * 100_000
#: Later than anything else the module stores, so a time filter shows exactly these.
HOSTILE_TIME = "2031-01-01T00:00:00Z"
HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("script", {"message": "<script>window.__pwned = 1; alert(1)</script>"}),
    ("img", {"message": '<img src=x onerror="window.__pwned=2;alert(2)">'}),
    ("js-url", {"message": "javascript:alert(3)", "namespace": "javascript:alert(4)"}),
    ("entities", {"message": "&lt;script&gt;alert(5)&lt;/script&gt; &amp; &#x3C;b&#x3E;"}),
    ("bidi", {"message": "invoice\u202egpj.exe \u2066hidden\u2069", "workload": "web\u202e"}),
    ("huge", {"message": "big " + HUGE}),
]


def _hostile_alert(name: str, change: dict[str, Any]) -> dict[str, Any]:
    body = alert(time=HOSTILE_TIME, **change)
    if name == "huge":
        body["process"]["args"] = ["/bin/sh", HUGE]
        body["event"]["path"] = "/" + HUGE
    if name == "script":
        body["process"]["comm"] = "<script>window.__pwned=3</script>"
        body["fixSuggestion"] = "</pre><script>window.__pwned=4</script>"
    return body


def _no_execution(driver: WebDriver) -> None:
    assert no_dialog(driver)
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    assert not driver.find_elements(By.CSS_SELECTOR, "main script, main img, main iframe")
    hrefs = [a.get_attribute("href") or "" for a in driver.find_elements(By.TAG_NAME, "a")]
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]


def _layout_holds(driver: WebDriver) -> None:
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= WINDOW[0], f"the page is {width}px wide"
    tallest: int = driver.execute_script(
        "return Math.max(...Array.from(document.querySelectorAll('td,.value'))"
        ".map(e => e.getBoundingClientRect().height))"
    )
    # A list cell shows 160 characters; a detail block scrolls after 12 lines.
    assert tallest < 400, f"an element is {tallest}px tall"


def test_hostile_fields_render_as_text_and_the_layout_holds(
    cluster: Cluster, browser: WebDriver
) -> None:
    bodies = {name: _hostile_alert(name, change) for name, change in HOSTILE}
    result = post_alerts(cluster.console.url, list(bodies.values()))
    assert result["accepted"] == len(bodies), result
    csp_before = console_metric(cluster, "gadgetwatch_console_csp_reports_total")

    open_page(browser, cluster.console.url + "/alerts?since=2031-01-01T00:00:00", "#alert-rows")
    wait(browser).until(lambda d: len(rows(d)) == len(bodies))
    _no_execution(browser)
    _layout_holds(browser)
    text = browser.find_element(By.ID, "alert-rows").text
    assert "<script>window.__pwned = 1; alert(1)</script>" in text  # shown, as text
    assert "&lt;script&gt;alert(5)&lt;/script&gt; &amp; &#x3C;b&#x3E;" in text  # not decoded
    assert "invoice⟨U+202E⟩gpj.exe ⟨U+2066⟩hidden⟨U+2069⟩" in text
    assert "\u202e" not in text
    assert "…[99844 more chars]" in text  # the 100 KB message is cut, visibly
    shot(browser, "hostile-list")

    for name in ("script", "huge", "bidi"):
        open_page(browser, f"{cluster.console.url}/alerts/{bodies[name]['id']}", "#fix")
        _no_execution(browser)
        _layout_holds(browser)
    # The detail page keeps the whole 100 KB argument, in a block that scrolls.
    open_page(browser, f"{cluster.console.url}/alerts/{bodies['huge']['id']}", "ol.args")
    block = browser.find_elements(By.CSS_SELECTOR, "ol.args .value")[1]
    assert browser.execute_script("return arguments[0].textContent.length", block) == 100_000
    assert browser.execute_script("return arguments[0].scrollHeight > arguments[0].clientHeight",
                                  block)  # fmt: skip
    shot(browser, "hostile-detail")
    # Nothing tried to run and was blocked either: the CSP reported no violation.
    assert console_metric(cluster, "gadgetwatch_console_csp_reports_total") == csp_before == 0


def test_a_write_without_the_csrf_token_is_refused_in_the_browser(
    cluster: Cluster, browser: WebDriver
) -> None:
    target = next(a for a in cluster.first_run if a["rule"]["id"] == "R0001")
    open_page(browser, f"{cluster.console.url}/alerts/{target['id']}/allow", "#allow-form")
    browser.execute_script(
        "document.querySelector('#allow-form input[name=csrf]').value = 'forged'"
    )
    browser.find_element(By.ID, "reason").send_keys(" (forged)")
    browser.find_element(By.ID, "confirm").click()
    browser.find_element(By.ID, "allow-submit").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "CSRF token"))
    names = {o["metadata"]["name"] for o in cluster.api.objects(EXCEPTIONS.plural, NAMESPACE)}
    assert not any("-r0001-" in n for n in names)
