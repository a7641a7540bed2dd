"""Kubescape node-agent's `Rules` resources (kubescape.io/v1) converted into `RuntimeRule`s.

node-agent keeps its rules as CEL in a `Rules` custom resource: per rule an id, name,
severity (1-10), `profileDependency` (0 required, 1 optional, 2 not required), MITRE ids,
tags, and `expressions` with a `message`, a `uniqueId` and one `ruleExpression` per
`eventType`. Its expressions read node-agent's event fields (`event.comm`, `event.exepath`,
`event.pktType`, ...) and call the helpers gadgetwatch also registers under those names
(`detector.cel_env`). Conversion therefore is:

* event types: only those IG's gadgets deliver to gadgetwatch map (exec, open, network -> tcp,
  dns, capabilities -> capability, syscall -> syscalls); a rule with any other type (randomx,
  symlink, ptrace, io_uring, kmod, bpf, http, ...) is listed with the reason, as `rules list`
  lists unavailable built-ins;
* fields: renamed by `FIELDS` per kind; a field gadgetwatch has no counterpart for makes the rule
  unconvertible with the field named. `event.pktType == "OUTGOING"` becomes `event.type ==
  "connect"` (trace_tcp reports connects, not packets);
* syscall rules: node-agent sees one syscall per event, gadgetwatch a window's set, so the match
  becomes ``event.syscalls.exists(syscallName, <match>)`` and the message and key use the first
  syscall of the set that matches;
* helpers that do I/O (`process.get_ld_hook_var` reads /proc) are refused;
* ids get a ``KS-`` prefix and names a `` (Kubescape)`` suffix, so an import never collides with
  the built-in rules that carry the same ids and names.

The result is a list of `RuntimeRule` documents (what `gadgetwatch rules import` prints) plus
the rules left out with their reasons; `detector.ruleset` also loads `Rules` documents
directly through this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from detector import custom_rules
from gadgetclient.events import EventKind
from profiler.documents import KUBESCAPE_GROUP

KIND = "Rules"
#: node-agent's group; `Rules` resources of any version of it are read.
GROUP = KUBESCAPE_GROUP

#: node-agent event types -> the event kinds gadgetwatch receives from IG.
EVENT_TYPES: dict[str, EventKind] = {
    "exec": EventKind.EXEC,
    "open": EventKind.OPEN,
    "network": EventKind.TCP,
    "dns": EventKind.DNS,
    "capabilities": EventKind.CAPABILITY,
    "syscall": EventKind.SYSCALLS,
}

#: Why other node-agent event types cannot be evaluated here.
UNAVAILABLE_TYPES: dict[str, str] = {
    "randomx": "needs node-agent's RandomX (crypto-mining) eBPF tracer, which IG does not ship",
    "symlink": "needs a symlink tracer; IG's gadgets gadgetwatch consumes deliver none",
    "hardlink": "needs a hardlink tracer; IG's gadgets gadgetwatch consumes deliver none",
    "ssh": "needs node-agent's SSH tracer; gadgetwatch sees TCP connects only",
    "http": "needs node-agent's HTTP tracer (payload parsing)",
    "ptrace": "needs a ptrace tracer; IG's gadgets gadgetwatch consumes deliver none",
    "iouring": "needs an io_uring tracer; IG's gadgets gadgetwatch consumes deliver none",
    "kmod": "needs a kernel-module tracer (gadgetwatch's R1002 uses the syscall set instead)",
    "unshare": "needs an unshare tracer (gadgetwatch's R1006 uses the syscall set instead)",
    "bpf": "needs a bpf() tracer with the command (gadgetwatch's R0009 uses the syscall set)",
    "procfs": "needs node-agent's procfs scanner",
    "fork": "IG's trace_exec reports executions, not forks",
    "exit": "IG's trace_exec reports executions, not exits",
    "k8s-admission": "evaluated by Kubescape's operator on admission requests, not on a node",
}

_PROCESS = {
    "comm": "process.comm",
    "pcomm": "process.pcomm",
    "pid": "process.pid",
    "ppid": "process.ppid",
    "uid": "process.uid",
    "gid": "process.gid",
    "containerId": "container.container_id",
    "containerName": "container.container",
    "podName": "container.pod",
    "namespace": "container.namespace",
    "timestamp": "timestamp_ns",
}

#: node-agent field -> gadgetwatch `event` field, per kind.
FIELDS: dict[EventKind, dict[str, str]] = {
    EventKind.EXEC: {
        **_PROCESS,
        "exepath": "path",
        "args": "args",
        "cwd": "cwd",
        "upperlayer": "upper_layer",
    },
    EventKind.OPEN: {
        **_PROCESS,
        "path": "path",
        "fullPath": "path",
        "flags": "flags",
        "flagsRaw": "flags_raw",
    },
    EventKind.TCP: {
        **_PROCESS,
        "dstAddr": "dst_addr",
        "dstPort": "dst_port",
        "port": "dst_port",
        "proto": "proto",
    },
    EventKind.DNS: {**_PROCESS, "name": "name", "dstIp": "dst_addr"},
    EventKind.CAPABILITY: {**_PROCESS, "capName": "capability", "syscallName": "syscall"},
    EventKind.SYSCALLS: {**_PROCESS},
}

#: Helpers node-agent has that gadgetwatch deliberately lacks, with the reason.
REFUSED_FUNCTIONS = {
    "process.get_ld_hook_var": "reads the process's environment from /proc (I/O at "
    "evaluation time, which gadgetwatch's rules cannot do)",
}

_DEPENDENCY = {0: "required", 1: "optional", 2: "none"}
_EVENT_FIELD = re.compile(r"(?<![\w.])event\s*\.\s*([A-Za-z_]\w*)")
_OUTGOING = re.compile(r"event\s*\.\s*pktType\s*==\s*(['\"])OUTGOING\1")
_SYSCALL_VAR = "syscallName"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A `Rules` entry that was not converted, and why."""

    id: str
    name: str
    reason: str


