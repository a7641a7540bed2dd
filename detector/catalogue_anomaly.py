"""Anomaly rules R0001-R0011: behaviour that the completed profile does not contain.

Every rule here has `ProfileDependency.REQUIRED`: the evaluator calls its check only with a
usable profile (completed, by default) and counts every skipped evaluation otherwise. Each
check first applies its cheap event filter (the event kind is already right), then asks the
profile, which is an O(1) set membership in the profiler's read model.

Paths are compared in their lexically normal form (`gadgetclient.pathnorm`, relative paths
joined to the process's cwd): the event mapping normalises already, and `open_path` does it
again for events built elsewhere, so no spelling of a path (``/etc//shadow``,
``/tmp/../etc/shadow``, ``./shadow`` in ``/etc``) reaches a comparison un-normalised.

Messages carry attacker-controlled strings through `safe_text` with a short bound (the full,
longer-bounded values are in the alert's event fields).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from detector.alerts import RuleId, Severity, safe_text
from detector.paths import PathSet, basename
from detector.rules import (
    AllowKind,
    Check,
    Finding,
    ParamKind,
    ParamSpec,
    ProfileDependency,
    Rule,
    RuleEnv,
    Subject,
)
from gadgetclient.events import (
    CapabilityEvent,
    DnsEvent,
    Event,
    EventKind,
    ExecEvent,
    OpenEvent,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from gadgetclient.gadget_params import UNRESOLVED_PREFIX
from gadgetclient.pathnorm import is_normal, normalise_exec_path, normalise_path
from profiler.readmodel import ProfileView

#: Bound of attacker strings inside a one-line message; the event fields carry more.
MSG = 256

#: Service-account token directories (Kubernetes and EKS IRSA), both /run and /var/run forms.
TOKEN_DIRS = (
    "/run/secrets/kubernetes.io/serviceaccount",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/run/secrets/eks.amazonaws.com/serviceaccount",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount",
)
_TOKEN_PREFIXES = tuple(d + "/" for d in TOKEN_DIRS)
#: kubelet's atomic-writer directory (``..2024_01_02_03_04_05.123``) hides the stable name.
_ATOMIC_DIR = re.compile(r"/\.\.[0-9_.]+/")

#: Executables that talk to the Kubernetes API or to the container runtime.
K8S_CLIENTS = frozenset(
    {
        "kubectl",
        "oc",
        "helm",
        "k9s",
        "kubeadm",
        "kubelet",
        "kube-proxy",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "crictl",
        "ctr",
        "nerdctl",
    }
)

#: Files whose reading or writing is an attacker's first step (credentials, sudo rights).
SENSITIVE_FILES = (
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/sshd_config",
    "/etc/ssh/ssh_config",
    "/root/.ssh",
    "/etc/kubernetes/pki",
    "/etc/kubernetes/admin.conf",
)

_ENVIRON = re.compile(r"/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/environ")


def open_path(event: OpenEvent) -> str:
    """The opened path in normal form (relative to the process's cwd when IG sent one)."""
    path = event.path
    return path if is_normal(path) else normalise_path(path, event.process.cwd)


def exec_path(event: ExecEvent) -> str:
    """The executed file (IG's ``exepath``; see `ExecEvent.path`), in normal form when it is a
    path; a bare name (a PATH lookup) and an ``unresolved:`` marker stay as they are."""
    path = event.path or (event.args[0] if event.args else "") or event.process.comm
    if is_normal(path) or path.startswith(UNRESOLVED_PREFIX):
        return path
    return normalise_exec_path(path, event.cwd)


def _s(text: str) -> str:
    return safe_text(text, limit=MSG)


def _unexpected_exec(params: Mapping[str, Any], env: RuleEnv) -> Check:
    enforce_args = params["enforceArgs"]

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, ExecEvent)
        path = exec_path(event)
        if profile is not None and (
            profile.allows_exec(path, event.args)
            if enforce_args
            else profile.allows_exec_path(path)
        ):
            return None
        comm = event.process.comm
        return Finding(
            message=f"Unexpected process launched: {_s(path)} (comm {_s(comm)}, "
            f"pid {event.process.pid})",
            key=(comm, path),
            subjects=(Subject(AllowKind.EXEC, path),),
        )

    return check


