"""OCI seccomp profiles from the learned syscalls.

The profile allows: the syscalls the container was seen making (advise_seccomp), plus
`RUNTIME_SYSCALLS` — what the OCI runtime (runc, crun) itself executes *after* it installed the
filter and before the entrypoint runs (it installs the filter as late as it can, but the final
set-up steps and the ``execve`` of the entrypoint happen under it) — plus `ALWAYS_ALLOWED`, which
no process can avoid (exiting, returning from signal handlers, restarting interrupted calls).
Everything else gets the default action: ``SCMP_ACT_ERRNO`` (EPERM) in enforcing mode, or
``SCMP_ACT_LOG`` in the "complain" variant, which only logs what a strict profile would refuse
(deploy it first, watch the audit log, then switch).

Output: the OCI `linux.seccomp` JSON (kubelet's ``localhost/`` profiles), or a Security Profiles
Operator ``SeccompProfile`` resource with the same content.
"""

from __future__ import annotations

from typing import Any

from profiler.errors import IncompleteProfileError
from profiler.hardening import require_completed
from profiler.profiles import Profile

#: Syscalls runc/crun make between installing the filter and exec'ing the entrypoint (process
#: set-up: credentials, capabilities, working directory, closing descriptors, signals, exec).
RUNTIME_SYSCALLS = frozenset(
    {
        "arch_prctl", "brk", "capget", "capset", "chdir", "close", "close_range", "dup3",
        "epoll_create1", "epoll_ctl", "epoll_pwait", "execve", "execveat", "fchdir", "fcntl",
        "fstat", "fstatfs", "futex", "getdents64", "getpid", "getppid", "getrandom", "gettid",
        "mmap", "mprotect", "munmap", "nanosleep", "newfstatat", "openat", "pipe2", "prctl",
        "prlimit64", "read", "rseq", "rt_sigaction", "rt_sigprocmask", "sched_yield",
        "set_robust_list", "set_tid_address", "setgid", "setgroups", "setresgid", "setresuid",
        "setuid", "sigaltstack", "statx", "tgkill", "umask", "write",
    }
)  # fmt: skip

#: Never worth refusing: a process must always be able to exit and return from signals.
ALWAYS_ALLOWED = frozenset({"exit", "exit_group", "rt_sigreturn", "restart_syscall"})

#: Architectures of a typical node; the kernel maps the names per architecture.
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64")

#: EPERM: what a refused call returns, so programs see "operation not permitted" rather than
#: ENOSYS-style confusion.
ERRNO_EPERM = 1

SPO_API_VERSION = "security-profiles-operator.x-k8s.io/v1beta1"


def allowed_syscalls(profile: Profile) -> list[str]:
    return sorted(profile.entries.syscalls | RUNTIME_SYSCALLS | ALWAYS_ALLOWED)


def seccomp_profile(
    profile: Profile, *, complain: bool = False, force: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The OCI seccomp JSON and the warnings (see `hardening.require_completed`)."""
    warnings = require_completed(profile, artifact="seccomp profile", force=force)
    if not profile.entries.syscalls:
        if not force:
            raise IncompleteProfileError(
                "no syscalls were recorded (is the advise_seccomp gadget enabled?); "
                "the profile would allow only the runtime's own calls (use --force anyway)",
                obj=f"{profile.key.namespace or '-'}/{profile.name}",
                field="spec.containers[0].syscalls",
            )
        warnings.append("no syscalls recorded: only the runtime's own syscalls are allowed")
    body: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_LOG" if complain else "SCMP_ACT_ERRNO",
        "architectures": list(ARCHITECTURES),
        "syscalls": [{"names": allowed_syscalls(profile), "action": "SCMP_ACT_ALLOW"}],
    }
    if not complain:
        body["defaultErrnoRet"] = ERRNO_EPERM
    return body, warnings


def spo_seccomp_profile(
    profile: Profile, *, complain: bool = False, force: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The same content as a Security Profiles Operator `SeccompProfile` resource."""
    body, warnings = seccomp_profile(profile, complain=complain, force=force)
    spec = {k: v for k, v in body.items() if k != "defaultErrnoRet"}
    resource = {
        "apiVersion": SPO_API_VERSION,
        "kind": "SeccompProfile",
        "metadata": {
            "name": profile.name,
            "namespace": profile.key.namespace,
            "annotations": {"gadgetwatch.io/workload": profile.key.display()},
        },
        "spec": spec,
    }
    return resource, warnings
