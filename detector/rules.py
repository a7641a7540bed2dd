"""The rule model and the catalogue: what a rule is, how it is looked up and parameterised.

A `Rule` is data plus a *builder*. The data (id, name, severity, tags, MITRE, profile
dependency, parameters, event kinds, dedup key fields, fix suggestion) is what
`gadgetwatch rules list`, the docs and bindings see. The builder turns resolved parameters and
the container's environment (`RuleEnv`: its volume mounts, the cluster facts from settings) into
a `Check`: a closure ``check(event, profile) -> Finding | None`` that the evaluator calls on the
hot path. Compiling parameters into closures once per container keeps the per-event work to
the comparisons themselves: no dict lookups of parameters, no re-parsing.

A check returns a `Finding` only when something deserves attention: the dedup key (a tuple of
raw values, never a concatenated string), the *subjects* an exception could allow (an exec
path, a file path, a domain, an address, a syscall, a capability) and a safe message. Turning a
finding into an `Alert` (identity, process, dedup counts, fix snippet) is `detector.alerting`'s
job; deciding whether it becomes one (gating, exceptions, cooldown, rate limits) is
`detector.evaluating`'s and `detector.dedup`'s.

Rules named by the predecessors that need data IG's gadgets do not deliver are listed as
`UnavailableRule`s with the reason, so bindings naming them load with a warning instead of an
error (the catalogue is the single authority on what exists).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.alerts import RuleId, Severity
from gadgetclient.events import Event, EventKind
from profiler.generalizing import ArgNormalizer
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileView


class ProfileDependency(enum.StrEnum):
    """How a rule relates to the learned profile."""

    #: Anomaly rule: only meaningful against a usable (completed) profile; waits for one.
    REQUIRED = "required"
    #: Signature rule that also consults a usable profile when there is one: behaviour the
    #: profile already contains does not alert (node-agent PR #283: drift and exec-from-mount
    #: alerts on whitelisted processes were "many false positives").
    OPTIONAL = "optional"
    #: Pure signature rule: always on.
    NONE = "none"


class AllowKind(enum.StrEnum):
    """What an exception can allow; the values are the exception resource's `spec.allow` keys."""

    EXEC = "execs"
    PATH = "paths"
    DOMAIN = "domains"
    ADDRESS = "addresses"
    SYSCALL = "syscalls"
    CAPABILITY = "capabilities"


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing a finding is about, in the terms of an exception (`port` only for addresses)."""

    kind: AllowKind
    value: str
    port: int = 0


@dataclass(frozen=True, slots=True)
class Actor:
    """The process behind an event, as far as the detector knows it.

    IG's exec events carry the executable (`exepath`) and the parent's (`parent_exepath`);
    open, TCP and DNS events carry only `comm` and the parent's `pcomm`. The detector fills
    `exe`/`parent_exe` from the exec it saw for the pid (`detector.processes`); "" means
    unknown, and a process-scoped allowance naming a path then does not match (fail closed).
    """

    comm: str = ""
    exe: str = ""
    parent_comm: str = ""
    parent_exe: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check found. `message` is already safe (see `alerts.safe_text`)."""

    message: str
    key: tuple[Hashable, ...]
    subjects: tuple[Subject, ...]
    #: Extra alert event fields beyond the event's own (already safe), e.g. new syscalls.
    fields: Mapping[str, Any] = field(default_factory=dict)
    #: A destination address the detector may excuse when a fresh DNS answer for a name in the
    #: profile carried it (R0011, `detector.resolved`); "" for every other finding. Decided in
    #: the detector, not in the check, because the answer depends on event time: a check
    #: result is memoised, a finding is not.
    resolved_address: str = ""


