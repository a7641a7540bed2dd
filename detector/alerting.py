"""Building `Alert`s from findings: identity, process, event fields, fix suggestion, fingerprint.

Runs only for findings that survived gating, exceptions and dedup, so it can afford to be
thorough. Every attacker-controlled string (paths, arguments, comm, DNS names) goes through
`safe_text`; argument lists are bounded in count and total size as well, so a 100 KB command
line becomes a faithful prefix with a visible truncation marker.

The fix suggestion of an anomaly alert is a ready-to-apply `RuntimeAlertException` scoped to
the workload container and the rule, allowing exactly what was found. Values go through YAML's
own quoting (control characters become YAML escapes), so the snippet is valid and, applied,
matches the real value; values longer than `SNIPPET_VALUE_LIMIT` become a prefix glob.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from detector.alerts import (
    Alert,
    AlertKind,
    DedupInfo,
    KubernetesInfo,
    ProcessInfo,
    ProfileInfo,
    RuleId,
    RuleInfo,
    RuntimeInfo,
    Severity,
    safe_text,
)
from detector.dedup import GLOBAL, LimitReached
from detector.exceptions import API_VERSION, KIND, WORKLOAD_KINDS
from detector.processes import snippet_sources
from detector.rules import Actor, AllowKind, Finding, ProfileDependency, Rule, Subject
from gadgetclient.events import (
    CapabilityEvent,
    Container,
    DnsEvent,
    Event,
    ExecEvent,
    OpenEvent,
    SyscallsEvent,
    TcpEvent,
)
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileView

#: Arguments carried per alert, and their total size: real command lines fit (< 1 KiB
#: typically); a hostile one cannot inflate an alert past ~8 KiB of arguments.
MAX_ARGS = 64
MAX_ARGS_CHARS = 8192
#: Longest value put verbatim in a fix snippet; longer ones become `prefix*` globs.
SNIPPET_VALUE_LIMIT = 1024
_SLUG = re.compile(r"[^a-z0-9]+")


def safe_args(args: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    budget = MAX_ARGS_CHARS
    for i, arg in enumerate(args):
        if i >= MAX_ARGS or budget <= 0:
            out.append(f"…[{len(args) - i} more args]")
            break
        text = safe_text(arg, limit=min(budget, 2048))
        budget -= len(text)
        out.append(text)
    return tuple(out)


def process_info(event: Event) -> ProcessInfo:
    p = event.process
    exe, args, cwd = p.exe, p.args, p.cwd
    if isinstance(event, ExecEvent):
        exe, args, cwd = event.path or exe, event.args or args, event.cwd or cwd
    return ProcessInfo(
        pid=p.pid,
        comm=safe_text(p.comm, limit=64),
        exe=safe_text(exe),
        args=safe_args(args),
        cwd=safe_text(cwd),
        uid=p.uid,
        gid=p.gid,
        ppid=p.ppid,
        pcomm=safe_text(p.pcomm, limit=64),
    )


def event_fields(event: Event) -> dict[str, Any]:
    """The triggering event's own fields, made safe (documented in docs/alerts.md)."""
    if isinstance(event, ExecEvent):
        return {
            "type": "exec",
            "path": safe_text(event.path),
            "args": list(safe_args(event.args)),
            "cwd": safe_text(event.cwd),
            "upperLayer": event.upper_layer,
            "parentExe": safe_text(event.parent_exe),
            "tty": event.tty,
            "error": safe_text(event.error, limit=128),
        }
    if isinstance(event, OpenEvent):
        return {
            "type": "open",
            "path": safe_text(event.path),
            "flags": [safe_text(f, limit=32) for f in event.flags[:32]],
            "fd": event.fd,
            "error": safe_text(event.error, limit=128),
        }
    if isinstance(event, TcpEvent):
        peer = event.dst_peer
        return {
            "type": "tcp",
            "tcpType": event.type.value,
            "srcAddr": safe_text(event.src_addr, limit=64),
            "srcPort": event.src_port,
            "dstAddr": safe_text(event.dst_addr, limit=64),
            "dstPort": event.dst_port,
            "proto": safe_text(event.proto, limit=16),
            "dstPeer": {
                "kind": safe_text(peer.kind, limit=16),
                "name": safe_text(peer.name, limit=256),
                "namespace": safe_text(peer.namespace, limit=64),
            },
        }
    if isinstance(event, DnsEvent):
        return {
            "type": "dns",
            "name": safe_text(event.name, limit=512),
            "qtype": safe_text(event.qtype, limit=16),
            "isResponse": event.is_response,
            "rcode": safe_text(event.rcode, limit=32),
            "addresses": [safe_text(a, limit=64) for a in event.addresses[:32]],
            "nameserver": safe_text(event.nameserver, limit=64),
        }
    if isinstance(event, CapabilityEvent):
        return {
            "type": "capability",
            "capability": safe_text(event.capability, limit=64),
            "syscall": safe_text(event.syscall, limit=64),
            "capable": event.capable,
        }
    assert isinstance(event, SyscallsEvent)
    return {
        "type": "syscalls",
        "syscallCount": len(event.syscalls),
        "windowStart": event.window_start_ns,
        "windowEnd": event.window_end_ns,
    }