def _unexpected_open(params: Mapping[str, Any], env: RuleEnv) -> Check:
    include = PathSet(params["includePrefixes"])
    ignore = PathSet(params["ignorePrefixes"])
    mounts = PathSet(env.mounts) if params["ignoreMounts"] else PathSet(())

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        path = open_path(event)
        if include and not include.matches(path):
            return None
        if ignore.matches(path) or mounts.matches(path):
            return None
        if profile is not None and profile.allows_open(path, event.flags):
            return None
        comm = event.process.comm
        return Finding(
            message=f"Unexpected file access: {_s(path)} by {_s(comm)} (pid {event.process.pid})",
            key=(comm, path),
            subjects=(Subject(AllowKind.PATH, path),),
        )

    return check


#: Most new syscalls listed in one R0003 message (the event fields carry them all).
_MAX_LISTED = 32


def _unexpected_syscalls(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, SyscallsEvent)
        if profile is None:
            return None
        new = sorted(s for s in event.syscalls if not profile.allows_syscall(s))
        if not new:
            return None
        shown = ", ".join(_s(s) for s in new[:_MAX_LISTED])
        more = f" and {len(new) - _MAX_LISTED} more" if len(new) > _MAX_LISTED else ""
        return Finding(
            message=f"Unexpected system calls: {shown}{more}",
            key=tuple(new),
            subjects=tuple(Subject(AllowKind.SYSCALL, s) for s in new),
            fields={"newSyscalls": [safe_text(s, limit=64) for s in new]},
        )

    return check


def _unexpected_capability(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, CapabilityEvent)
        cap = event.capability
        if profile is not None and profile.allows_capability(cap):
            return None
        comm = event.process.comm
        return Finding(
            message=f"Unexpected capability used: {_s(cap)} by {_s(comm)} "
            f"(syscall {_s(event.syscall)}, pid {event.process.pid})",
            key=(comm, cap),
            subjects=(Subject(AllowKind.CAPABILITY, cap),),
        )

    return check


def is_cluster_name(name: str, suffixes: tuple[str, ...]) -> bool:
    return any(name == s or name.endswith("." + s) for s in suffixes)


def _unexpected_domain(params: Mapping[str, Any], env: RuleEnv) -> Check:
    suffixes = () if params["includeClusterDomains"] else env.cluster_dns_suffixes
    dotted = tuple("." + s for s in suffixes)

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, DnsEvent)
        name = event.name
        if not name or (dotted and (name.endswith(dotted) or name in suffixes)):
            return None
        if profile is not None and profile.allows_domain(name):
            return None
        return Finding(
            message=f"Unexpected domain request: {_s(name)} by {_s(event.process.comm)}",
            key=(name,),
            subjects=(Subject(AllowKind.DOMAIN, name),),
        )

    return check


def token_path_variants(path: str) -> tuple[str, ...]:
    """The path as opened, without kubelet's atomic-writer directory, in /run and /var/run."""
    stable = _ATOMIC_DIR.sub("/", path)
    out = [path, stable]
    for p in (path, stable):
        if p.startswith("/var/run/"):
            out.append(p[4:])
        elif p.startswith("/run/"):
            out.append("/var" + p)
    return tuple(dict.fromkeys(out))


def token_directory(path: str) -> str:
    """The token directory `path` lies in (one of `TOKEN_DIRS`), or "" when none."""
    for directory in TOKEN_DIRS:
        if path.startswith(directory) and path[len(directory) : len(directory) + 1] in ("", "/"):
            return directory
    return ""


def _same_directory(directory: str) -> tuple[str, str]:
    """The /run and /var/run spellings of one token directory (one is a symlink to the other)."""
    if directory.startswith("/var/run/"):
        return directory, directory[4:]
    return directory, "/var" + directory


def _token_access(params: Mapping[str, Any], env: RuleEnv) -> Check:
    exact_files = params["exactFiles"]

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        path = open_path(event)
        if not path.startswith(_TOKEN_PREFIXES):
            return None
        if profile is not None:
            if any(profile.allows_open(p, event.flags) for p in token_path_variants(path)):
                return None
            if not exact_files and any(
                profile.opened_under(d) for d in _same_directory(token_directory(path))
            ):
                return None
        comm = event.process.comm
        return Finding(
            message=f"Unexpected service account token access: {_s(path)} by {_s(comm)} "
            f"(pid {event.process.pid})",
            key=(comm,),
            subjects=(Subject(AllowKind.PATH, _ATOMIC_DIR.sub("/", path)),),
        )

    return check


