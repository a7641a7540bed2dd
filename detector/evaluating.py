"""The `Detector`: bound rules × (event, profile) → deduplicated `Alert`s, on the hot path.

Data flow per batch (``Detector.evaluate``, synchronous, pure CPU, no I/O)::

    event ─► plan of its container (cached; compiled from the scope: bound rules with
    │        parameters, severity, exceptions, volume mounts)
    ├─► rules bound for this event kind only (rules are indexed by kind)
    ├─► profile gate: anomaly rules need a usable profile; each skipped evaluation is
    │   counted as suppressed (no_profile, profile_learning, ...); signature rules always run
    ├─► clean-event memo: an event identical (in every field the bound rules read) to one
    │   found clean against the same profile is answered by one set lookup
    ├─► checks → findings
    └─► profile rule policy → recent DNS answers (R0011) → exceptions →
        cooldown/rate limits (`dedup`) → `alerting.build_alert`

Guards (`detector.guards`, rule R3000) run before the profile gate and the memo: they need
no profile and alert while learning, and whether they find something depends on the acting
process, which the memo key leaves out. Exec events feed the process table
(`detector.processes`) that tells guards and process-scoped exceptions who acted.

DNS responses also feed the per-workload resolved-address table (`detector.resolved`) before
any rule runs, whenever the container has a rule bound to TCP events.

With a process-aware profile (`ProfileView.process_aware`), whether an open, DNS or TCP event
is clean also depends on who acted. The memo then remembers, with the event's key, the
executables for which it is clean: the intersection of every process set a check consulted
(`RuleEnv.judge`, `detector.intruders`); an event no check judged by its process is clean for
any process. A repeat is a hit only when its executable is known and in that set; any other
process (an intruder, an unknown executable compared by comm) is evaluated in full. So the
memo fills per resource as before, not per resource and executable.

Why the memo is sound: profiles only grow (merge is a set union), exceptions and bindings
are fixed for a plan's lifetime (a rule update drops every plan), and the memo is reset when
the container's profile object or usability changes. Only events with *no* finding are
memoised, so every repeat of an anomaly still reaches dedup and is counted.

Identity: the workload container is computed with the profiler's `workload_key`, so alerts,
cooldown keys and profiles always agree. Nothing here calls the Kubernetes API: pod labels
and mounts come from `PodMetadata` (a watch-fed cache), namespace labels from an optional
lookup (see `detector.matching`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import structlog

from detector.alerting import (
    build_alert,
    fingerprint,
    kubernetes_info,
    labels_of,
    limit_alert,
    rule_disabled_alert,
    runtime_info,
)
from detector.alerts import Alert, KubernetesInfo, RuntimeInfo, Severity
from detector.config import DetectorSettings
from detector.dedup import Deduplicator
from detector.exceptions import Allowance
from detector.guards import GUARD_RULE, GuardCheck, GuardFilter, compile_guard
from detector.intruders import judge
from detector.loading import Level
from detector.matching import NamespaceLabels, Scope, ScopeResolver
from detector.processes import ProcessTable
from detector.resolved import ResolvedAddresses
from detector.rules import (
    Actor,
    Catalogue,
    Check,
    Finding,
    ProfileDependency,
    Rule,
    RuleEnv,
    default_catalogue,
)
from detector.ruleset import RuleSet
from detector.stats import DetectorStats
from gadgetclient.events import Container, DnsEvent, Event, EventKind, ExecEvent
from gadgetclient.processes import exec_path
from profiler import identity as _identity
from profiler.generalizing import arg_normalizer
from profiler.identity import PodMetadata, WorkloadKey
from profiler.profiles import ANY_PROCESS
from profiler.readmodel import ProfileReadModel, ProfileStatus, ProfileView

log = structlog.get_logger(__name__)

WorkloadKeyFn = Callable[[Container, PodMetadata], WorkloadKey]

#: A compiled plan is refreshed after this much event time, so pod labels and volume mounts
#: that the pod cache learned after the container's first event are picked up (a minute is
#: far below any rollout and costs one recompilation per container per minute).
PLAN_TTL_NS = 60 * 1_000_000_000

_GATE_REASON = {
    ProfileStatus.LEARNING: "profile_learning",
    ProfileStatus.PARTIAL: "profile_partial",
    ProfileStatus.TOO_LARGE: "profile_too_large",
}


def _fallback_workload_key(container: Container, pod_metadata: PodMetadata) -> WorkloadKey:
    """Used only until `profiler.identity.workload_key` exists (one place to switch)."""
    if not container.namespace and not container.pod:
        return WorkloadKey("", "Host", container.image or container.container, container.container)
    if not container.owner_kind:
        return WorkloadKey(container.namespace, "Pod", container.pod, container.container)
    kind, name = pod_metadata.top_owner(
        container.namespace, container.owner_kind, container.owner_name
    )
    return WorkloadKey(container.namespace, kind, name, container.container)


def resolve_workload_key_fn() -> WorkloadKeyFn:
    fn: WorkloadKeyFn | None = getattr(_identity, "workload_key", None)
    return fn if fn is not None else _fallback_workload_key


#: The `event` fields (CEL names) `_memo_key` already covers, per kind; a CEL rule reading
#: others extends its plan's memo key by them (`_memo_extras`). Computed fields are covered
#: when what they are computed from is.
_MEMO_COVERS: dict[EventKind, frozenset[str]] = {
    EventKind.OPEN: frozenset({"kind", "path", "flags", "open_path"}),
    EventKind.DNS: frozenset({"kind", "name"}),
    EventKind.TCP: frozenset(
        {
            "kind",
            "type",
            "dst_addr",
            "dst_port",
            "proto",
            "process.comm",
            "dst_peer.kind",
            "dst_peer.name",
            "dst_peer.namespace",
        }
    ),
    EventKind.EXEC: frozenset(
        {"kind", "path", "args", "cwd", "upper_layer", "process.comm", "exec_path"}
    ),
    EventKind.CAPABILITY: frozenset({"kind", "capability"}),
    EventKind.SYSCALLS: frozenset({"kind", "syscalls"}),
}

#: `_Plan.memo_extra` value of a kind whose CEL rules read the whole event: no memo.
_NO_MEMO: Any = object()


def _memo_extras(by_kind: Mapping[EventKind, Sequence[_Bound]]) -> dict[EventKind, Any]:
    """Per kind, what the memo key must add for the CEL rules bound to it: an extractor of
    the fields they read beyond `_MEMO_COVERS`, or `_NO_MEMO`."""
    out: dict[EventKind, Any] = {}
    for kind, bound in by_kind.items():
        extra: set[str] = set()
        for b in bound:
            for read_kind, fields in b.rule.reads:
                if read_kind is not kind:
                    continue
                if fields is None:
                    out[kind] = _NO_MEMO
                    break
                extra |= {
                    f
                    for f in fields
                    if f not in _MEMO_COVERS[kind] and f.partition(".")[0] not in _MEMO_COVERS[kind]
                }
            if out.get(kind) is _NO_MEMO:
                break
        if kind not in out and extra:
            # The events' own (frozen, hashable) values, read by C-level attrgetter: this runs
            # for every event of the kind, memo hits included.
            out[kind] = attrgetter(*sorted(extra))
    return out


#: A memo miss (distinct from None, "clean for any process").
_MISSING: Any = object()


def _memo_key(event: Any) -> Any:
    """Every field any rule reads from the event, per kind (messages aside)."""
    kind = event.kind
    if kind is EventKind.OPEN:
        path = event.path
        if path.startswith("/"):
            return (path, event.flags)
        # A relative name means different files in different directories (events the
        # mapping did not normalise): the cwd the rules join it to is part of the key.
        return (path, event.flags, event.process.cwd)
    if kind is EventKind.DNS:
        return event.name
    if kind is EventKind.TCP:
        peer = event.dst_peer
        return (
            event.type,
            event.dst_addr,
            event.dst_port,
            event.proto,
            event.process.comm,
            peer.kind,
            peer.name,
            peer.namespace,
        )
    if kind is EventKind.EXEC:
        return (event.path, event.args, event.cwd, event.upper_layer, event.process.comm)
    if kind is EventKind.CAPABILITY:
        return event.capability
    return event.syscalls


class _Bound:
    """One rule compiled for one container."""

    __slots__ = ("check", "required", "rule", "rule_id", "severity")

    def __init__(self, rule: Rule, check: Check, severity: Severity) -> None:
        self.rule = rule
        self.rule_id = str(rule.id)
        self.check = check
        self.severity = severity
        self.required = rule.profile is ProfileDependency.REQUIRED


class _Guard:
    """One guard compiled for one container."""

    __slots__ = ("check", "label", "severity")

    def __init__(self, check: GuardCheck, severity: Severity, label: str) -> None:
        self.check = check
        self.severity = severity
        self.label = label


class _Plan:
    __slots__ = (
        "allowance",
        "by_kind",
        "compiled_ns",
        "guard_bound",
        "guard_filter",
        "guards",
        "has_required",
        "kubernetes",
        "memo",
        "memo_extra",
        "memo_owner",
        "mounts",
        "needs_profile",
        "runtime",
        "scope",
        "wants_answers",
        "workload",
    )

    def __init__(
        self,
        *,
        workload: WorkloadKey,
        by_kind: dict[EventKind, tuple[_Bound, ...]],
        allowance: Allowance,
        kubernetes: KubernetesInfo,
        runtime: RuntimeInfo,
        compiled_ns: int,
        scope: Scope | None = None,
        mounts: tuple[str, ...] = (),
        guards: dict[EventKind, tuple[_Guard, ...]] | None = None,
        guard_bound: _Bound | None = None,
        guard_filter: GuardFilter | None = None,
    ) -> None:
        self.workload = workload
        self.guards = guards or {}
        self.guard_filter = guard_filter
        #: R3000 as the alert builder sees it (severity per guard is on `_Guard`).
        self.guard_bound = guard_bound
        #: The resolved scope and volume mounts the rules were built from: a refresh that
        #: finds both unchanged keeps the built rules and the memo (`Detector._refresh`).
        self.scope = scope
        self.mounts = mounts
        self.by_kind = by_kind
        self.allowance = allowance
        self.kubernetes = kubernetes
        self.runtime = runtime
        self.compiled_ns = compiled_ns
        self.has_required = {k: any(b.required for b in v) for k, v in by_kind.items()}
        self.needs_profile = {
            k: any(b.rule.profile is not ProfileDependency.NONE for b in v)
            for k, v in by_kind.items()
        }
        #: DNS answers feed the resolved-address table only where a TCP rule can use them.
        self.wants_answers = EventKind.TCP in by_kind
        #: Clean events: key -> None (clean for any process) or the executables it is clean for.
        self.memo: dict[EventKind, dict[Any, frozenset[str] | None]] = {k: {} for k in by_kind}
        #: Per kind, the memo-key extension for CEL rules (see `_memo_extras`).
        self.memo_extra = _memo_extras(by_kind)
        self.memo_owner: object = None


class Detector:
    """Evaluates events against the bound rules. Not thread-safe: one detector per stage."""

    def __init__(
        self,
        *,
        settings: DetectorSettings,
        profiles: ProfileReadModel,
        pod_metadata: PodMetadata,
        stats: DetectorStats,
        rules: RuleSet | None = None,
        catalogue: Catalogue | None = None,
        namespace_labels: NamespaceLabels | None = None,
        workload_key: WorkloadKeyFn | None = None,
        clock: Callable[[], float] = time.perf_counter,
        cluster_name: str = "",
        report_repeats: bool = False,
    ) -> None:
        self.settings = settings
        #: Stamped on every alert (the root setting `clusterName`).
        self.cluster_name = cluster_name
        self.stats = stats
        #: The catalogue given (built-in Python rules, or the CEL catalogue); `catalogue` is
        #: it plus the `RuntimeRule`s of every source.
        self.base_catalogue = catalogue or default_catalogue()
        self.catalogue = self.base_catalogue
        self._error_limit = settings.rule_error_limit
        #: Evaluation errors and disabled CEL rules, by (rule id, revision).
        self._rule_errors: Counter[tuple[str, str]] = Counter()
        self._disabled: set[tuple[str, str]] = set()
        #: `RuntimeRule`s ignored because another source defines the id or name (reported).
        self._duplicates: set[tuple[str, str, str]] = set()
        self._profiles = profiles
        self._pod_metadata = pod_metadata
        self._namespace_labels = namespace_labels
        self._workload_key = workload_key or resolve_workload_key_fn()
        self._clock = clock
        self._ok_statuses = frozenset(settings.alert_on_profile_statuses)
        self._memo_size = settings.clean_event_memo_size
        self._sample_every = settings.latency_sample_every
        self._sample_countdown = settings.latency_sample_every
        self._window_s = settings.rate_limit_window.total_seconds()
        self._dedup = Deduplicator(
            cooldown_ns=int(settings.cooldown.total_seconds() * 1e9),
            max_keys=settings.cooldown_max_keys,
            window_ns=int(settings.rate_limit_window.total_seconds() * 1e9),
            global_limit=settings.global_rate_limit,
            per_rule_limit=settings.per_rule_rate_limit,
            stats=stats,
        )
        self._resolved = ResolvedAddresses(
            ttl_ns=int(settings.resolved_address_ttl.total_seconds() * 1e9),
            max_addresses=settings.resolved_addresses_per_workload,
            max_workloads=settings.resolved_address_workloads,
        )
        self._resolved.evictions = stats.resolved_evictions
        self._processes = ProcessTable()
        #: Process sets consulted while the current event is evaluated (None: none).
        self._consulted: frozenset[str] | None = None
        self._processes.evictions = stats.processes_forgotten
        self._exe_of = self._processes.exe_of
        self._env = RuleEnv(
            cluster_dns_suffixes=tuple(s.strip(".").lower() for s in settings.cluster_dns_suffixes),
            api_server_addresses=frozenset(settings.api_server_addresses),
            ssh_allowed_ports=settings.ssh_allowed_ports,
        )
        self._sources: dict[str, RuleSet] = {}
        self._plans: dict[str, _Plan] = {}
        #: Occurrences suppressed (cooldown, rate limit) since `take_repeats`, by dedup key:
        #: the AlertManager exporter keeps their alerts firing while they repeat. Only kept with
        #: `report_repeats` (a consumer that calls `take_repeats` after every batch, so at most
        #: one batch's distinct keys are held).
        self._report_repeats = report_repeats
        self._repeats: Counter[tuple[WorkloadKey, str, Any]] = Counter()
        self._resolver = self._new_resolver()
        if rules is not None:
            self.update_rules("initial", rules)

    # -- rule sources -------------------------------------------------------------------

    def update_rules(self, source: str, ruleset: RuleSet) -> None:
        """Replace the bindings and exceptions of one source ("file", "cluster", ...).

        A new set that holds errors and no valid binding, from a source whose last set had one,
        is refused (`rulesets_rejected`): the last good set stays in force.

        The effective set is the union of all sources. New problems are logged here and
        counted by source (a problem the source already reported is not repeated); every
        plan is recompiled lazily.
        """
        previous = self._sources.get(source)
        if (
            previous is not None
            and ruleset.errors
            and any(b.rules for b in previous.bindings)
            and not any(b.rules for b in ruleset.bindings)
        ):
            # Every binding broke at once (a bad edit, a bad apply): applying that would turn
            # all detection off. Keep the last good set and say so; a later valid set wins.
            self.stats.rulesets_rejected[source] += 1
            log.error(
                "rule set has no valid binding, keeping the last good set",
                source=source,
                errors=len(ruleset.errors),
                first_error=str(ruleset.errors[0]),
            )
            return
        known = set(previous.problems) if previous is not None else set()
        for problem in ruleset.problems:
            if problem in known:
                continue  # reported when this source first delivered it
            if problem.level is Level.ERROR:
                self.stats.load_errors[source] += 1
                log.error("rule source problem", source=source, problem=str(problem))
            else:
                self.stats.load_warnings[source] += 1
                log.warning("rule source problem", source=source, problem=str(problem))
        self._sources[source] = ruleset
        self._extend_catalogue()
        self._resolver = self._new_resolver()
        self._plans.clear()
        log.info(
            "rules updated",
            source=source,
            bindings=len(ruleset.bindings),
            exceptions=len(ruleset.exceptions),
            guards=len(ruleset.guards),
            problems=len(ruleset.problems),
        )

    def _extend_catalogue(self) -> None:
        """The base catalogue plus every source's `RuntimeRule`s; an id or name defined by
        two sources keeps the first source's rule (counted as a load error of the second)."""
        base = self.base_catalogue
        taken: set[str] = set()
        extra: list[Rule] = []
        for source, ruleset in self._sources.items():
            for rule in ruleset.rules:
                names = {str(rule.id), rule.name.casefold()}
                if base.lookup(rule.id) or base.by_name(rule.name) or names & taken:
                    marker = (source, str(rule.id), rule.revision)
                    if marker not in self._duplicates:  # reported once, not per update
                        self._duplicates.add(marker)
                        self.stats.load_errors[source] += 1
                        log.error("rule defined twice, ignored", source=source, rule_id=rule.id)
                    continue
                taken |= names
                extra.append(rule)
        self.catalogue = base.extended(extra)
        live = {(str(r.id), r.revision) for r in extra}
        self._disabled &= live

    @property
    def disabled_rules(self) -> list[str]:
        """CEL rules switched off after evaluation errors (until their resource changes)."""
        return sorted(rule_id for rule_id, _ in self._disabled)

    @property
    def ruleset(self) -> RuleSet:
        return RuleSet.union(self._sources.values())

    def _new_resolver(self) -> ScopeResolver:
        return ScopeResolver(
            self.ruleset,
            catalogue=self.catalogue,
            builtin_default=self.settings.builtin_default_binding,
            namespace_labels=self._namespace_labels,
        )

    def invalidate(self) -> None:
        """Drop compiled plans (e.g. after the pod cache learned new labels or mounts)."""
        self._plans.clear()

    # -- the hot path ---------------------------------------------------------------------

    def evaluate(self, events: Sequence[Event]) -> list[Alert]:
        alerts: list[Alert] = []
        plans = self._plans
        one = self._one
        events_count = self.stats.events
        for event in events:
            events_count[event.kind] += 1
            container = event.container
            plan = plans.get(container.key)
            if plan is None or event.timestamp_ns - plan.compiled_ns > PLAN_TTL_NS:
                try:
                    plan = self._refresh(plan, container, event.timestamp_ns)
                except Exception as exc:  # bad metadata must not stop the stream
                    self.stats.errors["plan"] += 1
                    log.error("rule plan failed", container_id=container.key, error=repr(exc))
                    continue
            self._sample_countdown -= 1
            if self._sample_countdown:
                one(event, plan, alerts)
                continue
            self._sample_countdown = self._sample_every
            started = self._clock()
            one(event, plan, alerts)
            self.stats.eval_seconds.observe(self._clock() - started)
        self.stats.dedup_keys = len(self._dedup)
        return alerts

    def _actor(self, event: Event) -> Actor:
        return self._processes.actor(event)

    def _judge(self, known: frozenset[str], event: Event) -> Actor | None:
        """`RuleEnv.judge`: the acting process when `known` excludes it. Also narrows what the
        memo will remember the event as clean for (`_consulted`)."""
        exe = self._exe_of(event)
        consulted = self._consulted
        self._consulted = known if consulted is None else consulted & known
        return judge(known, exe, event.process.comm)

    def _one(self, event: Event, plan: _Plan, alerts: list[Alert]) -> None:
        kind = event.kind
        if kind is EventKind.EXEC:
            assert isinstance(event, ExecEvent)
            self._processes.record(event, exec_path(event))
        if kind is EventKind.DNS and plan.wants_answers:
            assert isinstance(event, DnsEvent)
            if event.is_response and event.addresses:
                self._resolved.record(
                    plan.workload, event.name, event.addresses, event.timestamp_ns
                )
        guards = plan.guards.get(kind) if plan.guards else None
        bound = plan.by_kind.get(kind)
        if not bound:
            if guards:
                self._guard(event, plan, guards, alerts)
            return
        profile: ProfileView | None = None
        usable = False
        gate = ""
        if plan.needs_profile[kind]:
            profile = self._profiles.get(plan.workload)
            if profile is None:
                gate = "no_profile"
            elif profile.status in self._ok_statuses:
                usable = True
            else:
                gate = _GATE_REASON.get(profile.status, "profile_" + str(profile.status))
        gated = bool(gate) and plan.has_required[kind]
        memo: dict[Any, frozenset[str] | None] | None = None
        memo_key: Any = None
        if not gated and self._memo_size:
            owner = profile if usable else None
            if plan.memo_owner is not owner:
                for s in plan.memo.values():
                    s.clear()
                plan.memo_owner = owner
            memo = plan.memo[kind]
            memo_key = _memo_key(event)
            if plan.memo_extra:
                extra = plan.memo_extra.get(kind)
                if extra is _NO_MEMO:
                    memo = None
                elif extra is not None:
                    memo_key = (memo_key, extra(event))
            clean_for = memo.get(memo_key, _MISSING) if memo is not None else _MISSING
            # Never holds an event that touched a guarded resource (see below).
            if clean_for is None:
                self.stats.memo_hits[kind] += 1
                return
            if clean_for is not _MISSING and self._exe_of(event) in clean_for:
                self.stats.memo_hits[kind] += 1
                return
        # Guards run whatever the profile gate says; an event that touched a guarded resource
        # is never memoised, as who acted decides (the memo key leaves the process out).
        found = False
        if guards:
            found = self._guard(event, plan, guards, alerts)
        rule_profile = profile if usable else None
        evaluations = self.stats.evaluations
        self._consulted = None
        for b in bound:
            if b.required and not usable:
                self.stats.suppressed[(b.rule_id, gate)] += 1
                continue
            evaluations[b.rule_id] += 1
            try:
                finding = b.check(event, rule_profile)
            except Exception as exc:  # one bad rule/event never stops the stream
                self.stats.errors[b.rule_id] += 1
                log.error("rule evaluation failed", rule_id=b.rule_id, error=repr(exc)[:1024])
                found = True  # never memoise an event a rule could not judge
                if b.rule.revision:
                    self._rule_failed(b.rule, exc, event.timestamp_ns, alerts)
                continue
            if finding is not None:
                found = True
                self._admit(event, plan, b, finding, profile, alerts)
        if memo is not None and not found:
            if len(memo) >= self._memo_size:
                memo.clear()
            memo[memo_key] = self._consulted

    def _rule_failed(self, rule: Rule, exc: Exception, time_ns: int, alerts: list[Alert]) -> None:
        """Count a CEL rule's evaluation error; past the limit, disable it and say so."""
        marker = (str(rule.id), rule.revision)
        self._rule_errors[marker] += 1
        errors = self._rule_errors[marker]
        if errors < self._error_limit or marker in self._disabled:
            return
        self._disabled.add(marker)
        self.stats.rules_disabled[str(rule.id)] += 1
        self.stats.alerts["GW0003"] += 1
        log.error("rule disabled after evaluation errors", rule_id=rule.id, errors=errors)
        alerts.append(
            rule_disabled_alert(
                rule, errors=errors, last_error=str(exc), time_ns=time_ns, cluster=self.cluster_name
            )
        )
        self._plans.clear()  # recompiled without the rule

    def _guard(
        self, event: Event, plan: _Plan, guards: tuple[_Guard, ...], alerts: list[Alert]
    ) -> bool:
        """Run the guards of the event's kind; True when it touched a guarded resource."""
        b = plan.guard_bound
        assert b is not None
        assert plan.guard_filter is not None
        if not plan.guard_filter.touches(event):
            return False
        for g in guards:
            self.stats.evaluations[b.rule_id] += 1
            try:
                found = g.check(event, self._actor)
            except Exception as exc:  # one bad guard/event never stops the stream
                self.stats.errors[b.rule_id] += 1
                log.error("guard evaluation failed", guard=g.label, error=repr(exc))
                continue
            if found is not None:
                finding, actor = found
                profile = self._profiles.get(plan.workload)
                self._admit(event, plan, b, finding, profile, alerts, actor, g.severity)
        return True

    def _admit(
        self,
        event: Event,
        plan: _Plan,
        b: _Bound,
        finding: Finding,
        profile: ProfileView | None,
        alerts: list[Alert],
        actor: Actor | None = None,
        severity: Severity | None = None,
    ) -> None:
        rule_id = b.rule_id
        # Signature rules do not need the profile, but its per-rule policy still applies
        # (R1011's allowed writers of /etc/ld.so.preload); looked up only on a finding.
        owner = profile if profile is not None else self._profiles.get(plan.workload)
        if owner is not None:
            allowed = owner.rule_policy(rule_id)
            if allowed and (ANY_PROCESS in allowed or event.process.comm in allowed):
                self.stats.suppressed[(rule_id, "policy")] += 1
                return
            if finding.resolved_address and self._resolved.allowed_by(
                plan.workload, finding.resolved_address, owner, event.timestamp_ns
            ):
                self.stats.suppressed[(rule_id, "dns_resolved")] += 1
                return
        allowance = plan.allowance
        if actor is None and allowance.process_scoped:
            actor = self._actor(event)
        if allowance.suppresses(rule_id, finding.subjects, actor):
            self.stats.suppressed[(rule_id, "exception")] += 1
            return
        info = self._dedup.admit((plan.workload, rule_id, finding.key), rule_id, event.timestamp_ns)
        for announcement in self._dedup.take_announcements():
            self.stats.alerts["GW0001"] += 1
            alerts.append(
                limit_alert(announcement, window_s=self._window_s, cluster=self.cluster_name)
            )
        if info is None:
            if self._report_repeats:
                self._repeats[(plan.workload, rule_id, finding.key)] += 1
            return
        self.stats.alerts[rule_id] += 1
        alerts.append(
            build_alert(
                event=event,
                finding=finding,
                rule=b.rule,
                severity=severity or b.severity,
                actor=actor or self._actor(event),
                workload=plan.workload,
                kubernetes=plan.kubernetes,
                runtime=plan.runtime,
                profile=profile,
                dedup=info,
                cluster=self.cluster_name,
            )
        )

    def take_repeats(self) -> dict[str, int]:
        """Suppressed occurrences since the last call, by alert fingerprint."""
        if not self._repeats:
            return {}
        out: Counter[str] = Counter()
        for (workload, rule_id, key), n in self._repeats.items():
            out[fingerprint(workload, rule_id, key)] += n
        self._repeats.clear()
        return dict(out)

    # -- plans ----------------------------------------------------------------------------

    def _refresh(self, plan: _Plan | None, container: Container, now_ns: int) -> _Plan:
        """The container's plan, compiled anew or, when its TTL ran out but the workload, the
        resolved scope (cached by the resolver, so the same object for the same inputs) and the
        volume mounts are unchanged, the same plan with its built rules and memo kept: building
        the rules again from the same inputs would give the same checks, and a fresh memo
        would only re-learn the same clean events."""
        if plan is None:
            return self._compile(container, now_ns)
        workload, scope, mounts = self._inputs(container)
        if workload != plan.workload or scope is not plan.scope or mounts != plan.mounts:
            return self._compile(container, now_ns)
        plan.kubernetes = kubernetes_info(container, workload)
        plan.runtime = runtime_info(container)
        plan.compiled_ns = now_ns
        return plan

    def _inputs(self, container: Container) -> tuple[WorkloadKey, Scope, tuple[str, ...]]:
        """What a plan is compiled from: workload, resolved scope, volume mounts."""
        meta = self._pod_metadata
        workload = self._workload_key(container, meta)
        fallback: Mapping[str, str] = {}
        if not container.pod_labels and container.pod:
            fallback = meta.labels(container.namespace, container.pod)
        labels = labels_of(container, fallback)
        scope = self._resolver.resolve(container.namespace, labels, workload)
        mounts: tuple[str, ...] = ()
        if container.pod:
            mounts = tuple(
                meta.volume_mounts(container.namespace, container.pod, container.container)
            )
        return workload, scope, mounts

    def _compile(self, container: Container, now_ns: int) -> _Plan:
        workload, scope, mounts = self._inputs(container)
        pod_ip = ""
        if container.pod and not container.host_network:
            pod_ip = self._pod_metadata.pod_ip(container.namespace, container.pod)
        args = arg_normalizer(container, pod_ip)
        fallback: Mapping[str, str] = {}
        if not container.pod_labels and container.pod:
            fallback = self._pod_metadata.labels(container.namespace, container.pod)
        env = RuleEnv(
            mounts=mounts,
            cluster_dns_suffixes=self._env.cluster_dns_suffixes,
            api_server_addresses=self._env.api_server_addresses,
            ssh_allowed_ports=self._env.ssh_allowed_ports,
            args=args if args else None,
            workload=workload,
            pod_labels=labels_of(container, fallback),
            judge=self._judge,
        )
        by_kind: dict[EventKind, list[_Bound]] = {}
        for scoped in scope.rules:
            if self._disabled and (str(scoped.rule.id), scoped.rule.revision) in self._disabled:
                continue
            bound = _Bound(scoped.rule, scoped.rule.build(scoped.params, env), scoped.severity)
            for kind in scoped.rule.kinds:
                by_kind.setdefault(kind, []).append(bound)
        guards: dict[EventKind, list[_Guard]] = {}
        for guard in scope.guards:
            compiled = _Guard(compile_guard(guard), guard.severity, guard.label)
            for kind in guard.kinds:
                guards.setdefault(kind, []).append(compiled)
        plan = _Plan(
            guards={k: tuple(v) for k, v in guards.items()},
            guard_bound=_Bound(GUARD_RULE, GUARD_RULE.build({}, env), GUARD_RULE.severity)
            if guards
            else None,
            guard_filter=GuardFilter(scope.guards) if guards else None,
            workload=workload,
            by_kind={k: tuple(v) for k, v in by_kind.items()},
            allowance=scope.allowance,
            kubernetes=kubernetes_info(container, workload),
            runtime=runtime_info(container),
            compiled_ns=now_ns,
            scope=scope,
            mounts=mounts,
        )
        if len(self._plans) >= self.settings.plan_cache_size:
            self._plans.clear()
        self._plans[container.key] = plan
        return plan