def fingerprint(workload: WorkloadKey, rule_id: str, key: tuple[Any, ...]) -> str:
    """Stable across agents and restarts: a hash of the dedup key's parts."""
    text = repr(
        (
            workload.namespace,
            workload.owner_kind,
            workload.owner_name,
            workload.container,
            rule_id,
            key,
        )
    )
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=8).hexdigest()


def kubernetes_info(container: Container, workload: WorkloadKey) -> KubernetesInfo:
    return KubernetesInfo(
        node=container.node,
        namespace=container.namespace,
        workload_kind=workload.owner_kind,
        workload_name=safe_text(workload.owner_name, limit=256),
        pod=container.pod,
        container=container.container,
    )


def runtime_info(container: Container) -> RuntimeInfo:
    return RuntimeInfo(
        container_id=container.container_id,
        image=safe_text(container.image, limit=512),
        image_digest=container.image_digest,
    )


def build_alert(
    *,
    event: Event,
    finding: Finding,
    rule: Rule,
    severity: Severity,
    workload: WorkloadKey,
    kubernetes: KubernetesInfo,
    runtime: RuntimeInfo,
    profile: ProfileView | None,
    dedup: DedupInfo,
    cluster: str = "",
    actor: Actor | None = None,
) -> Alert:
    fields = event_fields(event)
    fields.update(finding.fields)
    return Alert(
        rule=RuleInfo(
            id=rule.id,
            name=rule.name,
            severity=severity,
            tags=rule.tags,
            mitre_tactic=rule.mitre_tactic,
            mitre_technique=rule.mitre_technique,
        ),
        message=finding.message,
        fix_suggestion=fix_suggestion(rule, finding.subjects, workload, actor),
        time_ns=event.timestamp_ns,
        kubernetes=kubernetes,
        runtime=runtime,
        process=process_info(event),
        event=fields,
        profile=None if profile is None else ProfileInfo(profile.name, profile.status.value),
        dedup=dedup,
        fingerprint=fingerprint(workload, rule.id, finding.key),
        cluster=cluster,
    )


def fix_suggestion(
    rule: Rule, subjects: Sequence[Subject], workload: WorkloadKey, actor: Actor | None = None
) -> str:
    """A YAML document ready for `kubectl apply -f -`: signature rules' advice comes first, as
    YAML comments, so the whole suggestion still parses and applies as it is."""
    snippet = exception_snippet(rule=rule, subjects=subjects, workload=workload, actor=actor)
    if rule.profile is ProfileDependency.REQUIRED:
        return snippet
    advice = "".join(f"# {line}".rstrip() + "\n" for line in rule.fix.splitlines())
    return advice + snippet


def _snippet_value(subject: Subject) -> Any:
    value = subject.value
    if len(value) > SNIPPET_VALUE_LIMIT and subject.kind in (AllowKind.EXEC, AllowKind.PATH):
        value = value[:SNIPPET_VALUE_LIMIT] + "*"
    if subject.kind is AllowKind.ADDRESS:
        return {"address": value, "ports": [subject.port]} if subject.port else value
    return value


def snippet_name(
    rule_id: str,
    subjects: Sequence[Subject],
    workload: WorkloadKey,
    sources: Sequence[Mapping[str, str]] = (),
) -> str:
    """`allow-<owner>-<rule>-<hash>`: the hash covers the workload container and exactly what
    is allowed, so two suggestions for one rule and workload (`/bin/dash`, then `/bin/cat`)
    have different names and applying the second adds an allowance instead of replacing the
    first; the same finding always gets the same name, so applying it twice changes nothing.
    A DNS-1123 subdomain of at most 64 characters (owner part cut to 40)."""
    owner = _SLUG.sub("-", workload.owner_name.lower()).strip("-")[:40].strip("-") or "workload"
    what = repr(
        (
            workload.namespace,
            workload.owner_kind,
            workload.owner_name,
            workload.container,
            rule_id,
            sorted((s.kind.value, s.value, s.port) for s in subjects),
        )
    )
    if sources:  # a process-scoped allowance is another allowance than the workload-wide one
        what += repr(sorted(sorted(s.items()) for s in sources))
    digest = hashlib.blake2b(what.encode("utf-8", "backslashreplace"), digest_size=4).hexdigest()
    return f"allow-{owner}-{rule_id.lower()}-{digest}"


