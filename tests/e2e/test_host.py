"""Host mode end to end: replay server → agent → stdout, rsyslog, webhook, Alertmanager.

The agent runs as its own process (`.venv/bin/gadgetwatch run`), reading the scenario capture
over real gRPC, either from a separate `gadgetwatch replay-server` process on a unix socket or
from its in-process `--replay`. Every destination is real: rsyslogd over TCP, Prometheus
Alertmanager, an aiohttp webhook receiver, and the agent's stdout.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from profiler import documents
from tests.e2e.harness import GADGETWATCH, Agent, Proc, eventually, start_replay_server
from tests.e2e.scenario import (
    CAPTURE,
    EXAMPLE_CAPTURE,
    EXPECTED,
    LEARNED_EXECS,
    LEARNED_OPENS,
    LEARNING_PERIOD,
    NAMESPACE,
    PROFILE_NAMES,
    capture_counts,
    expected_of,
)
from tests.exporters.daemons import Alertmanager, Rsyslog
from tests.exporters.helpers import parse_rfc5424
from tests.exporters.receivers import HttpReceiver
from tests.standins.kube_schema import validate_custom_object

pytestmark = [pytest.mark.rsyslog, pytest.mark.alertmanager]

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy" / "crds" / f"{documents.CRD_NAME}.yaml"
SD_ID = "32473"  # the documentation enterprise number, the syslog exporter's default
CLUSTER = "shop-eu-1"


def profile_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return dict(version["schema"]["openAPIV3Schema"])


def write_config(
    path: Path, *, alertmanager: dict[str, str] | None = None, cluster_name: str = ""
) -> Path:
    """Settings the flags do not cover. AlertManager keeps its default `resolveAfter`: the
    capture's event times are in the past, and alerts must fire all the same."""
    config = {
        "gadgetclient": {"seccompWindow": "10m"},  # one advise_seccomp window per test
        "exporters": {"alertmanager": dict(alertmanager or {})},
        "kubernetes": {"mode": "off"},
    }
    if cluster_name:
        config["clusterName"] = cluster_name
    path.write_text(yaml.safe_dump(config))
    return path


def check_profiles_dir(directory: Path) -> dict[str, dict[str, Any]]:
    """Every profile file is valid YAML, validates against the CRD (strictly: no unknown field)
    and is completed; returns them by name."""
    schema = profile_schema()
    files = sorted((directory / NAMESPACE).glob("*.yaml"))
    docs: dict[str, dict[str, Any]] = {}
    for f in files:
        doc = yaml.safe_load(f.read_text())
        result = validate_custom_object(doc, schema)
        assert (result.causes, result.unknown) == ([], []), f.name
        jsonschema.validate(doc, schema)
        assert doc["kind"] == "ApplicationProfile"
        assert doc["apiVersion"] == documents.API_VERSION
        assert doc["metadata"]["name"] == f.stem
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["status"]["phase"] == "completed", (f.name, doc["status"])
        docs[f.stem] = doc
    assert set(docs) == PROFILE_NAMES
    return docs


def learned_paths(doc: dict[str, Any], section: str) -> set[str]:
    (container,) = doc["spec"]["containers"]
    return {entry["path"] for entry in container.get(section, [])}


def syslog_matches(line: str, alert: dict[str, Any]) -> bool:
    """The RFC 5424 message rsyslog stored carries the alert's identity and content."""
    m = parse_rfc5424(line)
    k = alert["kubernetes"]
    sd_alert, sd_k8s, sd_proc = (m.sd[f"{n}@{SD_ID}"] for n in ("alert", "k8s", "proc"))
    return (
        m.msgid == alert["rule"]["id"]
        and m.app_name == "gadgetwatch"
        and m.msg == alert["message"]
        and sd_alert["ruleId"] == alert["rule"]["id"]
        and sd_alert["id"] == alert["id"]
        and sd_alert["cluster"] == alert["cluster"]
        and sd_alert["severity"] == alert["rule"]["severity"]
        and sd_alert["fingerprint"] == alert["fingerprint"]
        and all(
            sd_k8s[f] == k[f]
            for f in ("node", "namespace", "workloadKind", "workloadName", "pod", "container")
        )
        and int(sd_proc["pid"]) == alert["process"]["pid"]
        and sd_proc["comm"] == alert["process"]["comm"]
        and json.loads(sd_proc["args"]) == alert["process"]["args"]
    )


