"""A deterministic, node-sized capture for the pipeline benchmark (`bench_pipeline.py`).

    .venv/bin/python benchmarks/pipeline_capture.py -o FILE [--steady-events N]

One node running 500 containers of 25 workloads (15 Deployments with an `app` and a `proxy`
container and 12 replicas, 10 with a single `app` container and 14 replicas: 40 workload
containers, hence 40 application profiles), in IG v0.55's `-o json` form. The record shapes
are those of `examples/make_webshop_capture.py` (imported, not copied), so the replay server
lays the payloads out exactly as for the bundled example:

* learning phase (event time T0+1 s .. T0+2 min, `LEARNING_EVENTS` lines): every container's
  start-up exec, then every entry of every workload container's vocabulary (execs, opens,
  egress and ingress peers, DNS names, capabilities) once, then random traffic drawn from the
  vocabularies; one advise_seccomp array (500 syscall sets) at T0+60 s;
* steady phase (from T0+2 min 5 s, one event every 10 ms of event time): traffic drawn from
  the same vocabularies, so it matches the profiles, plus one anomaly every `ANOMALY_EVERY`
  lines, cycling over an unexpected exec (R0001), file (R0002), domain (R0005) and public
  egress destination (R0011), each with a value never seen before so that every one is a
  distinct alert (no cooldown hit); one more advise_seccomp array 1,000 lines in.

The mix (trace_open 45 %, trace_tcp 30 %, trace_dns 12 % as query + response, trace_exec 8 %,
trace_capabilities 5 %) follows what busy service nodes report: file opens dominate, then
connections and lookups; execs are rare in long-running services.

A prefix of the file (header, learning phase, first N steady lines) is itself a valid capture
of the same shape: the benchmark cuts one per rate so each rate runs for the time it asks for.
`LEARNING_PERIOD` is the learning period to give the agent.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location(
    "make_webshop_capture", ROOT / "examples" / "make_webshop_capture.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
shapes: Any = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = shapes  # dataclasses resolve annotations through sys.modules
_SPEC.loader.exec_module(shapes)

NODE = "node-a"
T0: int = shapes.T0
SEC: int = shapes.SEC
#: Learning period for the agent (event time): the learning phase below spans it.
LEARNING_PERIOD = "2m"
LEARNING_END = T0 + 120 * SEC
#: Lines of the learning phase: start-ups (500) + vocabulary coverage (~2,900) + random
#: traffic, enough that each replica is seen several times before its profile completes.
LEARNING_EVENTS = 12_000
#: Steady phase event-time spacing: 10 ms keeps 100k lines within ~17 minutes of event time,
#: so the anomalies (one per `ANOMALY_EVERY` lines) stay far below the detector's per-rule
#: rate limit (120 per minute) and every anomaly becomes an alert.
STEADY_STEP = 10_000_000
STEADY_START = T0 + 125 * SEC
#: One anomaly per 400 lines: 0.25 % of the stream, enough alerts at every rate for a latency
#: distribution (37 in a 15 s run at 1k events/s), still rare next to normal traffic.
ANOMALY_EVERY = 400
SECCOMP_STEADY_AT = 1_000
WORKLOADS = 25
NAMESPACES = ("shop", "payments", "search", "media", "ops")
RUNTIMES = ("gunicorn", "node", "java", "puma", "uvicorn")
INGRESS_PEERS = ("10.244.0.5", "10.244.0.6", "10.244.3.7")
KINDS: tuple[tuple[str, int], ...] = (
    ("open", 45),
    ("tcp", 30),
    ("dns", 6),
    ("exec", 8),
    ("cap", 5),
)
CAPS = (
    ("CAP_NET_BIND_SERVICE", "SYS_BIND"),
    ("CAP_SETUID", "SYS_SETUID"),
    ("CAP_SETGID", "SYS_SETGID"),
    ("CAP_CHOWN", "SYS_CHOWN"),
)
RDONLY = ("O_RDONLY|O_CLOEXEC", 0o2000000)
APPEND = ("O_WRONLY|O_CREAT|O_APPEND", 0o2101)


@dataclass(frozen=True)
class Vocab:
    """What one workload container does: the entries its profile will hold."""

    comm: str
    execs: tuple[tuple[str, tuple[str, ...]], ...]
    opens: tuple[tuple[str, str, int], ...]
    egress: tuple[tuple[str, int, str, str, str], ...]
    dns: tuple[tuple[str, tuple[str, ...]], ...]
    caps: tuple[tuple[str, str], ...]
    listen: int


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _vocab(i: int, container: str, ns: str) -> Vocab:
    if container == "proxy":
        exe = "/usr/local/bin/envoy"
        return Vocab(
            comm="envoy",
            execs=((exe, ("envoy", "-c", "/etc/envoy/envoy.yaml")),),
            opens=(
                ("/etc/envoy/envoy.yaml", *RDONLY),
                ("/etc/ssl/certs/ca-certificates.crt", *RDONLY),
                ("/etc/envoy/tls/tls.crt", *RDONLY),
                ("/etc/envoy/tls/tls.key", *RDONLY),
                ("/dev/stdout", "O_WRONLY", 1),
            ),
            egress=(("127.0.0.1", 8080, "raw", "", ""),),
            dns=(),
            caps=(CAPS[0],),
            listen=15001,
        )
    comm = RUNTIMES[i % len(RUNTIMES)]
    exe = f"/usr/local/bin/{comm}"
    execs: list[tuple[str, tuple[str, ...]]] = [
        (exe, (comm, "--config", "/app/config/settings.yaml")),
        ("/bin/sh", ("/bin/sh", "-c", "/app/bin/healthcheck")),
        ("/app/bin/healthcheck", ("/app/bin/healthcheck",)),
        ("/usr/bin/curl", ("curl", "-sf", "http://127.0.0.1:8080/healthz")),
        ("/bin/date", ("date", "+%s")),
    ]
    execs += [(exe, (comm, f"/app/jobs/job{k}.py")) for k in range(3)]
    opens: list[tuple[str, str, int]] = [
        (f"/app/{pkg}/{mod}.py", *RDONLY)
        for pkg in ("api", "models", "services", "util")
        for mod in ("__init__", "handlers", "schema", "store", "cache", "auth")
    ]
    opens += [
        (p, *RDONLY)
        for p in (
            "/app/config/settings.yaml",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/nsswitch.conf",
            "/etc/localtime",
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
        )
    ]
    opens += [("/var/log/app/app.log", *APPEND)]
    opens += [(f"/tmp/cache/{k}.bin", "O_RDWR|O_CREAT", 0o102) for k in range(5)]
    partner = f"52.{10 + i}.{i % 7}.{20 + i % 5}"
    vendor = f"34.{100 + i % 3}.8.9"
    return Vocab(
        comm=comm,
        execs=tuple(execs),
        opens=tuple(opens),
        egress=(
            (f"10.96.{i}.10", 5432, "svc", f"db-{i:02d}", ns),
            (f"10.96.{i}.11", 6379, "svc", f"cache-{i:02d}", ns),
            (f"10.96.{(i + 1) % WORKLOADS}.1", 8080, "svc", f"svc-{(i + 1) % WORKLOADS:02d}", ns),
            (partner, 443, "raw", "", ""),
            (vendor, 443, "raw", "", ""),
        ),
        dns=(
            (f"db-{i:02d}.{ns}.svc.cluster.local.", (f"10.96.{i}.10",)),
            (f"api.partner{i % 7}.example.com.", (partner,)),
            (f"telemetry.vendor{i % 3}.example.net.", (vendor,)),
        ),
        caps=CAPS[1 : 2 + i % 3],
        listen=8080,
    )


@dataclass(frozen=True)
class Member:
    """One running container and the vocabulary of its workload container."""

    ctr: Any  # make_webshop_capture.Ctr
    vocab: Vocab
    ns: str


def containers() -> list[Member]:
    """500 containers: 15 workloads x 2 containers x 12 replicas + 10 x 1 x 14."""
    out: list[Member] = []
    n = 0
    for i in range(WORKLOADS):
        ns = NAMESPACES[i % len(NAMESPACES)]
        name = f"svc-{i:02d}"
        rs_hash = _hex(name, 10)
        names = ("app", "proxy") if i < 15 else ("app",)
        replicas = 12 if i < 15 else 14
        for r in range(replicas):
            pod = f"{name}-{rs_hash}-{_hex(f'{name}/{r}', 5)}"
            ip = f"10.244.{1 + n // 200}.{n % 200 + 2}"
            for j, cname in enumerate(names):
                image = f"registry.example.com/{ns}/{name}-{cname}:1.{i}.0"
                ctr = shapes.Ctr(
                    NODE, pod, cname, image, "sha256:" + _hex(image, 64), "ReplicaSet",
                    f"{name}-{rs_hash}", f"app={name},pod-template-hash={rs_hash}",
                    _hex(f"{pod}/{cname}", 64), 30_000 + 10 * n + j, 4026540000 + 2 * n + j,
                    4026560000 + n, ip, 1000 if cname == "app" else 101,
                )  # fmt: skip
                out.append(Member(ctr, _vocab(i, cname, ns), ns))
            n += 1
    return out


class Writer:
    """Emits capture lines through the example's generator and writes them in order."""

    def __init__(self, out: TextIO, seed: int) -> None:
        self.out = out
        self.gen: Any = shapes.Gen()
        self.gen.rng = random.Random(seed)
        self.rng = random.Random(seed + 1)
        self.lines = 0

    def drain(self) -> None:
        for _, _, line in self.gen.lines:
            self.out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.lines += len(self.gen.lines)
        self.gen.lines.clear()

    # -- one event of each kind ---------------------------------------------------------------

    def exec_(self, m: Member, ts: int, exe: str, args: tuple[str, ...]) -> None:
        c = m.ctr
        self.gen.exec_(
            c, ts, exe=exe, args=list(args), pid=4000 + self.rng.randrange(5000),
            pcomm=m.vocab.comm, ppid=7, cwd="/app", parent_exe="/bin/sh",
        )  # fmt: skip

    def open_(self, m: Member, ts: int, path: str, flags: str, raw: int) -> None:
        self.gen.open_(
            m.ctr, ts, comm=m.vocab.comm, pid=7, path=path, flags=flags, flags_raw=raw,
            pcomm=m.vocab.comm, ppid=1,
        )  # fmt: skip

    def connect(self, m: Member, ts: int, peer: tuple[str, int, str, str, str]) -> None:
        g, c = self.gen, m.ctr
        addr, port, kind, name, ns = peer
        g.tcp(
            c, ts, comm=m.vocab.comm, pid=7, kind="connect",
            src=g.endpoint(c.ip, self.rng.randrange(32768, 60999)),
            dst=g.endpoint(addr, port, kind, name, ns), pcomm=m.vocab.comm,
        )  # fmt: skip

    def accept(self, m: Member, ts: int, remote: str) -> None:
        g, c = self.gen, m.ctr
        g.tcp(
            c, ts, comm=m.vocab.comm, pid=7, kind="accept",
            src=g.endpoint(c.ip, m.vocab.listen, "pod", c.pod, m.ns),
            dst=g.endpoint(remote, self.rng.randrange(32768, 60999), "pod", "ingress", "ingress"),
            pcomm=m.vocab.comm,
        )  # fmt: skip

    def dns(self, m: Member, ts: int, name: str, answers: tuple[str, ...]) -> None:
        self.gen.dns(
            m.ctr, ts, comm=m.vocab.comm, pid=7, name=name, answers=list(answers),
            pcomm=m.vocab.comm,
        )  # fmt: skip

    def cap(self, m: Member, ts: int, cap: str, syscall: str) -> None:
        self.gen.cap(m.ctr, ts, comm=m.vocab.comm, pid=7, cap=cap, syscall=syscall)

    def seccomp(self, members: list[Member], ts: int) -> None:
        g = self.gen
        elements = [
            {
                "k8s": g.k8s(m.ctr),
                "mntns_id_raw": m.ctr.mntns,
                "runtime": g.runtime(m.ctr),
                "syscalls": [1 if s in _syscalls(m) else 0 for s in range(501)],
            }
            for m in members
        ]
        g.emit(ts, "advise_seccomp", "syscalls", NODE, elements)

    # -- traffic --------------------------------------------------------------------------------

    @staticmethod
    def _at(fn: Callable[..., None], m: Member, *rest: Any) -> None:
        """`fn(m, ts, *values)` with the timestamp last in `rest` (partial-friendly order)."""
        fn(m, rest[-1], *rest[:-1])

    def everything(self, m: Member, ts: int, step: int) -> int:
        """Every vocabulary entry of `m` once; returns the next free timestamp."""
        v = m.vocab
        acts: list[Callable[[int], None]] = []
        acts += [functools.partial(self._at, self.exec_, m, *e) for e in v.execs]
        acts += [functools.partial(self._at, self.open_, m, *o) for o in v.opens]
        acts += [functools.partial(self._at, self.connect, m, p) for p in v.egress]
        acts += [functools.partial(self._at, self.accept, m, r) for r in INGRESS_PEERS]
        acts += [functools.partial(self._at, self.dns, m, *d) for d in v.dns]
        acts += [functools.partial(self._at, self.cap, m, *c) for c in v.caps]
        for act in acts:
            act(ts)
            self.drain()
            ts += step
        return ts

    def normal(self, m: Member, ts: int) -> None:
        """One draw from the container's vocabulary, kind by the mix weights."""
        v, rng = m.vocab, self.rng
        kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
        if kind == "dns" and not v.dns:
            kind = "open"
        if kind == "open":
            self.open_(m, ts, *rng.choice(v.opens))
        elif kind == "tcp":
            if rng.random() < 0.5:
                self.accept(m, ts, rng.choice(INGRESS_PEERS))
            else:
                self.connect(m, ts, rng.choice(v.egress))
        elif kind == "dns":
            self.dns(m, ts, *rng.choice(v.dns))
        elif kind == "exec":
            self.exec_(m, ts, *rng.choice(v.execs))
        else:
            self.cap(m, ts, *rng.choice(v.caps))

    def anomaly(self, m: Member, ts: int, n: int) -> None:
        """Behaviour outside the profile, with a value never used before (a distinct alert)."""
        kind = n % 4
        if kind == 0:
            self.exec_(m, ts, f"/tmp/.cache/tool-{n}", (f"tool-{n}", "--quiet"))
        elif kind == 1:
            self.open_(m, ts, f"/root/.config/stolen-{n}.json", *RDONLY)
        elif kind == 2:
            self.dns(m, ts, f"c2-{n}.unexpected.example.org.", (f"198.51.100.{n % 250 + 1}",))
        else:
            # Public addresses (documentation ranges count as private and R0011 skips them).
            peer = (f"185.{40 + n // 250 % 50}.{n % 250 + 1}.7", 4000 + n % 1000, "raw", "", "")
            self.connect(m, ts, peer)


