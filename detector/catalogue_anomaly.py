"""Anomaly rules R0001-R0011: behaviour that the completed profile does not contain.

Every rule here has `ProfileDependency.REQUIRED`: the evaluator calls its check only with a
usable profile (completed, by default) and counts every skipped evaluation otherwise. Each
check first applies its cheap event filter (the event kind is already right), then asks the
profile, which is an O(1) set membership in the profiler's read model.

Paths are compared in their lexically normal form (`gadgetclient.pathnorm`, relative paths
joined to the process's cwd): the event mapping normalises already, and `open_path` does it
again for events built elsewhere, so no spelling of a path (``/etc//shadow``,
``/tmp/../etc/shadow``, ``./shadow`` in ``/etc``) reaches a comparison un-normalised.

Process-aware profiles (`detector.intruders`): R0002, R0005, R0006 and R0011 also alert when
the resource is known but the profile recorded which executables reached it, and the acting
process is not one of them.

Messages carry attacker-controlled strings through `safe_text` with a short bound (the full,
longer-bounded values are in the alert's event fields).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from detector.addresses import is_private
from detector.alerts import RuleId, Severity, safe_text
from detector.intruders import intruder, join, known_field, learned, who, who_key
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
from gadgetclient.pathnorm import is_normal, normalise_path
from gadgetclient.processes import exec_path
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

#: Files whose reading or writing is an attacker's first step (credentials, sudo rights), as a
#: container sees its own filesystem.
CONTAINER_SENSITIVE_FILES = (
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/sshd_config",
    "/etc/ssh/ssh_config",
    "/root/.ssh",
)

#: The same first step on the node, for pods that mount host paths (log shippers, CSI drivers,
#: monitoring agents). Each entry with why; globs (`*` also crosses `/`) where the path has a
#: per-pod or per-user part. Listed by `gadgetwatch rules list` as R0010's `paths` default.
NODE_SENSITIVE_FILES = (
    # The kubelet's client certificate and key: the node's identity towards the API server
    # (read every pod's secrets scheduled on the node, patch the node's status).
    "/var/lib/kubelet/pki",
    # kubeconfig files: API credentials of the kubelet, the kube-proxy, the control plane's
    # components and administrators (kubeadm, k3s, and people's own files).
    "/var/lib/kubelet/kubeconfig",
    "/var/lib/kubelet/bootstrap-kubeconfig",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/var/lib/kube-proxy/kubeconfig",
    "/etc/rancher/k3s/k3s.yaml",
    "/root/.kube/config",
    "/home/*/.kube/config",
    # Other pods' service-account tokens and mounted secrets, as the kubelet lays them out:
    # reading them is lateral movement to every workload on the node.
    "/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/*",
    "/var/lib/kubelet/pods/*/volumes/kubernetes.io~secret/*",
    # Container runtime sockets: whoever talks to them starts privileged containers on the node.
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/k3s/containerd/containerd.sock",
    # Container runtime state: every container's root filesystem, image layers and
    # configuration (environment variables with secrets); reading it bypasses every pod boundary.
    "/run/containerd/io.containerd.runtime.v2.task",
    "/var/lib/containerd",
    "/var/lib/containers/storage",
    "/run/containers/storage",
    "/var/lib/docker/overlay2",
    "/var/lib/docker/containers/*/config.v2.json",
    # Control-plane and etcd PKI (cluster CA keys: mint any identity), etcd's data (every
    # Secret of the cluster), static pod manifests (writing one runs a pod as the kubelet).
    "/etc/kubernetes/pki",
    "/var/lib/etcd",
    "/etc/kubernetes/manifests",
)

#: Back-compatible name: the whole default list of R0010.
SENSITIVE_FILES = CONTAINER_SENSITIVE_FILES + NODE_SENSITIVE_FILES

#: Where pods that mount the node's root file system conventionally put it (Falco, the Datadog
#: and node-exporter charts, Fluent Bit examples): a path under one of them is also checked
#: with the prefix removed, so `/host/var/lib/kubelet/pki/…` is the kubelet's key.
HOST_ROOT_PREFIXES = ("/host", "/hostfs", "/host/root", "/rootfs", "/node")

#: Other pods' service-account tokens under the kubelet's directory (R0006 `nodeTokenPaths`).
NODE_TOKEN_PATHS = (
    "/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/*/token",
    "/var/lib/kubelet/pods/*/volumes/kubernetes.io~secret/*/token",
)

_ENVIRON = re.compile(r"/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/environ")


def open_path(event: OpenEvent) -> str:
    """The opened path in normal form (relative to the process's cwd when IG sent one)."""
    path = event.path
    return path if is_normal(path) else normalise_path(path, event.process.cwd)


def _s(text: str) -> str:
    return safe_text(text, limit=MSG)


def _unexpected_exec(params: Mapping[str, Any], env: RuleEnv) -> Check:
    enforce_args = params["enforceArgs"]
    normalizer = env.args

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, ExecEvent)
        path = exec_path(event)
        if profile is not None and (
            profile.allows_exec(path, event.args)
            if enforce_args
            else profile.allows_exec_path(path)
        ):
            return None
        if enforce_args and profile is not None and normalizer is not None:
            # The pod's own name/ordinal/IP/node as learning stored them (placeholders).
            args = normalizer.normalize(event.args)
            if args is not event.args and profile.allows_exec(path, args):
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
            if not profile.process_aware:
                return None
            known = profile.open_sources(path)
            actor = intruder(known, event, env)
            if actor is None or known is None:
                return None
            return Finding(
                message=f"Unexpected file access: {_s(path)} by {who(actor)} (pid "
                f"{event.process.pid}), which did not open it while learning (learned: "
                f"{learned(known)})",
                key=("process", who_key(actor), path),
                subjects=(Subject(AllowKind.PATH, path),),
                fields={"knownProcesses": known_field(known)},
            )
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
            if not profile.process_aware:
                return None
            known = profile.domain_sources(name)
            actor = intruder(known, event, env)
            if actor is None or known is None:
                return None
            return Finding(
                message=f"Unexpected domain request: {_s(name)} by {who(actor)}, which did not "
                f"query it while learning (learned: {learned(known)})",
                key=(name, "process", who_key(actor)),
                subjects=(Subject(AllowKind.DOMAIN, name),),
                fields={"knownProcesses": known_field(known)},
            )
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


