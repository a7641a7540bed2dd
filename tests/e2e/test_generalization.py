"""Generalised profiles and IG's losses, end to end: captures replayed through the agent.

Three workloads show behaviour any engineer calls normal but a literal profile alerts on: a
proxy resolving CDN edge names, a JVM service rotating its logs, a StatefulSet that scales up
and passes its own pod name and ordinal in arguments. After learning, their normal behaviour
must be silent, and the attacker's variants of it must alert: a new top-level domain, a name
under a public suffix, a file with a different shape in the rotated directory, a new argument
flag. The same capture with generalisation switched off (`profiler.generalize: []`) alerts on
the normal behaviour too, so the tests show what generalisation changes; the per-workload
annotation is tested with the learner (tests/profiler/test_generalizing.py). A capture with
IG's losses (seq jumps, "lost N samples") shows them in the agent's accounting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness import GADGETWATCH, Proc
from tests.e2e.scenario import MIN, SEC, T0, ex

NODE = "node-a"
#: Learning ends T0 + 1 min: every container starts at T0 (the generator's start time).
LEARNING_PERIOD = "1m"
AFTER = T0 + 2 * MIN

EDGE = ex.Ctr(NODE, "edge-6d5f8c7b9-x7k2p", "envoy", "envoyproxy/envoy:v1.31.2",
              "sha256:" + "e1" * 32, "ReplicaSet", "edge-6d5f8c7b9",
              "app=edge,pod-template-hash=6d5f8c7b9", "e1" * 32, 31000, 4026534001, 4026534501,
              "10.244.1.31", 101)  # fmt: skip
ORDERS = ex.Ctr(NODE, "orders-7c9d6b5f4-m2n8q", "java", "ghcr.io/example/orders:5.2.0",
                "sha256:" + "a2" * 32, "ReplicaSet", "orders-7c9d6b5f4",
                "app=orders,pod-template-hash=7c9d6b5f4", "a2" * 32, 32000, 4026534002,
                4026534502, "10.244.1.32", 1000)  # fmt: skip


def _db(ordinal: int) -> Any:
    return ex.Ctr(NODE, f"db-{ordinal}", "db", "ghcr.io/example/kvdb:2.1",
                  "sha256:" + "d3" * 32, "StatefulSet", "db",
                  f"app=db,apps.kubernetes.io/pod-index={ordinal},controller-revision-hash=db-5f",
                  f"d{ordinal}" * 32, 33000 + ordinal, 4026534010 + ordinal,
                  4026534510 + ordinal, f"10.244.1.{40 + ordinal}", 999)  # fmt: skip


DB0, DB1, DB2 = _db(0), _db(1), _db(2)
CDN_EDGES = ("r3---sn-4g5e6nsz", "r1---sn-ab5l6nrz", "r5---sn-h5q7dnel", "r2---sn-q4fl6n6s",
             "r4---sn-8xgp1vo")  # fmt: skip
DISTRIBUTIONS = ("d1a2b3c4e5f6g7", "d2b3c4d5e6f7g8", "d3c4d5e6f7g8h9", "d4d5e6f7g8h9i0",
                 "d5e6f7g8h9i0j1")  # fmt: skip
W = "O_WRONLY|O_CREAT|O_APPEND"


def _db_exec(g: Any, c: Any, ts: int, *extra: str) -> None:
    args = ["/usr/local/bin/kvdb", "--advertise-host", f"{c.pod}.db.shop.svc.cluster.local",
            "--id", c.pod.rsplit("-", 1)[1], "--data", "/data/db", *extra]  # fmt: skip
    g.exec_(c, ts, exe=args[0], args=args, pid=1, pcomm="containerd-shim", ppid=c.pid - 20)


def _learning(g: Any) -> None:
    t = T0 + SEC
    for i, edge in enumerate(CDN_EDGES):
        g.dns(EDGE, t + i * SEC, comm="envoy", pid=1, name=f"{edge}.googlevideo.com.",
              answers=[f"172.217.0.{i + 1}"])  # fmt: skip
    for i, dist in enumerate(DISTRIBUTIONS):
        g.dns(EDGE, t + (10 + i) * SEC, comm="envoy", pid=1, name=f"{dist}.cloudfront.net.",
              answers=[f"13.32.0.{i + 1}"])  # fmt: skip
    g.dns(
        EDGE, t + 20 * SEC, comm="envoy", pid=1, name="api.stripe.com.", answers=["54.187.216.72"]
    )
    logs = ("/var/log/orders/app.2026-03-01.1.log.gz", "/var/log/orders/app.2026-03-01.2.log.gz",
            "/var/log/orders/access.log.1", "/var/log/orders/access.log.2",
            "/var/log/orders/access.log", "/opt/orders/lib/spring-core-6.1.2.jar",
            "/opt/orders/lib/jackson-databind-2.17.0.jar")  # fmt: skip
    for i, path in enumerate(logs):
        g.open_(ORDERS, t + (2 + i) * SEC, comm="java", pid=1, path=path,
                flags="O_RDONLY" if path.endswith(".jar") else W)  # fmt: skip
    for k, c in enumerate((DB0, DB1)):
        _db_exec(g, c, t + k * SEC)
        g.open_(c, t + (5 + k) * SEC, comm="kvdb", pid=1, path=f"/data/db/00007{3 + k}.sst")


def _normal_after(g: Any) -> None:
    """What the workloads keep doing: silent once learned (generalised)."""
    t = AFTER
    g.dns(EDGE, t, comm="envoy", pid=1, name="r9---sn-n0wedge7.googlevideo.com.",
          answers=["172.217.9.9"])  # fmt: skip
    g.open_(ORDERS, t + SEC, comm="java", pid=1, path="/var/log/orders/app.2026-03-02.1.log.gz",
            flags=W)  # fmt: skip
    g.open_(ORDERS, t + 2 * SEC, comm="java", pid=1, path="/var/log/orders/access.log.3", flags=W)
    _db_exec(g, DB2, t + 3 * SEC)  # the StatefulSet scales up: its first start
    g.open_(DB2, t + 4 * SEC, comm="kvdb", pid=1, path="/data/db/000075.sst")


#: The attacker's variants of generalised behaviour: (rule, key) each must alert.
ATTACKS = {
    ("R0005", "r9---sn-n0wedge7.googlevideo.xyz"),  # a new top-level domain
    ("R0005", "d9z8y7x6w5v4u3.cloudfront.net"),  # under a public suffix: never widened
    ("R0002", "/var/log/orders/access.log.3.sh"),  # another file shape in the rotated directory
    ("R0002", "/var/log/orders/app.2026-03-02.1.log.gz.so"),
    ("R0001", "/usr/local/bin/kvdb"),  # a new argument flag on the scaled-up replica
}
#: What the same normal behaviour raises when generalisation is off (the annotation).
LITERAL_ALERTS = {
    ("R0005", "r9---sn-n0wedge7.googlevideo.com"),
    ("R0002", "/var/log/orders/app.2026-03-02.1.log.gz"),
    ("R0002", "/var/log/orders/access.log.3"),
    ("R0001", "/usr/local/bin/kvdb"),
    ("R0002", "/data/db/000075.sst"),
}


def _attacks(g: Any) -> None:
    t = AFTER + MIN
    g.dns(EDGE, t, comm="envoy", pid=1, name="r9---sn-n0wedge7.googlevideo.xyz.",
          answers=["203.0.113.9"])  # fmt: skip
    g.dns(EDGE, t + SEC, comm="envoy", pid=1, name="d9z8y7x6w5v4u3.cloudfront.net.",
          answers=["13.32.9.9"])  # fmt: skip
    g.open_(ORDERS, t + 2 * SEC, comm="sh", pid=66, path="/var/log/orders/access.log.3.sh",
            flags=W)  # fmt: skip
    g.open_(ORDERS, t + 3 * SEC, comm="sh", pid=66,
            path="/var/log/orders/app.2026-03-02.1.log.gz.so", flags=W)  # fmt: skip
    _db_exec(g, DB2, t + 4 * SEC, "--admin-listen", "0.0.0.0:9999")


def _lines(*, attacks: bool) -> Iterator[dict[str, Any]]:
    g = ex.Gen()
    _learning(g)
    _normal_after(g)
    if attacks:
        _attacks(g)
    for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1])):
        yield line


DEFAULT_BINDING = Path(__file__).resolve().parents[2] / "deploy/bindings/all-rules-all-pods.yaml"


def write_capture(path: Path, lines: Iterator[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"gadgetwatchCapture": 2, "generator": __name__}) + "\n")
        for line in lines:
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return path


def _bindings_enforcing_args(tmp_path: Path) -> Path:
    """The default binding with R0001 `enforceArgs: true`: argument placeholders only matter
    when arguments are compared (the default, as in Kubescape, compares the executable only)."""
    doc = yaml.safe_load(DEFAULT_BINDING.read_text())
    for rule in doc["spec"]["rules"]:
        if rule["ruleName"] == "Unexpected process launched":
            rule["parameters"] = {"enforceArgs": True}
    path = tmp_path / "bindings.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def _run(tmp_path: Path, env: dict[str, str], capture: Path, *extra: str) -> Proc:
    config = tmp_path / "config.yaml"
    settings: dict[str, Any] = {"kubernetes": {"mode": "off"}, **_config_extra(extra)}
    settings["detector"] = {"bindingsFile": str(_bindings_enforcing_args(tmp_path))}
    config.write_text(yaml.safe_dump(settings))
    proc = await Proc.start(
        "agent",
        [GADGETWATCH, "run", "--config", str(config), "--no-metrics", "--replay", str(capture),
         "--learning-period", LEARNING_PERIOD, "--profiles-dir", str(tmp_path / "profiles"),
         "--summary"],
        env=env,
    )  # fmt: skip
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    return proc


def _config_extra(extra: tuple[str, ...]) -> dict[str, Any]:
    if "literal" in extra:
        return {"profiler": {"generalize": []}}
    return {}


def _found(proc: Proc) -> set[tuple[str, str]]:
    out = set()
    for line in proc.stdout:
        alert = json.loads(line)
        ev = alert["event"]
        key = ev.get("path") or str(ev.get("name", "")).rstrip(".")
        out.add((alert["rule"]["id"], key))
    return out


async def test_normal_behaviour_is_silent_and_the_attackers_variants_alert(
    tmp_path: Path, env: dict[str, str]
) -> None:
    capture = write_capture(tmp_path / "general.jsonl", _lines(attacks=True))
    proc = await _run(tmp_path, env, capture)
    assert _found(proc) == ATTACKS, proc.tail()
    # The profiles hold the generalised entries (what `profile show` lists).
    show = await Proc.start(
        "show",
        [GADGETWATCH, "profile", "--profiles-dir", str(tmp_path / "profiles"), "show",
         "shop/statefulset-db-db"],
        env=env,
    )  # fmt: skip
    assert await show.wait_exit() == 0, show.tail()
    text = "\n".join(show.stdout)
    assert "Generalised" in text
    assert "⟨pod⟩.db.shop.svc.cluster.local" in text
    assert "/data/db/⟨n⟩.sst" in text


async def test_without_generalisation_the_same_normal_behaviour_alerts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    capture = write_capture(tmp_path / "literal.jsonl", _lines(attacks=False))
    proc = await _run(tmp_path, env, capture, "literal")
    assert _found(proc) == LITERAL_ALERTS, proc.tail()


async def test_igs_losses_in_a_capture_are_accounted_by_the_agent(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """seq jumps and "lost N samples" log lines replayed through the agent: its summary (the
    same counters as `gadgetwatch_ig_lost_events_total`) shows exactly what IG lost."""
    lines: list[dict[str, Any]] = []
    seq: dict[str, int] = {}
    for i, line in enumerate(_lines(attacks=False)):
        gadget = line["gadget"]
        seq[gadget] = seq.get(gadget, 0) + (1 if i != 10 else 4)  # IG dropped 3 payloads here
        lines.append({**line, "seq": seq[gadget]})
        if i == 20:
            lost = {"severity": "warning", "message": "lost 17 samples"}
            lines.append({"gadget": gadget, "node": NODE, "log": lost})
    capture = write_capture(tmp_path / "lossy.jsonl", iter(lines))
    proc = await _run(tmp_path, env, capture, "literal")
    summary = proc.stderr[proc.stderr.index("gadgetwatch summary") :]
    assert summary[1].strip() == (
        f"events: received {len(lines) - 1}, processed {len(lines) - 1}, lost upstream 20, "
        "dropped 0"
    ), proc.tail()