async def test_all_exporters_receive_exactly_the_expected_alerts(
    tmp_path: Path,
    sockdir: Path,
    env: dict[str, str],
    webhook: HttpReceiver,
    rsyslog_factory: Callable[..., Rsyslog],
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    rsyslog = rsyslog_factory()
    am = alertmanager_factory()
    profiles = tmp_path / "profiles"
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env)
    agent: Agent | None = None
    try:
        agent = await Agent.start(
            [
                "--config", str(write_config(tmp_path / "gadgetwatch.yaml", cluster_name=CLUSTER)),
                "--target", f"unix://{socket}",
                "--learning-period", LEARNING_PERIOD,
                "--profiles-dir", str(profiles),
                "--stdout",
                "--syslog", f"tcp://127.0.0.1:{rsyslog.tcp_port}",
                "--webhook", webhook.url + "/alerts",
                "--alertmanager", am.url,
            ],
            env=env,
        )  # fmt: skip
        ready = await agent.wait_ready()
        assert ready["checks"]["exporters"]["ready"] is True
        n = len(EXPECTED)
        exporters = ("stdout", "syslog", "http", "alertmanager")
        metrics = await agent.wait_metrics(
            lambda m: all(
                m.value("gadgetwatch_exporter_alerts_sent_total", exporter=e) >= n
                for e in exporters
            ),
            what=f"{n} alerts sent by every exporter",
        )
        await eventually(lambda: len(rsyslog.lines(app_name="gadgetwatch")) >= n, what="rsyslog")
        await eventually(lambda: len(webhook.alerts()) >= n, what="webhook alerts")

        # -- each exporter received exactly the expected alerts ---------------------------------
        hooked = webhook.alerts()
        assert sorted(expected_of(a) for a in hooked) == sorted(EXPECTED)
        assert sorted(expected_of(a) for a in agent.stdout_alerts()) == sorted(EXPECTED)
        assert {a["fingerprint"] for a in agent.stdout_alerts()} == {
            a["fingerprint"] for a in hooked
        }
        # One id per alert, the same at every destination; the cluster name in every alert.
        assert {a["id"] for a in agent.stdout_alerts()} == {a["id"] for a in hooked}
        assert len({a["id"] for a in hooked}) == n
        assert {a["cluster"] for a in hooked} == {CLUSTER}
        assert all(r.path == "/alerts" and r.method == "POST" for r in webhook.requests)
        lines = rsyslog.lines(app_name="gadgetwatch")
        assert len(lines) == n
        for alert in hooked:
            assert sum(syslog_matches(ln, alert) for ln in lines) == 1, alert["fingerprint"]

        # AlertManager identifies an alert by its labels: rule, workload container and the
        # finding, so every distinct finding is its own alert (three R0001 findings in one
        # container are three alerts), never per process or pod.
        def labels(a: dict[str, Any]) -> dict[str, str]:
            k = a["kubernetes"]
            return {
                "rule_id": a["rule"]["id"], "namespace": NAMESPACE,
                "workload_kind": k["workloadKind"], "workload_name": k["workloadName"],
                "container": k["container"], "finding": a["fingerprint"], "cluster": CLUSTER,
            }  # fmt: skip

        want_am = {tuple(sorted(labels(a).items())) for a in hooked}
        assert len(want_am) == n
        await eventually(lambda: len(am.alerts()) >= len(want_am), what="Alertmanager alerts")
        got_am = am.alerts()
        severity = {a["rule"]["id"]: a["rule"]["severity"] for a in hooked}
        names = {a["rule"]["id"]: a["rule"]["name"] for a in hooked}
        for a in got_am:
            lab = a["labels"]
            assert lab.pop("severity") == severity[lab["rule_id"]]
            assert lab.pop("alertname") == "".join(
                w[:1].upper() + w[1:] for w in names[lab["rule_id"]].split()
            )
            assert a["status"]["state"] == "active"
        assert {tuple(sorted(a["labels"].items())) for a in got_am} == want_am

        # -- /metrics counts match what was captured and what the receivers got ---------------
        received, decoded = capture_counts(CAPTURE)
        metrics = await agent.metrics()
        assert metrics.by("gadgetwatch_gadget_events_received_total", "gadget") == received
        assert metrics.by("gadgetwatch_gadget_events_decoded_total", "gadget") == decoded
        assert metrics.total("gadgetwatch_gadget_events_lost_total") == 0
        assert metrics.total("gadgetwatch_gadget_events_dropped_total") == 0
        assert metrics.value("gadgetwatch_pipeline_events_processed_total") == sum(decoded.values())
        assert metrics.by("gadgetwatch_detector_alerts_total", "rule_id") == Counter(
            e.rule_id for e in EXPECTED
        )
        sent = metrics.by("gadgetwatch_exporter_alerts_sent_total", "exporter")
        assert sent == {e: n for e in exporters}
        assert metrics.total("gadgetwatch_exporter_alerts_dropped_total") == 0
        assert metrics.by("gadgetwatch_profiler_profiles", "status").get("completed") == len(
            PROFILE_NAMES
        )
        assert metrics.by("gadgetwatch_exporter_up", "exporter") == {e: 1 for e in exporters}

        # -- SIGTERM: clean exit, profiles flushed to the directory store ---------------------
        assert await agent.terminate() == 0
        assert agent.proc.log_events("agent stopped")
        assert len(agent.stdout_alerts()) == n  # nothing after the stop
        docs = check_profiles_dir(profiles)
        assert learned_paths(docs["deployment-web-app"], "execs") == LEARNED_EXECS
        assert learned_paths(docs["deployment-web-nginx"], "opens") == LEARNED_OPENS
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()


