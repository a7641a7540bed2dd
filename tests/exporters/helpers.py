"""Test helpers: alert factory, condition waits, free ports, an RFC 5424 parser."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from detector.alerts import (
    Alert,
    DedupInfo,
    KubernetesInfo,
    ProcessInfo,
    RuleId,
    RuleInfo,
    RuntimeInfo,
    Severity,
)

_seq = itertools.count(1)


def make_alert(
    *,
    fingerprint: str | None = None,
    rule_id: str = "R0001",
    rule_name: str = "Unexpected process launched",
    severity: Severity = Severity.HIGH,
    namespace: str = "prod",
    workload_kind: str = "Deployment",
    workload_name: str = "web",
    pod: str = "web-6d4b-x2",
    container: str = "app",
    node: str = "node-1",
    message: str = "Unexpected process launched: curl",
    fix: str = "If this is expected, add it to the profile.",
    comm: str = "curl",
    pid: int = 4242,
    args: tuple[str, ...] = ("curl", "-s", "http://example.invalid"),
    count: int = 1,
    time_ns: int | None = None,
    event: dict[str, object] | None = None,
    cluster: str = "",
) -> Alert:
    n = next(_seq)
    now = time.time_ns() if time_ns is None else time_ns
    return Alert(
        rule=RuleInfo(
            id=RuleId(rule_id),
            name=rule_name,
            severity=severity,
            tags=("exec",),
            mitre_tactic="TA0002",
            mitre_technique="T1059",
        ),
        message=message,
        fix_suggestion=fix,
        time_ns=now,
        kubernetes=KubernetesInfo(
            node=node,
            namespace=namespace,
            workload_kind=workload_kind,
            workload_name=workload_name,
            pod=pod,
            container=container,
        ),
        runtime=RuntimeInfo(container_id="c0ffee" * 10, image="registry/web:1.2"),
        process=ProcessInfo(
            pid=pid, comm=comm, exe=f"/usr/bin/{comm}", args=args, uid=1000, gid=1000, ppid=1
        ),
        event=event if event is not None else {"path": "/usr/bin/curl"},
        dedup=DedupInfo(count=count, first_seen_ns=now, last_seen_ns=now),
        fingerprint=fingerprint if fingerprint is not None else f"fp-{n}",
        cluster=cluster,
    )


async def wait_until(
    predicate: Callable[[], bool], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Poll `predicate` until true; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_until_sync(
    predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on right now (bound once, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- RFC 5424 -----------------------------------------------------------------------------------

_HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
)


@dataclass
class SyslogMessage:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: str

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def severity(self) -> int:
        return self.pri % 8


def parse_rfc5424(line: str) -> SyslogMessage:
    """Strict parser for the messages we send: header, SD elements with escapes, MSG."""
    m = _HEADER.match(line)
    if m is None:
        raise ValueError(f"not an RFC 5424 header: {line[:80]!r}")
    pos = m.end()
    sd: dict[str, dict[str, str]] = {}
    if line.startswith("-", pos):
        pos += 1
    else:
        while pos < len(line) and line[pos] == "[":
            end_id = pos + 1
            while line[end_id] not in " ]":
                end_id += 1
            sd_id = line[pos + 1 : end_id]
            params: dict[str, str] = {}
            pos = end_id
            while line[pos] == " ":
                eq = line.index("=", pos)
                name = line[pos + 1 : eq]
                if line[eq + 1] != '"':
                    raise ValueError(f"PARAM-VALUE of {name} is not quoted")
                i = eq + 2
                value = []
                while line[i] != '"':
                    if line[i] == "\\" and line[i + 1] in '"\\]':
                        value.append(line[i + 1])
                        i += 2
                        continue
                    if line[i] in '"]':
                        raise ValueError(f"unescaped {line[i]!r} in {name}")
                    value.append(line[i])
                    i += 1
                params[name] = "".join(value)
                pos = i + 1
            if line[pos] != "]":
                raise ValueError(f"SD element {sd_id} not closed at {pos}")
            sd[sd_id] = params
            pos += 1
    msg = line[pos:]
    if msg.startswith(" "):
        msg = msg[1:]
    msg = msg.removeprefix("\ufeff")
    return SyslogMessage(
        pri=int(m["pri"]),
        timestamp=m["ts"],
        hostname=m["host"],
        app_name=m["app"],
        procid=m["procid"],
        msgid=m["msgid"],
        sd=sd,
        msg=msg,
    )