class _UnconvertibleError(ValueError):
    pass


def _rewrite(source: str, kind: EventKind) -> str:
    if not isinstance(source, str):
        raise _UnconvertibleError("an expression is not a string")
    for name, why in REFUSED_FUNCTIONS.items():
        if name in source:
            raise _UnconvertibleError(f"calls {name}, which {why}")
    placeholder = "__gadgetwatch_connect__"
    if kind is EventKind.TCP:
        source = _OUTGOING.sub(placeholder, source)
    fields = FIELDS[kind]

    def field(m: re.Match[str]) -> str:
        name = m.group(1)
        if kind is EventKind.SYSCALLS and name == _SYSCALL_VAR:
            return _SYSCALL_VAR
        target = fields.get(name)
        if target is None:
            raise _UnconvertibleError(f"reads event.{name}, which gadgetwatch's {kind} events lack")
        return f"event.{target}"

    return _EVENT_FIELD.sub(field, source).replace(placeholder, 'event.type == "connect"')


def convert_rule(entry: Any) -> dict[str, Any]:
    """One node-agent rule as a `RuntimeRule` document; raises `_UnconvertibleError`."""
    if not isinstance(entry, dict):
        raise _UnconvertibleError("not a mapping")
    if entry.get("enabled") is False:
        raise _UnconvertibleError(
            "disabled in the source (enabled: false); set enabled: true to import it"
        )
    expressions = entry.get("expressions")
    if not isinstance(expressions, dict):
        raise _UnconvertibleError("has no expressions")
    raw = expressions.get("ruleExpression")
    if not isinstance(raw, list) or not raw:
        raise _UnconvertibleError("has no ruleExpression")
    match: dict[str, str] = {}
    for item in raw:
        event_type = str(item.get("eventType", "")) if isinstance(item, dict) else ""
        kind = EVENT_TYPES.get(event_type)
        if kind is None:
            why = UNAVAILABLE_TYPES.get(event_type, "not an event type gadgetwatch receives")
            raise _UnconvertibleError(f"event type {event_type!r}: {why}")
        expr = _rewrite(item.get("expression"), kind)
        if kind is EventKind.SYSCALLS:
            expr = f"event.syscalls.exists({_SYSCALL_VAR}, {expr})"
        match[kind.value] = expr
    message: dict[str, str] = {}
    key: dict[str, str] = {}
    for kind_name, expr in match.items():
        kind = EventKind(kind_name)
        msg = _rewrite(expressions.get("message", '"Kubescape rule matched"'), kind)
        unique = _rewrite(expressions.get("uniqueId", '""'), kind)
        if kind is EventKind.SYSCALLS:
            inner = expr[len(f"event.syscalls.exists({_SYSCALL_VAR}, ") : -1]
            first = f"event.syscalls.filter({_SYSCALL_VAR}, {inner})[0]"
            msg = re.sub(rf"(?<![\w.]){_SYSCALL_VAR}\b", first, msg)
            unique = re.sub(rf"(?<![\w.]){_SYSCALL_VAR}\b", first, unique)
        message[kind_name] = msg
        key[kind_name] = f"[{unique}]"
    rule_id = str(entry.get("id", "")).strip()
    name = str(entry.get("name", "")).strip() or rule_id
    severity = _severity(entry.get("severity", 5))
    spec: dict[str, Any] = {
        "id": f"KS-{rule_id}"[:16],
        "name": f"{name} (Kubescape)",
        "description": str(entry.get("description", "")),
        "severity": severity,
        "mitreTactic": str(entry.get("mitreTactic", "")),
        "mitreTechnique": str(entry.get("mitreTechnique", "")),
        "tags": [str(t) for t in entry.get("tags") or [] if isinstance(t, str)],
        "profileDependency": _DEPENDENCY.get(entry.get("profileDependency", 2), "none"),
        "match": match,
        "message": message if len(message) > 1 else next(iter(message.values())),
        "key": key if len(key) > 1 else next(iter(key.values())),
    }
    return {
        "apiVersion": custom_rules.API_VERSION,
        "kind": custom_rules.KIND,
        "metadata": {"name": _resource_name(f"ks-{rule_id}-{name}")},
        "spec": spec,
    }


def _severity(value: Any) -> str:
    """node-agent's 1-10 priority (Low 1, Medium 5, High 8, Critical 10) as a severity name."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "medium"
    if value <= 3:
        return "low"
    if value <= 6:
        return "medium"
    return "high" if value <= 8 else "critical"


def _resource_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "kubescape-rule"


def convert(document: Any) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Every rule of a `Rules` document: the converted ones and the ones left out."""
    converted: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    spec = document.get("spec") if isinstance(document, dict) else None
    rules = spec.get("rules") if isinstance(spec, dict) else None
    if not isinstance(rules, list):
        return converted, [Skipped("", "", "the document has no spec.rules list")]
    for entry in rules:
        rid = str(entry.get("id", "")) if isinstance(entry, dict) else ""
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        try:
            converted.append(convert_rule(entry))
        except _UnconvertibleError as exc:
            skipped.append(Skipped(rid, name, str(exc)))
    return converted, skipped


def is_rules_document(data: Any) -> bool:
    api = data.get("apiVersion") if isinstance(data, dict) else None
    return (
        isinstance(data, dict)
        and data.get("kind") == KIND
        and isinstance(api, str)
        and api.partition("/")[0] == GROUP
    )