def is_api_server(event: TcpEvent, addresses: frozenset[str]) -> bool:
    peer = event.dst_peer
    if peer.kind == "svc" and peer.name == "kubernetes" and peer.namespace == "default":
        return True
    return event.dst_addr in addresses


def _k8s_client(params: Mapping[str, Any], env: RuleEnv) -> Check:
    api = env.api_server_addresses

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        if isinstance(event, ExecEvent):
            path = exec_path(event)
            name = basename(path)
            if name not in K8S_CLIENTS:
                return None
            if profile is not None and profile.allows_exec_path(path):
                return None
            return Finding(
                message=f"Kubernetes client executed: {_s(path)} (pid {event.process.pid})",
                key=("exec", name),
                subjects=(Subject(AllowKind.EXEC, path),),
            )
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT or not is_api_server(event, api):
            return None
        if profile is not None and profile.allows_egress(
            event.dst_addr, event.dst_port, event.proto
        ):
            return None
        return Finding(
            message=f"Connection to the Kubernetes API server {_s(event.dst_addr)}:"
            f"{event.dst_port} by {_s(event.process.comm)} (pid {event.process.pid})",
            key=("network", event.dst_addr, event.dst_port),
            subjects=(Subject(AllowKind.ADDRESS, event.dst_addr, event.dst_port),),
        )

    return check


