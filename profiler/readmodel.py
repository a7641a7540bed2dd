"""The read side of profiles, as the detector sees them: the questions, not the answers.

The detector never talks to a profile store or to the learner: it asks a `ProfileReadModel`.
The one implementation is `cache.ProfileCache`, the single owner on this node of "what does
this workload's profile allow right now": the learner publishes its lifecycle decisions into it
synchronously, on event time, and the store's watch adds what other nodes wrote (see
`cache.py`). Lookups are O(1) dictionary reads so they can sit on the per-event hot path. Only
profiles whose status is ``completed`` drive anomaly rules; the detector checks
`ProfileView.status` itself and counts what it skips.

This module only declares protocols; `cache.py` implements them and imports this module, never
the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from profiler.identity import PeerKey, WorkloadKey
from profiler.status import ProfileStatus

__all__ = ["ProfileReadModel", "ProfileStatus", "ProfileView"]


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

    def opened_with_suffix(self, suffix: str) -> bool:
        """Some opened path ends with `suffix` (Kubescape's `ap.was_path_opened_with_suffix`)."""
        ...

    def rule_policy(self, rule_id: str) -> frozenset[str] | None:
        """Process names (comm) the profile's per-rule policy allows for `rule_id`; ``*`` means
        every process of the container (Kubescape's ``containerAllowed``). None: no policy."""
        ...

    def allows_syscall(self, name: str) -> bool: ...

    def allows_capability(self, capability: str) -> bool: ...

    def allows_domain(self, name: str) -> bool: ...

    def allows_egress(self, addr: str, port: int, proto: str) -> bool: ...

    def egress_to(self, addr: str) -> bool:
        """An outgoing connection to this address was seen, any port (Kubescape's
        `nn.was_address_in_egress`)."""
        ...

    def allows_ingress(self, port: int, proto: str) -> bool: ...

    def allows_peer(self, peer: PeerKey, port: int) -> bool:
        """An outgoing connection to this peer identity and port was seen (any address)."""
        ...

    # Process-aware profiles: asked once the resource is known. The executables that reached
    # it while learning, or None when any process may (or the profile records no processes).

    @property
    def process_aware(self) -> bool:
        """Some entry records its processes: the answers below may be other than None."""
        ...

    def open_sources(self, path: str) -> frozenset[str] | None: ...

    def sources_under(self, directory: str) -> frozenset[str] | None:
        """Over every recorded open in `directory` (R0006 without `exactFiles`)."""
        ...

    def domain_sources(self, name: str) -> frozenset[str] | None: ...

    def egress_sources(self, addr: str, port: int, proto: str) -> frozenset[str] | None: ...

    def peer_sources(self, peer: PeerKey, port: int) -> frozenset[str] | None: ...


class ProfileReadModel(Protocol):
    def get(self, key: WorkloadKey) -> ProfileView | None:
        """The profile of this workload container, or None when none exists yet."""
        ...