def exception_snippet(
    *,
    rule: Rule,
    subjects: Sequence[Subject],
    workload: WorkloadKey,
    actor: Actor | None = None,
) -> str:
    """A `RuntimeAlertException` for this workload container and rule, allowing `subjects`.

    With a known acting process, the narrowest allowance comes first: the document allows the
    subjects to that process only (`allow.fromSource`); the workload-wide form (any process of
    the container) follows as YAML comments, so the suggestion stays one document that applies
    as it is, and widening is a deliberate edit."""
    sources = list(snippet_sources(actor)) if actor is not None else []
    text = _exception_document(rule, subjects, workload, sources)
    head = "# If this is expected behaviour, allow it (kubectl apply -f -):\n"
    if not sources:
        return head + text
    wide = _exception_document(rule, subjects, workload, [])
    return (
        head + "# This form allows it to the process that did it only; the workload-wide form "
        "follows.\n"
        + text
        + "# Or, for every process of the workload container (wider):\n"
        + "".join(f"# {line}\n" for line in wide.splitlines())
    )


def _exception_document(
    rule: Rule,
    subjects: Sequence[Subject],
    workload: WorkloadKey,
    sources: Sequence[Mapping[str, str]],
) -> str:
    allow: dict[str, list[Any]] = {}
    for subject in subjects:
        allow.setdefault(subject.kind.value, []).append(_snippet_value(subject))
    if sources:
        allow["fromSource"] = [dict(s) for s in sources]
    metadata: dict[str, Any] = {"name": snippet_name(rule.id, subjects, workload, sources)}
    if workload.namespace:
        metadata["namespace"] = workload.namespace
    workload_ref: dict[str, Any] = {"name": workload.owner_name}
    if workload.owner_kind in WORKLOAD_KINDS:
        # A custom controller's kind is not in the CRD's enum: the name alone matches it.
        workload_ref = {"kind": workload.owner_kind, **workload_ref}
    if workload.container:
        workload_ref["containers"] = [workload.container]
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "reason": "Reviewed gadgetwatch alert (replace with why it is expected)",
            "workloads": [workload_ref],
            "rules": [str(rule.id)],
            "allow": allow,
        },
    }
    text: str = yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, width=4096, allow_unicode=False)
    return text


#: libyaml's emitter when available: the snippet is built for every anomaly alert.
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

#: Rule identity of the agent's own "limit reached" alerts.
LIMIT_RULE = RuleInfo(
    id=RuleId("GW0001"),
    name="Alert limit reached",
    severity=Severity.HIGH,
    tags=("system", "rate_limit"),
)


def limit_alert(announcement: LimitReached, *, window_s: float, cluster: str = "") -> Alert:
    scope = announcement.scope
    what = "all rules" if scope == GLOBAL else f"rule {scope}"
    setting = "globalRateLimit" if scope == GLOBAL else "perRuleRateLimit"
    return Alert(
        rule=LIMIT_RULE,
        message=f"Alert limit reached for {what}: {announcement.limit} alerts per "
        f"{window_s:g}s. Further alerts in this window are suppressed and counted; each "
        "key's next alert carries its count.",
        fix_suggestion=f"Tune the noisy rule (binding parameters, a RuntimeAlertException) or "
        f"raise detector.{setting}.",
        time_ns=announcement.time_ns,
        event={
            "type": "limit",
            "scope": scope,
            "limit": announcement.limit,
            "windowSeconds": window_s,
            "windowStart": announcement.window_start_ns,
        },
        kind=AlertKind.SYSTEM,
        fingerprint=fingerprint(
            WorkloadKey("", "", "", ""), "GW0001", (scope, announcement.window_start_ns)
        ),
        cluster=cluster,
    )


#: Rule identity of the agent's own "rule disabled" alerts (a CEL rule that kept failing).
RULE_DISABLED_RULE = RuleInfo(
    id=RuleId("GW0003"),
    name="Rule disabled after evaluation errors",
    severity=Severity.HIGH,
    tags=("system", "rule_error"),
)


def rule_disabled_alert(
    rule: Rule, *, errors: int, last_error: str, time_ns: int, cluster: str = ""
) -> Alert:
    """The system alert saying a CEL rule stopped running (detection of the others goes on)."""
    return Alert(
        rule=RULE_DISABLED_RULE,
        message=f"Rule {rule.id} ({safe_text(rule.name, limit=128)}) disabled after {errors} "
        f"evaluation errors; last: {safe_text(last_error, limit=512)}",
        fix_suggestion=f"Fix the rule's expressions ({safe_text(rule.source, limit=256)}); "
        "a changed resource is enabled again. `gadgetwatch run --replay` on a capture "
        "shows its errors offline.",
        time_ns=time_ns,
        event={
            "type": "rule_disabled",
            "ruleId": str(rule.id),
            "errors": errors,
            "source": safe_text(rule.source, limit=256),
        },
        kind=AlertKind.SYSTEM,
        fingerprint=fingerprint(
            WorkloadKey("", "", "", ""), "GW0003", (str(rule.id), rule.revision)
        ),
        cluster=cluster,
    )


def labels_of(container: Container, fallback: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """IG's pod labels, else the pod cache's, as a sorted hashable tuple."""
    if container.pod_labels:
        return container.pod_labels
    return tuple(sorted(fallback.items()))