def _syscalls(m: Member) -> frozenset[int]:
    base: list[int] = shapes.SECCOMP["nginx" if m.ctr.name == "proxy" else "app"]
    return frozenset(base)


def generate(out: TextIO, *, steady_events: int, seed: int = 6) -> dict[str, int]:
    """Write the capture; returns the line counts (learning, steady, anomalies)."""
    members = containers()
    w = Writer(out, seed)
    header = {
        "gadgetwatchCapture": 1,
        "generator": "benchmarks/pipeline_capture.py",
        "serverVersion": "0.55.1",
        "startedAt": shapes._fmt(T0),
        "description": f"500 containers of {WORKLOADS} workloads on {NODE}; learning phase "
        f"{LEARNING_EVENTS} lines, steady phase {steady_events} lines",
    }
    out.write(json.dumps(header, separators=(",", ":")) + "\n")
    # Learning phase: start-ups, vocabulary coverage (spread over the replicas), random draws.
    step = (LEARNING_END - 2 * SEC - T0) // LEARNING_EVENTS
    ts = T0 + SEC
    for m in members:
        exe, args = m.vocab.execs[0]
        w.exec_(m, ts, exe, args)
        w.drain()
        ts += step
    seen: set[tuple[str, str]] = set()
    for m in members:
        key = (m.ctr.owner_name, m.ctr.name)
        if key not in seen:
            seen.add(key)
            ts = w.everything(m, ts, step)
    seccomp_done = False
    while w.lines < LEARNING_EVENTS:
        if not seccomp_done and ts >= T0 + 60 * SEC:
            w.seccomp(members, ts)
            seccomp_done = True
        else:
            w.normal(w.rng.choice(members), ts)
        w.drain()
        ts += step
    learning = w.lines
    # Steady phase.
    ts = STEADY_START
    anomalies = 0
    for k in range(steady_events):
        if k == SECCOMP_STEADY_AT:
            w.seccomp(members, ts)
        elif k % ANOMALY_EVERY == ANOMALY_EVERY - 1:
            w.anomaly(w.rng.choice(members), ts, anomalies)
            anomalies += 1
        else:
            w.normal(w.rng.choice(members), ts)
        w.drain()
        ts += STEADY_STEP
    return {"learning": learning, "steady": w.lines - learning, "anomalies": anomalies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--steady-events", type=int, default=100_000)
    args = parser.parse_args()
    with args.output.open("w", encoding="utf-8") as out:
        counts = generate(out, steady_events=args.steady_events)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