def _procfs_environ(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        path = open_path(event)
        if not path.startswith("/proc/") or not _ENVIRON.fullmatch(path):
            return None
        if profile is not None and profile.allows_open(path, event.flags):
            return None
        comm = event.process.comm
        return Finding(
            message=f"Environment variables read from procfs: {_s(path)} by {_s(comm)} "
            f"(pid {event.process.pid})",
            key=(comm,),
            subjects=(Subject(AllowKind.PATH, path),),
        )

    return check


def syscall_used(syscall: str, message: str) -> Callable[[Mapping[str, Any], RuleEnv], Check]:
    """A rule builder: the syscall appears in an advise_seccomp set and the profile lacks it."""

    def build(params: Mapping[str, Any], env: RuleEnv) -> Check:
        def check(event: Event, profile: ProfileView | None) -> Finding | None:
            assert isinstance(event, SyscallsEvent)
            if syscall not in event.syscalls:
                return None
            if profile is not None and profile.allows_syscall(syscall):
                return None
            return Finding(
                message=message,
                key=(syscall,),
                subjects=(Subject(AllowKind.SYSCALL, syscall),),
            )

        return check

    return build


_bpf_load = syscall_used("bpf", "eBPF program load: the bpf system call was used")


def _sensitive_file(params: Mapping[str, Any], env: RuleEnv) -> Check:
    files = PathSet((*SENSITIVE_FILES, *params["additionalPaths"]))

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        path = open_path(event)
        if not files.matches(path):
            return None
        if profile is not None and profile.allows_open(path, event.flags):
            return None
        comm = event.process.comm
        return Finding(
            message=f"Unexpected sensitive file access: {_s(path)} by {_s(comm)} "
            f"(pid {event.process.pid})",
            key=(comm, path),
            subjects=(Subject(AllowKind.PATH, path),),
        )

    return check


def is_private(addr: str) -> bool:
    """RFC 1918/4193, loopback, link-local, CGNAT: addresses that pods churn through."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip in _CGNAT


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def _egress(params: Mapping[str, Any], env: RuleEnv) -> Check:
    ignore_private = params["ignorePrivate"]
    by_answer = params["allowResolvedAddresses"]

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT:
            return None
        addr = event.dst_addr
        if addr.startswith("127.") or addr == "::1" or (ignore_private and is_private(addr)):
            return None
        if profile is not None and profile.allows_egress(addr, event.dst_port, event.proto):
            return None
        return Finding(
            message=f"Unexpected egress connection to {_s(addr)}:{event.dst_port} by "
            f"{_s(event.process.comm)} (pid {event.process.pid})",
            key=(addr, event.dst_port, event.proto),
            subjects=(Subject(AllowKind.ADDRESS, addr, event.dst_port),),
            resolved_address=addr if by_answer else "",
        )

    return check


_REQ = ProfileDependency.REQUIRED

RULES: tuple[Rule, ...] = (
    Rule(
        id=RuleId("R0001"),
        name="Unexpected process launched",
        description="A process was executed that the workload's profile does not contain.",
        severity=Severity.MEDIUM,
        tags=("exec", "whitelisted", "anomaly", "process", "applicationprofile"),
        mitre_tactic="TA0002",
        mitre_technique="T1059",
        profile=_REQ,
        kinds=frozenset({EventKind.EXEC}),
        dedup_key=("comm", "path"),
        fix="",
        build=_unexpected_exec,
        parameters=(
            ParamSpec(
                "enforceArgs",
                ParamKind.BOOL,
                False,
                "Also compare the arguments: an executable of the profile run with arguments "
                "the profile does not list alerts. Off by default, as in Kubescape: arguments "
                "carry request data (file names, ids, URLs) that learning cannot enumerate.",
            ),
        ),
    ),
    Rule(
        id=RuleId("R0002"),
        name="Unexpected file access",
        description="A file was opened (path and flags) that the workload's profile does not "
        "contain.",
        severity=Severity.LOW,
        tags=("open", "whitelisted", "anomaly", "file", "applicationprofile"),
        mitre_tactic="TA0009",
        mitre_technique="T1005",
        profile=_REQ,
        kinds=frozenset({EventKind.OPEN}),
        dedup_key=("comm", "path"),
        fix="",
        build=_unexpected_open,
        parameters=(
            ParamSpec(
                "ignoreMounts",
                ParamKind.BOOL,
                False,
                "Ignore files under the pod's volume mounts (data the application owns).",
            ),
            ParamSpec(
                "ignorePrefixes",
                ParamKind.PATHS,
                (),
                "Ignore files under these directories (or matching these globs).",
            ),
            ParamSpec(
                "includePrefixes",
                ParamKind.PATHS,
                (),
                "When set, only files under these directories are checked.",
            ),
        ),
        aliases=("Files Access Anomalies in container",),
    ),
    Rule(
        id=RuleId("R0003"),
        name="Unexpected system call",
        description="System calls were used that the workload's profile does not contain; one "
        "alert per syscall window lists all the new ones.",
        severity=Severity.LOW,
        tags=("syscall", "whitelisted", "anomaly", "applicationprofile"),
        mitre_tactic="TA0002",
        mitre_technique="T1059",
        profile=_REQ,
        kinds=frozenset({EventKind.SYSCALLS}),
        dedup_key=("newSyscalls",),
        fix="",
        build=_unexpected_syscalls,
        aliases=("Syscalls Anomalies in container",),
    ),
    Rule(
        id=RuleId("R0004"),
        name="Unexpected capability used",
        description="A Linux capability was checked that the workload's profile does not contain.",
        severity=Severity.LOW,
        tags=("capabilities", "whitelisted", "anomaly", "applicationprofile"),
        mitre_tactic="TA0002",
        mitre_technique="T1059",
        profile=_REQ,
        kinds=frozenset({EventKind.CAPABILITY}),
        dedup_key=("comm", "capability"),
        fix="",
        build=_unexpected_capability,
        aliases=("Linux Capabilities Anomalies in container",),
    ),
    Rule(
        id=RuleId("R0005"),
        name="Unexpected domain request",
        description="A DNS name was resolved that the workload's profile does not contain. "
        "Cluster-internal names are ignored by default.",
        severity=Severity.LOW,
        tags=("dns", "whitelisted", "anomaly", "networkprofile"),
        mitre_tactic="TA0011",
        mitre_technique="T1071.004",
        profile=_REQ,
        kinds=frozenset({EventKind.DNS}),
        dedup_key=("name",),
        fix="",
        build=_unexpected_domain,
        parameters=(
            ParamSpec(
                "includeClusterDomains",
                ParamKind.BOOL,
                False,
                "Also check names under the cluster DNS suffixes (settings `clusterDnsSuffixes`).",
            ),
        ),
        aliases=("DNS Anomalies in container",),
    ),
    Rule(
        id=RuleId("R0006"),
        name="Unexpected Service Account Token Access",
        description="A file of a service-account token directory was read although the "
        "workload's profile never read that directory.",
        severity=Severity.HIGH,
        tags=("token", "malicious", "whitelisted", "anomaly", "credentials"),
        mitre_tactic="TA0006",
        mitre_technique="T1528",
        profile=_REQ,
        kinds=frozenset({EventKind.OPEN}),
        dedup_key=("comm",),
        fix="",
        build=_token_access,
        parameters=(
            ParamSpec(
                "exactFiles",
                ParamKind.BOOL,
                False,
                "Require the exact token file in the profile. Off by default, as in Kubescape: "
                "a profile that read any file of a token directory (token, ca.crt, namespace, "
                "kubelet's timestamped copies) allows every file of that directory.",
            ),
        ),
    ),
    Rule(
        id=RuleId("R0007"),
        name="Kubernetes Client Executed",
        description="A Kubernetes or container-runtime client was executed, or the API server "
        "was connected to, and the workload's profile contains neither.",
        severity=Severity.HIGH,
        tags=("exec", "network", "malicious", "whitelisted", "anomaly"),
        mitre_tactic="TA0008",
        mitre_technique="T1210",
        profile=_REQ,
        kinds=frozenset({EventKind.EXEC, EventKind.TCP}),
        dedup_key=("exec: client name", "network: dstAddr, dstPort"),
        fix="",
        build=_k8s_client,
        aliases=("Workload uses Kubernetes API unexpectedly",),
    ),
    Rule(
        id=RuleId("R0008"),
        name="Read Environment Variables from procfs",
        description="A process read /proc/<pid>/environ (secrets live in environment "
        "variables) and the workload's profile does not contain it.",
        severity=Severity.MEDIUM,
        tags=("open", "procfs", "environment", "whitelisted", "anomaly"),
        mitre_tactic="TA0006",
        mitre_technique="T1552.001",
        profile=_REQ,
        kinds=frozenset({EventKind.OPEN}),
        dedup_key=("comm",),
        fix="",
        build=_procfs_environ,
    ),
    Rule(
        id=RuleId("R0009"),
        name="eBPF Program Load",
        description="The bpf system call was used and the workload's profile does not contain it.",
        severity=Severity.MEDIUM,
        tags=("syscall", "bpf", "whitelisted", "anomaly"),
        mitre_tactic="TA0005",
        mitre_technique="T1218",
        profile=_REQ,
        kinds=frozenset({EventKind.SYSCALLS}),
        dedup_key=("syscall",),
        fix="",
        build=_bpf_load,
    ),
    Rule(
        id=RuleId("R0010"),
        name="Unexpected Sensitive File Access",
        description="A sensitive file (/etc/shadow, sudoers, SSH configuration, kubeadm "
        "credentials, ...) was opened and the workload's profile does not contain it.",
        severity=Severity.HIGH,
        tags=("open", "files", "malicious", "whitelisted", "anomaly"),
        mitre_tactic="TA0006",
        mitre_technique="T1005",
        profile=_REQ,
        kinds=frozenset({EventKind.OPEN}),
        dedup_key=("comm", "path"),
        fix="",
        build=_sensitive_file,
        parameters=(
            ParamSpec(
                "additionalPaths",
                ParamKind.PATHS,
                (),
                "More sensitive files or directories (or globs).",
            ),
        ),
    ),
    Rule(
        id=RuleId("R0011"),
        name="Unexpected Egress Network Traffic",
        description="An outgoing TCP connection went to an address and port the workload's "
        "profile does not contain, and no recent DNS answer for a profiled name gave it.",
        severity=Severity.MEDIUM,
        tags=("network", "egress", "whitelisted", "anomaly", "networkprofile"),
        mitre_tactic="TA0010",
        mitre_technique="T1041",
        profile=_REQ,
        kinds=frozenset({EventKind.TCP}),
        dedup_key=("dstAddr", "dstPort", "proto"),
        fix="",
        build=_egress,
        parameters=(
            ParamSpec(
                "ignorePrivate",
                ParamKind.BOOL,
                True,
                "Ignore private, link-local and CGNAT destinations: pod and service IPs "
                "change with every rollout, so only public destinations are stable enough "
                "to compare with a profile.",
            ),
            ParamSpec(
                "allowResolvedAddresses",
                ParamKind.BOOL,
                True,
                "Accept a destination that a DNS response recently answered to this workload "
                "for a name in the profile (CDNs rotate addresses); bounded by the detector "
                "settings `resolvedAddressTtl` and `resolvedAddressesPerWorkload`.",
            ),
        ),
    ),
)
