"""securityContext advice from a profile, every line with the evidence behind it.

Each `AdviceLine` is one setting, the recommended value and why (what the profile saw, or did
not see, during learning). Settings:

- ``capabilities``: drop ALL, add back only the capabilities the container was seen using;
- ``runAsNonRoot: true`` when no process ran as uid 0;
- ``readOnlyRootFilesystem: true`` when nothing was opened for writing outside the volume
  mounts and the usual temporary / pseudo file systems (mount an emptyDir there if needed);
- ``allowPrivilegeEscalation: false`` unless setuid/setgid capabilities were used or processes
  changed uid;
- ``seccompProfile``: Localhost with the generated profile when syscalls were recorded,
  RuntimeDefault otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profiler.hardening import require_completed
from profiler.profiles import Profile

#: Open flags that mean the file is written.
WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"})
#: Paths writable even with a read-only root file system (tmpfs / pseudo file systems the
#: runtime mounts, or where an emptyDir is the usual answer).
SCRATCH_PREFIXES = ("/tmp/", "/var/tmp/", "/dev/", "/proc/", "/sys/", "/run/", "/var/run/")
#: How many offending paths an evidence line lists before "…".
EVIDENCE_ITEMS = 5


@dataclass(frozen=True, slots=True)
class AdviceLine:
    setting: str
    value: Any
    evidence: str


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p) for p in prefixes)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:EVIDENCE_ITEMS])
    return shown + (f", … ({len(items)} in all)" if len(items) > EVIDENCE_ITEMS else "")


def advise(profile: Profile, *, force: bool = False) -> tuple[list[AdviceLine], list[str]]:
    warnings = require_completed(profile, artifact="securityContext advice", force=force)
    meta, entries = profile.meta, profile.entries
    lines: list[AdviceLine] = []
    caps = sorted({cap for cap, _ in entries.capabilities})
    used = sorted({f"{cap} ({syscall or '?'})" for cap, syscall in entries.capabilities})
    lines.append(
        AdviceLine(
            "capabilities",
            {"drop": ["ALL"], "add": [c.removeprefix("CAP_") for c in caps]},
            "capability checks seen: " + _listing(used) if used else "no capability checks seen",
        )
    )
    uids = sorted(meta.uids)
    if uids and 0 not in uids:
        lines.append(
            AdviceLine(
                "runAsNonRoot",
                True,
                f"processes ran as uid {_listing([str(u) for u in uids])}; never 0",
            )
        )
    elif uids:
        lines.append(AdviceLine("runAsNonRoot", False, "processes ran as uid 0 (root)"))
    mounts = tuple(m.rstrip("/") + "/" for m in sorted(meta.volume_mounts))
    written = sorted(
        path
        for path, flags in entries.opens.items()
        if flags & WRITE_FLAGS and not _under(path, SCRATCH_PREFIXES + mounts)
    )
    if written:
        lines.append(
            AdviceLine(
                "readOnlyRootFilesystem",
                False,
                "writes outside volumes and temporary paths: " + _listing(written),
            )
        )
    else:
        lines.append(
            AdviceLine(
                "readOnlyRootFilesystem",
                True,
                "no file opened for writing outside volumes and temporary paths",
            )
        )
    setid = [c for c in caps if c in ("CAP_SETUID", "CAP_SETGID")]
    if setid or len(uids) > 1:
        why = f"capabilities {', '.join(setid)} used" if setid else f"uids {uids} seen"
        lines.append(AdviceLine("allowPrivilegeEscalation", True, f"needed: {why}"))
    else:
        lines.append(
            AdviceLine(
                "allowPrivilegeEscalation",
                False,
                "no setuid/setgid capability used and a single uid seen",
            )
        )
    if entries.syscalls:
        lines.append(
            AdviceLine(
                "seccompProfile",
                {"type": "Localhost", "localhostProfile": f"gadgetwatch/{profile.name}.json"},
                f"{len(entries.syscalls)} syscalls recorded; generate it with "
                "`gadgetwatch profile seccomp`",
            )
        )
    else:
        lines.append(
            AdviceLine("seccompProfile", {"type": "RuntimeDefault"}, "no syscalls recorded")
        )
    return lines, warnings


def security_context(lines: list[AdviceLine]) -> dict[str, Any]:
    """The advice as a container `securityContext` mapping."""
    return {line.setting: line.value for line in lines}
