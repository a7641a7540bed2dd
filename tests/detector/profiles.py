"""A small, faithful in-memory `ProfileView` / `ProfileReadModel` for detector tests.

Faithful to the contract in `profiler.readmodel`: membership questions with wildcard path
segments (``*`` matches one segment), exec arguments compared only when recorded, open flags
as "seen with at least these flags".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from profiler.identity import PeerKey, WorkloadKey
from profiler.readmodel import ProfileStatus


def _path_match(pattern: str, path: str) -> bool:
    if "*" not in pattern:
        return pattern == path
    a, b = pattern.split("/"), path.split("/")
    if len(a) != len(b):
        return False
    return all(fnmatchcase(y, x) if x == "*" else x == y for x, y in zip(a, b, strict=True))


@dataclass
class MemoryProfile:
    key: WorkloadKey
    status: ProfileStatus = ProfileStatus.COMPLETED
    name: str = "profile"
    #: exec path -> recorded argument lists (empty: arguments not recorded)
    execs: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    #: path (may hold * segments) -> flags seen
    opens: dict[str, set[str]] = field(default_factory=dict)
    syscalls: set[str] = field(default_factory=set)
    capabilities: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    egress: set[tuple[str, int, str]] = field(default_factory=set)
    ingress: set[tuple[int, str]] = field(default_factory=set)
    #: rule id -> allowed process names ("*": the whole container)
    policies: dict[str, frozenset[str]] = field(default_factory=dict)
    #: (peer identity, port) of outgoing connections
    peers: set[tuple[PeerKey, int]] = field(default_factory=set)
    #: Process-aware: (section, key) -> executables, section in open (path, exact key),
    #: dns (name), egress ((addr, port, proto)), peer ((PeerKey, port)); absent: any process
    sources: dict[tuple[str, Any], frozenset[str]] = field(default_factory=dict)

    @property
    def process_aware(self) -> bool:
        return bool(self.sources)

    def _sources(self, section: str, key: Any) -> frozenset[str] | None:
        known = self.sources.get((section, key))
        return None if known is None or "*" in known else known

    def open_sources(self, path: str) -> frozenset[str] | None:
        return self._sources("open", path)

    def sources_under(self, directory: str) -> frozenset[str] | None:
        found: frozenset[str] = frozenset()
        for p in self.opens:
            if p == directory or p.startswith(directory + "/"):
                known = self._sources("open", p)
                if known is None:
                    return None
                found |= known
        return found or None

    def domain_sources(self, name: str) -> frozenset[str] | None:
        return self._sources("dns", name)

    def egress_sources(self, addr: str, port: int, proto: str) -> frozenset[str] | None:
        return self._sources("egress", (addr, port, proto))

    def peer_sources(self, peer: PeerKey, port: int) -> frozenset[str] | None:
        return self._sources("peer", (peer, port))

    def allows_exec(self, path: str, args: Sequence[str]) -> bool:
        if path not in self.execs:
            return False
        recorded = self.execs[path]
        return not recorded or tuple(args) in recorded

    def allows_exec_path(self, path: str) -> bool:
        return path in self.execs

    def opened_under(self, directory: str) -> bool:
        return any(p == directory or p.startswith(directory + "/") for p in self.opens)

    def opened_with_suffix(self, suffix: str) -> bool:
        return any(p.endswith(suffix) for p in self.opens)

    def rule_policy(self, rule_id: str) -> frozenset[str] | None:
        return self.policies.get(rule_id)

    def allows_open(self, path: str, flags: Sequence[str]) -> bool:
        return any(_path_match(p, path) and set(flags) <= seen for p, seen in self.opens.items())

    def allows_syscall(self, name: str) -> bool:
        return name in self.syscalls

    def allows_capability(self, capability: str) -> bool:
        return capability in self.capabilities

    def allows_domain(self, name: str) -> bool:
        return name in self.domains

    def allows_egress(self, addr: str, port: int, proto: str) -> bool:
        return (addr, port, proto) in self.egress

    def egress_to(self, addr: str) -> bool:
        return any(a == addr for a, _, _ in self.egress)

    def allows_ingress(self, port: int, proto: str) -> bool:
        return (port, proto) in self.ingress

    def allows_peer(self, peer: PeerKey, port: int) -> bool:
        return (peer, port) in self.peers


class MemoryProfiles:
    def __init__(self, profiles: Iterable[MemoryProfile] = ()) -> None:
        self.profiles = {p.key: p for p in profiles}

    def get(self, key: WorkloadKey) -> MemoryProfile | None:
        return self.profiles.get(key)

    def add(self, profile: MemoryProfile) -> None:
        self.profiles[profile.key] = profile


def profile_from_dict(key: WorkloadKey, data: Mapping[str, Any]) -> MemoryProfile:
    """From the golden files' `profile:` mapping."""
    return MemoryProfile(
        key=key,
        status=ProfileStatus(data.get("status", "completed")),
        name=data.get("name", "profile"),
        execs=_execs(data.get("execs", [])),
        opens={p: set(f) for p, f in (data.get("opens") or {}).items()},
        syscalls=set(data.get("syscalls", [])),
        capabilities=set(data.get("capabilities", [])),
        domains=set(data.get("domains", [])),
        egress={(a, int(p), pr) for a, p, pr in data.get("egress", [])},
        policies={r: frozenset(p) for r, p in (data.get("policies") or {}).items()},
        peers={(PeerKey(k, ns, n), int(p)) for k, ns, n, p in data.get("peers", [])},
    )


def _execs(raw: Any) -> dict[str, list[tuple[str, ...]]]:
    """A list of paths (arguments not recorded), or a mapping path -> list of argument lists."""
    if isinstance(raw, Mapping):
        return {p: [tuple(a) for a in arg_lists] for p, arg_lists in raw.items()}
    return {p: [] for p in raw}
