"""Process-aware anomaly findings: a known resource reached by a process that never did.

With process-aware profiles (`profiler.sources`), R0002, R0005, R0006, R0011 and R2100 ask,
once the resource is known to the profile, which executables reached it while learning
(`ProfileView.open_sources` and siblings; None means any process). `intruder` compares the
acting process (`RuleEnv.judge`: the detector looks the executable up in its process table,
and remembers the set for the clean-event memo) with that set:

- a known executable matches exactly (paths as the kernel reported them at exec);
- an unknown one (its exec was not seen: the agent restarted after the process started, or
  the table forgot it) is compared by `comm`, the first 15 bytes of a recorded executable's
  basename. That is weaker (a process names itself) and documented; alerting instead would
  report every long-running process after each agent restart. An intruder's own process is
  started by an exec the agent sees, so it is judged by its executable.

Messages name the process and the learned ones (at most `_LISTED`, all safe text); the finding
key holds the intruder's executable, so each intruder of a resource is deduplicated on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from detector.alerts import safe_text
from detector.paths import basename
from detector.processes import COMM_LEN
from detector.rules import Actor, RuleEnv
from gadgetclient.events import Event

#: Learned executables named in one message (the alert's `knownProcesses` field lists up to
#: `_FIELD_MAX`); a message stays one readable line.
_LISTED = 3
#: The per-entry bound's upper limit (`maxProcessesPerEntry` <= 1024) keeps this finite anyway.
_FIELD_MAX = 64
#: Bound of an executable path inside a message or field.
_EXE_LIMIT = 256


def intruder(known: frozenset[str] | None, event: Event, env: RuleEnv) -> Actor | None:
    """The acting process when `known` (the resource's learned executables) excludes it."""
    if known is None or env.judge is None:
        return None
    return env.judge(known, event)


def judge(known: frozenset[str], exe: str, comm: str) -> Actor | None:
    """The process (`exe`, "" when unknown, and `comm`) when `known` excludes it, else None."""
    if exe:
        if exe in known:
            return None
    elif comm and any(basename(e)[:COMM_LEN] == comm for e in known):
        return None
    return Actor(comm=comm, exe=exe)


def join(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """The union of several entries' answers; None (any process) absorbs."""
    out: frozenset[str] = frozenset()
    for known in sets:
        if known is None:
            return None
        out |= known
    return out


def who(actor: Actor) -> str:
    """The intruder for a message."""
    if actor.exe:
        return safe_text(actor.exe, limit=_EXE_LIMIT)
    return f"{safe_text(actor.comm, limit=32) or '(unknown)'} (executable unknown)"


def who_key(actor: Actor) -> str:
    """The intruder in a finding key: its executable, else its comm."""
    return actor.exe or "comm:" + actor.comm


def learned(known: frozenset[str]) -> str:
    """The learned executables for a message: ``/bin/cat, /usr/bin/x and 2 more``."""
    names = sorted(known)
    shown = ", ".join(safe_text(n, limit=_EXE_LIMIT) for n in names[:_LISTED])
    more = len(names) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def known_field(known: frozenset[str]) -> list[str]:
    """The alert field `knownProcesses`."""
    return [safe_text(n, limit=_EXE_LIMIT) for n in sorted(known)[:_FIELD_MAX]]