def _host_views(path: str, roots: tuple[str, ...]) -> tuple[str, ...]:
    """The path, and the node path it names when it lies under a conventional host root."""
    out = [path]
    for root in roots:
        if path.startswith(root) and path[len(root) : len(root) + 1] == "/":
            out.append(path[len(root) :])
    return tuple(out)


def _token_access(params: Mapping[str, Any], env: RuleEnv) -> Check:
    exact_files = params["exactFiles"]
    node_tokens = PathSet(params["nodeTokenPaths"])
    roots = tuple(r.rstrip("/") for r in params["hostRootPrefixes"] if r.rstrip("/"))

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        path = open_path(event)
        if not path.startswith(_TOKEN_PREFIXES) and not (
            node_tokens and any(node_tokens.matches(p) for p in _host_views(path, roots))
        ):
            return None
        if profile is not None:
            opened = [p for p in token_path_variants(path) if profile.allows_open(p, event.flags)]
            # The directory allowance is about the container's own token directories; a node
            # path (another pod's token) lies in none of them.
            directory = token_directory(path)
            if not opened and not exact_files and directory:
                opened = [d for d in _same_directory(directory) if profile.opened_under(d)]
                sources = [profile.sources_under(d) for d in opened]
            else:
                sources = [profile.open_sources(p) for p in opened]
            if opened:
                if not profile.process_aware:
                    return None
                known = join(sources)
                actor = intruder(known, event, env)
                if actor is None or known is None:
                    return None
                return Finding(
                    message=f"Unexpected service account token access: {_s(path)} by "
                    f"{who(actor)} (pid {event.process.pid}), which did not read it while "
                    f"learning (learned: {learned(known)})",
                    key=("process", who_key(actor)),
                    subjects=(Subject(AllowKind.PATH, _ATOMIC_DIR.sub("/", path)),),
                    fields={"knownProcesses": known_field(known)},
                )
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
    files = PathSet((*params["paths"], *params["additionalPaths"]))
    roots = tuple(r.rstrip("/") for r in params["hostRootPrefixes"] if r.rstrip("/"))

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        path = open_path(event)
        if not any(files.matches(p) for p in _host_views(path, roots)):
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
            if not profile.process_aware:
                return None
            known = profile.egress_sources(addr, event.dst_port, event.proto)
            actor = intruder(known, event, env)
            if actor is None or known is None:
                return None
            # The destination is known: no DNS answer excuses the process (no resolved_address).
            return Finding(
                message=f"Unexpected egress connection to {_s(addr)}:{event.dst_port} by "
                f"{who(actor)} (pid {event.process.pid}), which did not connect there while "
                f"learning (learned: {learned(known)})",
                key=(addr, event.dst_port, event.proto, "process", who_key(actor)),
                subjects=(Subject(AllowKind.ADDRESS, addr, event.dst_port),),
                fields={"knownProcesses": known_field(known)},
            )
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
            ParamSpec(
                "nodeTokenPaths",
                ParamKind.PATHS,
                NODE_TOKEN_PATHS,
                "Other pods' service-account tokens as the node lays them out (the kubelet's "
                "projected and secret volumes): a pod that mounts /var/lib/kubelet can read "
                "every token on the node, which is lateral movement to every workload there.",
            ),
            ParamSpec(
                "hostRootPrefixes",
                ParamKind.PATHS,
                HOST_ROOT_PREFIXES,
                "Where pods conventionally mount the node's root file system; a path under one "
                "is also checked with the prefix removed.",
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
        description="A sensitive file (/etc/shadow, sudoers, SSH configuration; on the node: "
        "kubelet credentials, other pods' tokens, runtime sockets, control-plane PKI, ...) was "
        "opened and the workload's profile does not contain it.",
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
                "paths",
                ParamKind.PATHS,
                SENSITIVE_FILES,
                "Sensitive files and directories (globs: `*` also crosses `/`): the container's "
                "credentials (shadow, sudoers, SSH) and, for pods that mount host paths, the "
                "node's: kubelet PKI and kubeconfig files, other pods' service-account tokens "
                "and secrets, container runtime sockets and state, control-plane and etcd PKI "
                "and data (docs/rules.md says why each is there). Replacing it drops the "
                "defaults; `additionalPaths` adds to them.",
            ),
            ParamSpec(
                "additionalPaths",
                ParamKind.PATHS,
                (),
                "More sensitive files or directories (or globs).",
            ),
            ParamSpec(
                "hostRootPrefixes",
                ParamKind.PATHS,
                HOST_ROOT_PREFIXES,
                "Where pods conventionally mount the node's root file system; a path under one "
                "is also checked with the prefix removed (`/host/etc/kubernetes/pki/ca.key`).",
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
                "to compare with a profile (R2100 compares in-cluster peers by identity).",
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
