"""The alert: what the detector hands to the exporters.

An alert is frozen and self-contained: every exporter renders it from these fields alone, so
exporters never look anything up. `Alert.to_dict` is the documented JSON form (`docs/alerts.md`,
`docs/alert.schema.json`); stdout prints it as is, the HTTP webhook posts it, syslog and
AlertManager map it to their own shapes.

Attacker-controlled strings (arguments, paths, DNS names, comm) reach this model already made
safe by `safe_text`: bounded length with a visible truncation marker and no raw control
characters, so no log line, syslog frame or JSON document can be broken by them. The detector
applies it when it builds an alert; exporters may rely on it.
"""

from __future__ import annotations

import enum
import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from gadgetclient.textsafety import escape_control

RuleId = NewType("RuleId", str)

#: Longest attacker-controlled string carried in an alert. Long enough for real command lines
#: (most are < 1 KiB), short enough that one alert stays far below syslog's and AlertManager's
#: practical message sizes.
MAX_TEXT = 2048
TRUNCATION_MARKER = "…[truncated {n} chars]"


def safe_text(value: str, *, limit: int = MAX_TEXT) -> str:
    """Escape control and bidi characters (as ``\\xNN`` / ``\\uNNNN``) and bound the length.

    Printable Unicode is kept as is: faithful, but unable to forge a new log line or frame.
    """
    text = escape_control(value)
    if len(text) > limit:
        cut = len(text) - limit
        return text[:limit] + TRUNCATION_MARKER.format(n=cut)
    return text


class Severity(enum.IntEnum):
    """Rule severity. Numeric order allows thresholds (`severity >= Severity.HIGH`)."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Severity:
        """Accept names ("high"), numbers 1-5, and the predecessors' 1-10 scale."""
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            num = int(value)
            if 1 <= num <= 5:
                return cls(num)
            if 6 <= num <= 10:
                # Kubescape's 1-10 scale: 6-7 high, 8-10 critical.
                return cls.HIGH if num <= 7 else cls.CRITICAL
            raise ValueError(f"severity {value!r} is out of range (1-5, or 1-10)")
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            valid = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {value!r}; valid: {valid}") from None


class AlertKind(enum.StrEnum):
    RULE = "rule"
    #: Raised by the agent itself, e.g. "limit reached" when a rate limit starts suppressing.
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: RuleId
    name: str
    severity: Severity
    tags: tuple[str, ...] = ()
    mitre_tactic: str = ""
    mitre_technique: str = ""


@dataclass(frozen=True, slots=True)
class KubernetesInfo:
    node: str = ""
    namespace: str = ""
    workload_kind: str = ""
    workload_name: str = ""
    pod: str = ""
    container: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    container_id: str = ""
    image: str = ""
    image_digest: str = ""


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int = 0
    comm: str = ""
    exe: str = ""
    args: tuple[str, ...] = ()
    cwd: str = ""
    uid: int = 0
    gid: int = 0
    ppid: int = 0
    pcomm: str = ""


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class DedupInfo:
    """How many occurrences this alert stands for (1 + suppressed repeats since the last one)."""

    count: int = 1
    first_seen_ns: int = 0
    last_seen_ns: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    rule: RuleInfo
    message: str
    fix_suggestion: str
    time_ns: int
    kubernetes: KubernetesInfo = field(default_factory=KubernetesInfo)
    runtime: RuntimeInfo = field(default_factory=RuntimeInfo)
    process: ProcessInfo = field(default_factory=ProcessInfo)
    #: The triggering event's fields (already made safe), e.g. {"path": ..., "flags": [...]}.
    event: Mapping[str, Any] = field(default_factory=dict)
    profile: ProfileInfo | None = None
    dedup: DedupInfo = field(default_factory=DedupInfo)
    kind: AlertKind = AlertKind.RULE
    #: Stable id of the (workload container, rule, dedup key) this alert stands for: repeated
    #: alerts of one key share it, so receivers can update instead of duplicating.
    fingerprint: str = ""
    #: The configured `clusterName` ("" when not set), so one receiver can tell clusters apart.
    cluster: str = ""

    @property
    def id(self) -> str:
        """This alert's own id: the same for every delivery attempt of this alert (retries, HA
        members, every exporter), different for every other alert, even of the same
        fingerprint. A UUID (version 8, RFC 9562: vendor-defined) hashed from what makes one
        alert unique: the fingerprint, the agent-side identity (node, pod, container id, kind,
        rule) and the alert's event time and occurrence count. Deterministic, so a replay of
        one capture yields the same ids; receivers deduplicate on it (delivery is at least
        once, docs/exporters.md)."""
        text = repr(
            (
                self.fingerprint,
                self.kind.value,
                self.rule.id,
                self.cluster,
                self.kubernetes.node,
                self.kubernetes.pod,
                self.runtime.container_id,
                self.time_ns,
                self.dedup.count,
                self.dedup.first_seen_ns,
            )
        )
        digest = bytearray(
            hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=16).digest()
        )
        digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
        return str(uuid.UUID(bytes=bytes(digest)))

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON form (docs/alert.schema.json). Times are RFC 3339 strings."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "fingerprint": self.fingerprint,
            "cluster": self.cluster,
            "time": format_time(self.time_ns),
            "rule": {
                "id": self.rule.id,
                "name": self.rule.name,
                "severity": self.rule.severity.label,
                "tags": list(self.rule.tags),
                "mitre": {
                    "tactic": self.rule.mitre_tactic,
                    "technique": self.rule.mitre_technique,
                },
            },
            "message": self.message,
            "fixSuggestion": self.fix_suggestion,
            "kubernetes": {
                "node": self.kubernetes.node,
                "namespace": self.kubernetes.namespace,
                "workloadKind": self.kubernetes.workload_kind,
                "workloadName": self.kubernetes.workload_name,
                "pod": self.kubernetes.pod,
                "container": self.kubernetes.container,
            },
            "runtime": {
                "containerId": self.runtime.container_id,
                "image": self.runtime.image,
                "imageDigest": self.runtime.image_digest,
            },
            "process": {
                "pid": self.process.pid,
                "comm": self.process.comm,
                "exe": self.process.exe,
                "args": list(self.process.args),
                "cwd": self.process.cwd,
                "uid": self.process.uid,
                "gid": self.process.gid,
                "ppid": self.process.ppid,
                "pcomm": self.process.pcomm,
            },
            "event": dict(self.event),
            "profile": (
                None
                if self.profile is None
                else {"name": self.profile.name, "status": self.profile.status}
            ),
            "dedup": {
                "count": self.dedup.count,
                "firstSeen": format_time(self.dedup.first_seen_ns or self.time_ns),
                "lastSeen": format_time(self.dedup.last_seen_ns or self.time_ns),
            },
        }


def format_time(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, e.g. ``2026-11-22T10:00:00.123456789Z``."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
