"""The read side of profiles, as the detector sees them.

The detector never talks to a profile store: it asks this read model, an in-memory cache fed by
the store (watch-backed in Kubernetes, file-backed on a host). Lookups are O(1) dictionary reads
so they can sit on the per-event hot path. Only profiles whose status is ``completed`` drive
anomaly rules; the detector checks `ProfileView.status` itself and counts what it skips.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from profiler.identity import WorkloadKey


class ProfileStatus(enum.StrEnum):
    LEARNING = "learning"
    COMPLETED = "completed"
    #: Learning finished, but the agent attached to an already running container, so the
    #: container's start-up behaviour was not seen.
    PARTIAL = "partial"
    #: A size cap was reached; the profile stopped growing (never truncated silently).
    TOO_LARGE = "too-large"


class ProfileView(Protocol):
    """Membership questions an anomaly rule asks. Wildcard segments are understood."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> ProfileStatus: ...

    @property
    def key(self) -> WorkloadKey: ...

    def allows_exec(self, path: str, args: Sequence[str]) -> bool:
        """The executable was seen (with these arguments, if arguments were recorded)."""
        ...

    def allows_exec_path(self, path: str) -> bool:
        """The executable was seen, with any arguments (Kubescape's R0001 without enforceArgs)."""
        ...

    def allows_open(self, path: str, flags: Sequence[str]) -> bool:
        """The path (after collapse) was opened with at least these flags."""
        ...

    def opened_under(self, directory: str) -> bool:
        """Some path in `directory` (or `directory` itself) was opened, with any flags."""
        ...

    def rule_policy(self, rule_id: str) -> frozenset[str] | None:
        """Process names (comm) the profile's per-rule policy allows for `rule_id`; ``*`` means
        every process of the container (Kubescape's ``containerAllowed``). None: no policy."""
        ...

    def allows_syscall(self, name: str) -> bool: ...

    def allows_capability(self, capability: str) -> bool: ...

    def allows_domain(self, name: str) -> bool: ...

    def allows_egress(self, addr: str, port: int, proto: str) -> bool: ...

    def allows_ingress(self, port: int, proto: str) -> bool: ...


class ProfileReadModel(Protocol):
    def get(self, key: WorkloadKey) -> ProfileView | None:
        """The profile of this workload container, or None when none exists yet."""
        ...


def __getattr__(name: str) -> object:
    """`ProfileCache` (the concrete `ProfileReadModel`) and `CompiledProfile` (the concrete
    `ProfileView`) live in `profiler.cache`, because they need the profile model, which imports
    this module; they are re-exported here lazily. Prefer ``from profiler.cache import …``."""
    if name in ("ProfileCache", "CompiledProfile"):
        from profiler import cache

        return getattr(cache, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