async def test_exact_alerts_with_unordered_replay(
    tmp_path: Path, sockdir: Path, env: dict[str, str], webhook: HttpReceiver
) -> None:
    """The scenario does not depend on the replay's cross-stream order: with every gadget
    stream replayed on its own (`--no-ordered`), the alerts are the same."""
    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env, ordered=False)
    agent: Agent | None = None
    try:
        agent = await Agent.start(
            [
                "--config", str(write_config(tmp_path / "gadgetwatch.yaml")),
                "--target", f"unix://{socket}",
                "--learning-period", LEARNING_PERIOD,
                "--profiles-dir", str(tmp_path / "profiles"),
                "--webhook", webhook.url,
            ],
            env=env,
        )  # fmt: skip
        await eventually(lambda: len(webhook.alerts()) >= len(EXPECTED), what="webhook alerts")
        assert await agent.terminate() == 0
        assert sorted(expected_of(a) for a in webhook.alerts()) == sorted(EXPECTED)
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()


async def test_in_process_replay_to_stdout_with_summary(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The README's form: `gadgetwatch run --replay X > alerts.jsonl`, no exporter flag."""
    profiles = tmp_path / "profiles"
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH,
            "run",
            "--no-metrics",
            "--replay",
            str(CAPTURE),
            "--learning-period",
            LEARNING_PERIOD,
            "--profiles-dir",
            str(profiles),
            "--summary",
        ],
        env=env,
    )
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    alerts = [json.loads(line) for line in proc.stdout]
    assert sorted(expected_of(a) for a in alerts) == sorted(EXPECTED)
    summary = proc.stderr[proc.stderr.index("gadgetwatch summary") :]
    _, decoded = capture_counts(CAPTURE)
    total = sum(decoded.values())
    assert summary[1].strip() == (
        f"events: received {total}, processed {total}, lost upstream 0, dropped 0"
    )
    assert summary[2].strip() == f"profiles: {len(PROFILE_NAMES)} ({len(PROFILE_NAMES)} completed)"
    assert summary[3].strip() == f"alerts: {len(EXPECTED)}"
    by_rule = Counter(e.rule_id for e in EXPECTED)
    assert summary[4 : 4 + len(by_rule)] == [f"    {r}: {c}" for r, c in sorted(by_rule.items())]
    check_profiles_dir(profiles)