@dataclass(frozen=True, slots=True)
class RuleEnv:
    """Per-container facts compiled into checks."""

    #: Mount paths of the container's volumes (service-account token mount excluded).
    mounts: tuple[str, ...] = ()
    cluster_dns_suffixes: tuple[str, ...] = ("cluster.local",)
    api_server_addresses: frozenset[str] = frozenset()
    ssh_allowed_ports: tuple[int, ...] = (22, 2022)
    #: The container's own pod name, ordinal, pod IP and node as argument placeholders, so an
    #: exec is matched the way learning stored it (`profiler.generalizing`); None: no identity.
    args: ArgNormalizer | None = None
    #: The container's workload (namespace, top-level owner, container) and pod labels, for
    #: rules whose parameters allow legitimate users by workload (R2101, R2102).
    workload: WorkloadKey | None = None
    pod_labels: tuple[tuple[str, str], ...] = ()
    #: The acting process when it is not among the given executables (else None), from the
    #: detector's process table; asked by process-aware anomaly checks only when the profile
    #: records processes for the resource reached (`detector.intruders`).
    judge: Callable[[frozenset[str], Event], Actor | None] | None = None
    #: Scratch space shared by the rules built for one container plan (a new `RuleEnv` per
    #: plan): CEL rules keep one evaluation context there, so an event's fields are converted
    #: into CEL values once for all of them (`detector.custom_rules`).
    shared: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


Check = Callable[[Event, ProfileView | None], Finding | None]
Builder = Callable[[Mapping[str, Any], RuleEnv], Check]


class ParamKind(enum.StrEnum):
    BOOL = "bool"
    #: list of absolute paths (prefixes)
    PATHS = "paths"
    STRINGS = "strings"
    #: list of TCP/UDP ports 1-65535
    PORTS = "ports"
    #: list of ``namespace/Kind/name`` workload patterns (``*`` globs within a segment)
    WORKLOADS = "workloads"
    #: list of ``key=value`` pod labels
    LABELS = "labels"


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    kind: ParamKind
    #: Default value, already in coerced form; None means "from `DetectorSettings`".
    default: Any
    description: str

    def coerce(self, value: Any) -> Any:
        """The value in its compiled form; raises ValueError with a reason a person can act on."""
        if self.kind is ParamKind.BOOL:
            if isinstance(value, bool):
                return value
            raise ValueError(f"must be true or false, got {value!r}")
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list, got {type(value).__name__}")
        if self.kind is ParamKind.PORTS:
            ports = []
            for item in value:
                port = int(item) if isinstance(item, str) and item.isdigit() else item
                if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                    raise ValueError(f"ports must be integers 1-65535, got {item!r}")
                ports.append(port)
            return tuple(ports)
        items = []
        for item in value:
            if not isinstance(item, str) or not item:
                raise ValueError(f"items must be non-empty strings, got {item!r}")
            if self.kind is ParamKind.PATHS and not item.startswith("/"):
                raise ValueError(f"paths must be absolute, got {item!r}")
            if self.kind is ParamKind.WORKLOADS and (item.count("/") != 2 or "" in item.split("/")):
                raise ValueError(f"workloads must be namespace/Kind/name, got {item!r}")
            if self.kind is ParamKind.LABELS and (item.count("=") != 1 or item.startswith("=")):
                raise ValueError(f"labels must be key=value, got {item!r}")
            items.append(item)
        return tuple(items)


