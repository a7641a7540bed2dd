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
    """The example generator, with a start time per container (a rollout starts later)."""

    def __init__(self, started: dict[str, int]) -> None:
        super().__init__()
        self.started = started

    def runtime(self, c: Any) -> dict[str, Any]:
        out: dict[str, Any] = ex.Gen.runtime(c)
        out["containerStartedAt"] = self.started.get(c.cid, T0)
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


LIFECYCLE_EXPECTED: tuple[Expected, ...] = (
    _e("R0002", SESS, "/etc/shadow"),
    _e("R0010", SESS, "/etc/shadow"),
    _e("R1000", WEB_V2, "/dev/shm/dropper"),
    _e("R1001", WEB_V2, "/dev/shm/dropper"),
    _e("R0001", WEB_V2, "/usr/bin/nc"),
    _e("R0001", API_V2, "/usr/bin/curl"),
)