#: The example capture's intrusion (README's main job), all in this container.
EXAMPLE_POD, EXAMPLE_CONTAINER = "webshop-6f7c9d8b5d-k7x2p", "app"
EXAMPLE_INTRUSION = {
    ("R0001", "/bin/dash"),
    ("R0001", "/bin/cat"),
    ("R0001", "/usr/bin/curl"),
    ("R0001", "/bin/chmod"),
    ("R0001", "/dev/shm/kworker"),
    ("R0006", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
    ("R1000", "/dev/shm/kworker"),
    ("R1001", "/dev/shm/kworker"),
    ("R0005", "pool.supportxmr.com"),
    ("R1008", "pool.supportxmr.com"),
    ("R0011", "141.94.96.144:3333"),
    ("R1009", "141.94.96.144:3333"),
    ("R0010", "/etc/shadow"),
}
INTRUSION_START = "2026-03-02T10:20:00"


async def replay_example(tmp_path: Path, env: dict[str, str], *flags: str) -> Proc:
    """`gadgetwatch run --replay` of the example capture with the README's 10 minute learning
    period (and `flags`), run to its end; the finished process, its output collected."""
    proc = await Proc.start(
        "agent",
        [GADGETWATCH, "run", *flags, "--no-metrics", "--replay", str(EXAMPLE_CAPTURE),
         "--learning-period", "10m", "--profiles-dir", str(tmp_path / "profiles")],
        env=env,
    )  # fmt: skip
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    return proc


async def test_example_capture_reports_the_intrusion(tmp_path: Path, env: dict[str, str]) -> None:
    """`examples/webshop-intrusion.capture.jsonl` with the README's 10 minute learning period:
    every step of the intrusion is reported, and nothing before it (ordered replay)."""
    proc = await replay_example(tmp_path, env)
    alerts = [json.loads(line) for line in proc.stdout]
    found = {
        (e.rule_id, e.key)
        for a in alerts
        if (e := expected_of(a)).pod == EXAMPLE_POD and e.container == EXAMPLE_CONTAINER
    }
    assert found >= EXAMPLE_INTRUSION, EXAMPLE_INTRUSION - found
    for a in alerts:
        assert a["kubernetes"]["workloadKind"] == "Deployment"
    early = [(a["time"], a["rule"]["id"]) for a in alerts if a["time"] < INTRUSION_START]
    assert early == []
    # The agent asks trace_exec for `paths` (the replay server, like IG, leaves exepath empty
    # otherwise): every learned executable is the absolute path of the file that ran.
    execs = _learned_exec_paths(tmp_path / "profiles")
    assert execs
    assert all(p.startswith("/") for p in execs), sorted(execs)
    assert "/usr/sbin/nginx" in execs


def _learned_exec_paths(directory: Path) -> set[str]:
    return {
        e["path"]
        for f in directory.rglob("*.yaml")
        for c in yaml.safe_load(f.read_text())["spec"]["containers"]
        for e in c.get("execs", [])
    }


async def test_without_exec_paths_nothing_is_learned_from_argv0(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A user override `paths=false` (or an IG without it): IG sends no exepath, so profiles
    record unresolved executables instead of trusting argv[0], and the agent says which rules
    degrade."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"gadgetclient": {"params": {"operator.oci.ebpf.paths": "false"}}})
    )
    proc = await replay_example(tmp_path, env, "--config", str(config))
    execs = _learned_exec_paths(tmp_path / "profiles")
    assert execs
    assert all(p.startswith("unresolved:") for p in execs), sorted(execs)
    warnings = proc.log_events("gadget runs without params gadgetwatch relies on")
    assert [w["overridden"] for w in warnings if w["gadget"] == "trace_exec"] == [
        ["operator.oci.ebpf.paths"]
    ]


async def test_replayed_capture_leaves_its_alerts_firing_in_alertmanager(
    tmp_path: Path,
    env: dict[str, str],
    alertmanager_factory: Callable[..., Alertmanager],
) -> None:
    """`gadgetwatch run --replay CAPTURE --alertmanager URL` with the default settings: the
    capture's event times are months in the past, yet every alert is firing in a real
    AlertManager once the run is over, one per distinct finding (the five unexpected processes
    of the intrusion are five alerts, each naming its process), `startsAt` at the event."""
    am = alertmanager_factory()
    proc = await replay_example(tmp_path, env, "--stdout", "--alertmanager", am.url)
    alerts = [json.loads(line) for line in proc.stdout]
    assert alerts
    got = {a["labels"]["finding"]: a for a in am.alerts()}
    assert set(got) == {a["fingerprint"] for a in alerts}
    for alert in alerts:
        fired = got[alert["fingerprint"]]
        assert fired["status"]["state"] == "active"
        assert fired["startsAt"][:19] == alert["dedup"]["firstSeen"][:19]
        assert fired["labels"]["rule_id"] == alert["rule"]["id"]
    processes = {
        a["annotations"]["description"]
        for a in got.values()
        if a["labels"]["rule_id"] == "R0001"
        and a["labels"].get("workload_name") == "webshop"
        and a["labels"].get("container") == EXAMPLE_CONTAINER
    }
    for _, path in (x for x in EXAMPLE_INTRUSION if x[0] == "R0001"):
        assert sum(path in d for d in processes) >= 1, (path, processes)
