"""Signature rules R1000-R1011: known attack behaviour, no profile needed.

They are always on. Where a behaviour can be legitimate for one workload (a drifted binary,
an executable on a volume, `unshare` in a build container), the rule is
`ProfileDependency.OPTIONAL`: it consults the profile when a usable one exists, so behaviour
the workload learned does not alert (node-agent PR #283), and alerts without one.

This module also lists the predecessors' rules that cannot be evaluated from IG's gadgets
(`UNAVAILABLE`), each with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from detector.alerts import RuleId, Severity, safe_text
from detector.catalogue_anomaly import open_path, syscall_used
from detector.mining import MINING_PORTS, DomainSet
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
    UnavailableRule,
)
from gadgetclient.events import (
    DnsEvent,
    Event,
    EventKind,
    ExecEvent,
    OpenEvent,
    SyscallsEvent,
    TcpEvent,
    TcpEventType,
)
from gadgetclient.processes import exec_path
from profiler.readmodel import ProfileView

MSG = 256

#: Shared-memory file systems: writable by any process and never part of an image.
MALICIOUS_EXEC_DIRS = ("/dev/shm", "/run/shm")
KERNEL_MODULE_SYSCALLS = frozenset({"init_module", "finit_module"})
KERNEL_MODULE_TOOLS = frozenset({"insmod", "modprobe"})
SSH_CLIENTS = frozenset({"ssh", "scp", "sftp", "dbclient", "autossh", "sshpass"})
_FD_EXEC = re.compile(r"/proc/(?:self|thread-self|\d+)/fd/\d+|/dev/fd/\d+")
#: Flags that mean "this open may write"; a read of ld.so.preload is what the loader does.
_WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"})
LD_PRELOAD_FILE = "/etc/ld.so.preload"


def _s(text: str) -> str:
    return safe_text(text, limit=MSG)


def _exec_finding(event: ExecEvent, path: str, what: str) -> Finding:
    return Finding(
        message=f"{what}: {_s(path)} (comm {_s(event.process.comm)}, pid {event.process.pid})",
        key=(path,),
        subjects=(Subject(AllowKind.EXEC, path),),
    )


def _malicious_source(params: Mapping[str, Any], env: RuleEnv) -> Check:
    dirs = PathSet(params["paths"])

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, ExecEvent)
        path = exec_path(event)
        if dirs.matches(path) or (event.cwd and dirs.matches(event.cwd)):
            return _exec_finding(event, path, "Exec from malicious source")
        return None

    return check


def _drift(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, ExecEvent)
        if not event.upper_layer:
            return None
        path = exec_path(event)
        if profile is not None and profile.allows_exec(path, event.args):
            return None
        return _exec_finding(event, path, "Exec of a binary not in the base image")

    return check


def _kernel_module(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        if isinstance(event, SyscallsEvent):
            used = sorted(KERNEL_MODULE_SYSCALLS.intersection(event.syscalls))
            if not used:
                return None
            return Finding(
                message=f"Kernel module load: {', '.join(used)} used",
                key=("syscall", *used),
                subjects=tuple(Subject(AllowKind.SYSCALL, s) for s in used),
            )
        assert isinstance(event, ExecEvent)
        path = exec_path(event)
        if basename(path) not in KERNEL_MODULE_TOOLS:
            return None
        return Finding(
            message=f"Kernel module load: {_s(path)} executed (pid {event.process.pid})",
            key=("exec", path),
            subjects=(Subject(AllowKind.EXEC, path),),
        )

    return check


def _ssh(params: Mapping[str, Any], env: RuleEnv) -> Check:
    allowed = frozenset(
        params["allowedPorts"] if params["allowedPorts"] is not None else env.ssh_allowed_ports
    )

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT or event.dst_port in allowed:
            return None
        comm = event.process.comm
        if comm not in SSH_CLIENTS:
            return None
        return Finding(
            message=f"SSH connection to {_s(event.dst_addr)}:{event.dst_port} (port not "
            f"allowed) by {_s(comm)} (pid {event.process.pid})",
            key=(comm, event.dst_addr, event.dst_port),
            subjects=(Subject(AllowKind.ADDRESS, event.dst_addr, event.dst_port),),
        )

    return check


def _exec_from_mount(params: Mapping[str, Any], env: RuleEnv) -> Check:
    mounts = PathSet(env.mounts)

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, ExecEvent)
        if not mounts:
            return None
        path = exec_path(event)
        if not mounts.matches(path):
            return None
        if profile is not None and profile.allows_exec(path, event.args):
            return None
        return _exec_finding(event, path, "Exec from a volume mount")

    return check


def _fileless(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, ExecEvent)
        path = exec_path(event)
        if "memfd:" in path or ((path.startswith(("/proc/", "/dev/fd/"))) and _FD_EXEC.match(path)):
            return _exec_finding(event, path, "Fileless execution")
        return None

    return check


_unshare = syscall_used("unshare", "Unshare system call used (possible container escape attempt)")


def _mining_domain(params: Mapping[str, Any], env: RuleEnv) -> Check:
    domains = DomainSet(params["additionalDomains"])

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, DnsEvent)
        name = event.name
        if not domains.matches(name):
            return None
        return Finding(
            message=f"Crypto mining pool domain resolved: {_s(name)} by {_s(event.process.comm)}",
            key=(name,),
            subjects=(Subject(AllowKind.DOMAIN, name),),
        )

    return check


def _mining_port(params: Mapping[str, Any], env: RuleEnv) -> Check:
    ports = frozenset(params["ports"])

    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, TcpEvent)
        if event.type is not TcpEventType.CONNECT or event.dst_port not in ports:
            return None
        if profile is not None and profile.allows_egress(
            event.dst_addr, event.dst_port, event.proto
        ):
            return None
        return Finding(
            message=f"Connection to crypto mining port {event.dst_port} at "
            f"{_s(event.dst_addr)} by {_s(event.process.comm)} (pid {event.process.pid})",
            key=(event.dst_addr, event.dst_port),
            subjects=(Subject(AllowKind.ADDRESS, event.dst_addr, event.dst_port),),
        )

    return check


def _ld_preload(params: Mapping[str, Any], env: RuleEnv) -> Check:
    def check(event: Event, profile: ProfileView | None) -> Finding | None:
        assert isinstance(event, OpenEvent)
        if open_path(event) != LD_PRELOAD_FILE or _WRITE_FLAGS.isdisjoint(event.flags):
            return None
        comm = event.process.comm
        return Finding(
            message=f"{LD_PRELOAD_FILE} opened for writing by {_s(comm)} (pid {event.process.pid})",
            key=(comm,),
            subjects=(Subject(AllowKind.PATH, LD_PRELOAD_FILE),),
        )

    return check


_NONE = ProfileDependency.NONE
_OPT = ProfileDependency.OPTIONAL

RULES: tuple[Rule, ...] = (
    Rule(
        id=RuleId("R1000"),
        name="Exec from malicious source",
        description="A binary was executed from (or with its working directory in) shared "
        "memory such as /dev/shm, where droppers stage payloads.",
        severity=Severity.HIGH,
        tags=("exec", "signature", "malicious"),
        mitre_tactic="TA0002",
        mitre_technique="T1059",
        profile=_NONE,
        kinds=frozenset({EventKind.EXEC}),
        dedup_key=("path",),
        fix="Find what wrote the binary into shared memory; legitimate software does not "
        "execute from there.",
        build=_malicious_source,
        parameters=(
            ParamSpec(
                "paths",
                ParamKind.PATHS,
                MALICIOUS_EXEC_DIRS,
                "Directories an executable (or the working directory) must not be in.",
            ),
        ),
        aliases=("Process executed from malicious source",),
    ),
    Rule(
        id=RuleId("R1001"),
        name="Exec Binary Not In Base Image",
        description="A binary was executed from the container's writable layer (IG's "
        "upper-layer flag): it was added or modified after the container started.",
        severity=Severity.HIGH,
        tags=("exec", "malicious", "binary", "base image", "signature", "drift"),
        mitre_tactic="TA0005",
        mitre_technique="T1036",
        profile=_OPT,
        kinds=frozenset({EventKind.EXEC}),
        dedup_key=("path",),
        fix="Containers should run what their image contains: find out who wrote the binary, "
        "and rebuild the image if it is needed.",
        build=_drift,
        aliases=("Drifted process executed",),
    ),
    Rule(
        id=RuleId("R1002"),
        name="Kernel Module Load",
        description="init_module or finit_module was used, or insmod/modprobe executed.",
        severity=Severity.CRITICAL,
        tags=("syscall", "kernel", "module", "load", "signature"),
        mitre_tactic="TA0005",
        mitre_technique="T1547.006",
        profile=_NONE,
        kinds=frozenset({EventKind.SYSCALLS, EventKind.EXEC}),
        dedup_key=("syscall names | exec path",),
        fix="Containers must not load kernel modules: drop CAP_SYS_MODULE and investigate.",
        build=_kernel_module,
        aliases=("Process tries to load a kernel module",),
    ),
    Rule(
        id=RuleId("R1003"),
        name="Malicious SSH Connection",
        description="An SSH client connected to a port outside the allowed SSH ports "
        "(tunnels and lateral movement often use odd ports).",
        severity=Severity.MEDIUM,
        tags=("ssh", "connection", "port", "malicious", "signature", "network"),
        mitre_tactic="TA0008",
        mitre_technique="T1021.004",
        profile=_NONE,
        kinds=frozenset({EventKind.TCP}),
        dedup_key=("comm", "dstAddr", "dstPort"),
        fix="Check who started the SSH client; add the port to `allowedPorts` if it is a "
        "legitimate SSH server.",
        build=_ssh,
        parameters=(
            ParamSpec(
                "allowedPorts",
                ParamKind.PORTS,
                None,
                "SSH server ports that do not alert (default: settings `sshAllowedPorts`, "
                "22 and 2022).",
            ),
        ),
        aliases=("Disallowed ssh connection",),
    ),
    Rule(
        id=RuleId("R1004"),
        name="Exec from mount",
        description="A binary was executed from one of the pod's volume mounts and the "
        "profile (if any) does not contain it.",
        severity=Severity.MEDIUM,
        tags=("exec", "mount", "signature"),
        mitre_tactic="TA0002",
        mitre_technique="T1059",
        profile=_OPT,
        kinds=frozenset({EventKind.EXEC}),
        dedup_key=("path",),
        fix="Volumes should carry data, not programs: check who placed the binary there.",
        build=_exec_from_mount,
        aliases=("Process executed from mount",),
    ),
    Rule(
        id=RuleId("R1005"),
        name="Fileless Execution",
        description="A program was executed from memory (memfd) or through a /proc/<pid>/fd "
        "file descriptor, leaving no file on disk.",
        severity=Severity.HIGH,
        tags=("exec", "fileless", "malicious", "signature"),
        mitre_tactic="TA0005",
        mitre_technique="T1055",
        profile=_NONE,
        kinds=frozenset({EventKind.EXEC}),
        dedup_key=("path",),
        fix="Fileless execution is a common malware technique: capture the process and "
        "investigate.",
        build=_fileless,
        aliases=("Fileless execution detected",),
    ),
    Rule(
        id=RuleId("R1006"),
        name="Unshare System Call usage",
        description="The unshare system call was used (new namespaces: a step of many "
        "container escapes) and the profile (if any) does not contain it.",
        severity=Severity.MEDIUM,
        tags=("syscall", "escape", "unshare", "signature"),
        mitre_tactic="TA0004",
        mitre_technique="T1611",
        profile=_OPT,
        kinds=frozenset({EventKind.SYSCALLS}),
        dedup_key=("syscall",),
        fix="Workloads rarely need new namespaces: drop CAP_SYS_ADMIN and use a seccomp "
        "profile that denies unshare.",
        build=_unshare,
        aliases=("Process tries to escape container",),
    ),
    Rule(
        id=RuleId("R1008"),
        name="Crypto Mining Domain Communication",
        description="A DNS name of a known crypto-mining pool (the packaged list, which "
        "includes Kubescape's, or a binding's additions) was resolved.",
        severity=Severity.CRITICAL,
        tags=("network", "crypto", "miners", "malicious", "dns", "signature"),
        mitre_tactic="TA0011",
        mitre_technique="T1071.004",
        profile=_NONE,
        kinds=frozenset({EventKind.DNS}),
        dedup_key=("name",),
        fix="Treat the workload as compromised: find the miner process and its entry point.",
        build=_mining_domain,
        parameters=(
            ParamSpec(
                "additionalDomains",
                ParamKind.STRINGS,
                (),
                "More pool domains (each also matches its sub-domains), added to the packaged "
                "list.",
            ),
        ),
    ),
    Rule(
        id=RuleId("R1009"),
        name="Crypto Mining Related Port Communication",
        description="An outgoing TCP connection went to a port used by mining pools "
        "(stratum), and the profile (if any) does not contain it.",
        severity=Severity.MEDIUM,
        tags=("network", "crypto", "miners", "malicious", "port", "signature"),
        mitre_tactic="TA0011",
        mitre_technique="T1071",
        profile=_OPT,
        kinds=frozenset({EventKind.TCP}),
        dedup_key=("dstAddr", "dstPort"),
        fix="Check the destination; mining pools listen on these ports.",
        build=_mining_port,
        parameters=(
            ParamSpec("ports", ParamKind.PORTS, MINING_PORTS, "Destination ports that alert."),
        ),
    ),
    Rule(
        id=RuleId("R1011"),
        name="LD_PRELOAD Hook",
        description="/etc/ld.so.preload was opened for writing: every later process would "
        "load the attacker's library.",
        severity=Severity.HIGH,
        tags=("open", "ld_preload", "malicious", "signature"),
        mitre_tactic="TA0005",
        mitre_technique="T1574.006",
        profile=_NONE,
        kinds=frozenset({EventKind.OPEN}),
        dedup_key=("comm",),
        fix="Nothing in a container should write /etc/ld.so.preload: inspect the file and "
        "the writer.",
        build=_ld_preload,
        aliases=("ld_preload hooks technique detected",),
    ),
)

_NO_GADGET = "IG's trace_exec/open/tcp/dns/capabilities and advise_seccomp gadgets"

UNAVAILABLE: tuple[UnavailableRule, ...] = (
    UnavailableRule(
        id=RuleId("R1007"),
        name="XMR Crypto Mining Detection",
        reason=f"needs a RandomX instruction tracer; {_NO_GADGET} do not observe it "
        "(R1008 and R1009 cover miners by domain and port)",
        aliases=("Crypto Miner detected", "Crypto miner launched"),
    ),
    UnavailableRule(
        id=RuleId("R1010"),
        name="Symlink Created Over Sensitive File",
        reason=f"needs symlink/symlinkat arguments; {_NO_GADGET} do not report them",
        aliases=("Soft link created over sensitive file",),
    ),
    UnavailableRule(
        id=RuleId("R1012"),
        name="Hardlink Created Over Sensitive File",
        reason=f"needs link/linkat arguments; {_NO_GADGET} do not report them",
        aliases=("Hard link created over sensitive file",),
    ),
    UnavailableRule(
        id=RuleId("R1015"),
        name="Malicious Ptrace Usage",
        reason=f"needs ptrace request arguments; {_NO_GADGET} do not report them",
    ),
    UnavailableRule(
        id=RuleId("R1030"),
        name="Unexpected io_uring Operation Detected",
        reason=f"needs io_uring operation events; {_NO_GADGET} do not report them",
    ),
    UnavailableRule(
        id=RuleId("R2000"),
        name="Exec to pod",
        reason="an API-server event (PodExecOptions admission), not a node event; use "
        "Kubernetes audit logs",
    ),
    UnavailableRule(
        id=RuleId("R2001"),
        name="Port forward to pod",
        reason="an API-server event (PodPortForwardOptions admission), not a node event; "
        "use Kubernetes audit logs",
        aliases=("Port forward",),
    ),
)