@dataclass(frozen=True, slots=True)
class Rule:
    id: RuleId
    name: str
    description: str
    severity: Severity
    tags: tuple[str, ...]
    mitre_tactic: str
    mitre_technique: str
    profile: ProfileDependency
    kinds: frozenset[EventKind]
    #: Names of the event fields the dedup key is made of (documentation of `Finding.key`).
    dedup_key: tuple[str, ...]
    #: Advice for signature rules (anomaly rules get an exception snippet instead).
    fix: str
    build: Builder
    parameters: tuple[ParamSpec, ...] = ()
    #: Other names the predecessors used for this rule; bindings may use them.
    aliases: tuple[str, ...] = ()
    #: Where the rule comes from: "built-in", or the file / "cluster" of a `RuntimeRule`.
    source: str = "built-in"
    #: For CEL rules (`detector.custom_rules`): a digest of the resource's spec, so a rule
    #: disabled after evaluation errors comes back when its resource changes; "" for Python.
    revision: str = ""
    #: For CEL rules: per event kind, the `event` fields ("field" / "field.sub") the match
    #: expression reads, None for "all of them"; the clean-event memo keys on them too.
    reads: tuple[tuple[EventKind, frozenset[str] | None], ...] = ()

    def resolve_params(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Defaults overlaid with `given`; problems (unknown or bad values) are returned, and
        a bad value keeps its default, so a typo never disables a rule."""
        specs = {p.name: p for p in self.parameters}
        values = {p.name: p.default for p in self.parameters}
        problems = []
        for name, raw in given.items():
            spec = specs.get(name)
            if spec is None:
                known = ", ".join(specs) or "none"
                problems.append(f"unknown parameter {name!r} (known: {known})")
                continue
            try:
                values[name] = spec.coerce(raw)
            except ValueError as exc:
                problems.append(f"parameter {name!r} {exc}; using the default")
        return values, problems


@dataclass(frozen=True, slots=True)
class UnavailableRule:
    """A rule the predecessors had that needs data IG's gadgets do not provide."""

    id: RuleId
    name: str
    reason: str
    aliases: tuple[str, ...] = ()


class Catalogue:
    """All rules, looked up by id, by name (case-insensitive, aliases included) or by tag."""

    def __init__(
        self,
        rules: Iterable[Rule],
        unavailable: Iterable[UnavailableRule],
        resource_rules: Iterable[Rule] = (),
    ) -> None:
        self.rules = tuple(sorted(rules, key=lambda r: r.id))
        self.unavailable = tuple(sorted(unavailable, key=lambda r: r.id))
        #: Rules switched on by their own resources (R3000 by `RuntimeGuard`s), not by
        #: bindings: known to look-ups (exceptions may name them), absent from `rules`, so the
        #: default binding and "every rule" listings of bindable rules leave them out.
        self.resource_rules = tuple(sorted(resource_rules, key=lambda r: r.id))
        self._by_id: dict[str, Rule | UnavailableRule] = {}
        self._by_name: dict[str, Rule | UnavailableRule] = {}
        entries: list[Rule | UnavailableRule] = [
            *self.rules,
            *self.unavailable,
            *self.resource_rules,
        ]
        for entry in entries:
            if entry.id in self._by_id:
                raise ValueError(f"duplicate rule id {entry.id}")
            self._by_id[entry.id] = entry
            for name in (entry.name, *entry.aliases):
                self._by_name[name.casefold()] = entry

    def by_id(self, rule_id: str) -> Rule | UnavailableRule | None:
        return self._by_id.get(rule_id.strip().upper())

    def by_name(self, name: str) -> Rule | UnavailableRule | None:
        return self._by_name.get(name.strip().casefold())

    def by_tags(self, tags: Sequence[str]) -> list[Rule]:
        """Rules having any of the tags (the predecessors' OR semantics)."""
        wanted = {t.casefold() for t in tags}
        return [r for r in self.rules if wanted.intersection(t.casefold() for t in r.tags)]

    def lookup(self, ref: str) -> Rule | UnavailableRule | None:
        """By id or by name."""
        return self.by_id(ref) or self.by_name(ref)

    def extended(self, extra: Iterable[Rule]) -> Catalogue:
        """This catalogue plus `extra` (`RuntimeRule`s): bindable like the built-in rules.

        Raises ValueError on a duplicate id; callers check names and ids first.
        """
        extra = tuple(extra)
        if not extra:
            return self
        return Catalogue((*self.rules, *extra), self.unavailable, self.resource_rules)


def default_catalogue() -> Catalogue:
    """The built-in catalogue (imported lazily: the catalogue modules import this one)."""
    from detector import catalogue_anomaly, catalogue_network, catalogue_signature, guards

    return Catalogue(
        (*catalogue_anomaly.RULES, *catalogue_signature.RULES, *catalogue_network.RULES),
        catalogue_signature.UNAVAILABLE,
        (guards.GUARD_RULE,),
    )
