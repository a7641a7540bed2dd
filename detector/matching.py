"""Which rules and exceptions apply to a workload container: selector matching, cached.

A *scope* is what one workload container in one namespace, with one set of pod labels, is
subject to: the bound rules (with merged parameters and effective severity) and the
exceptions in force. Scopes are computed once per (namespace, pod labels, workload) and
cached, so the evaluator's per-container plan compilation is a dict lookup after the first
pod of a workload; the per-event path never matches a selector.

Namespace selectors need namespace labels. The detector does not call the API server: the
composition root may pass a `NamespaceLabels` lookup backed by its watch cache; without one
every namespace carries just the label Kubernetes sets on all namespaces,
``kubernetes.io/metadata.name``, which is what the shipped bindings select on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from detector.alerts import Severity
from detector.bindings import Binding
from detector.exceptions import Allowance
from detector.guards import RuntimeGuard
from detector.rules import Catalogue, Rule
from detector.ruleset import RuleSet, default_binding
from profiler.identity import WorkloadKey

NamespaceLabels = Callable[[str], Mapping[str, str]]
NAME_LABEL = "kubernetes.io/metadata.name"

#: Scopes kept; distinct (namespace, labels, workload) combinations on one node are in the
#: hundreds, so this only bounds memory against label churn (cleared when full).
MAX_SCOPES = 65_536


@dataclass(frozen=True, slots=True)
class ScopedRule:
    rule: Rule
    #: Parameters with defaults applied, in their compiled form.
    params: Mapping[str, Any]
    severity: Severity
    #: Names of the bindings that bind the rule here, least specific first.
    bindings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scope:
    rules: tuple[ScopedRule, ...]
    allowance: Allowance
    #: The guards in force here (they need no binding).
    guards: tuple[RuntimeGuard, ...] = ()


class ScopeResolver:
    """Resolves and caches scopes for one rule set (a new rule set gets a new resolver)."""

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        catalogue: Catalogue,
        builtin_default: bool = True,
        namespace_labels: NamespaceLabels | None = None,
    ) -> None:
        self.bindings: tuple[Binding, ...] = ruleset.bindings
        if not self.bindings and builtin_default:
            self.bindings = (default_binding(catalogue),)
        # Least specific first, so more specific bindings override while merging.
        self.bindings = tuple(sorted(self.bindings, key=lambda b: (b.specificity, b.name)))
        self.exceptions = ruleset.exceptions
        self.guards = ruleset.guards
        self._namespace_labels = namespace_labels
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...], WorkloadKey], Scope] = {}

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        if self._namespace_labels is None:
            return {NAME_LABEL: namespace}
        labels = dict(self._namespace_labels(namespace))
        labels.setdefault(NAME_LABEL, namespace)
        return labels

    def resolve(
        self, namespace: str, pod_labels: tuple[tuple[str, str], ...], workload: WorkloadKey
    ) -> Scope:
        key = (namespace, pod_labels, workload)
        scope = self._cache.get(key)
        if scope is None:
            if len(self._cache) >= MAX_SCOPES:
                self._cache.clear()
            scope = self._cache[key] = self._compute(namespace, dict(pod_labels), workload)
        return scope

    def _compute(self, namespace: str, pod_labels: dict[str, str], workload: WorkloadKey) -> Scope:
        ns_labels = self.namespace_labels(namespace)
        merged: dict[str, tuple[Rule, dict[str, Any], Severity | None, list[str]]] = {}
        for binding in self.bindings:
            if not binding.matches(ns_labels, pod_labels):
                continue
            for rb in binding.rules:
                rule, params, severity, names = merged.get(rb.rule.id, (rb.rule, {}, None, []))
                params = {**params, **rb.parameters}
                severity = rb.severity if rb.severity is not None else severity
                merged[rb.rule.id] = (rule, params, severity, [*names, binding.name])
        rules = []
        for rule_id in sorted(merged):
            rule, params, severity, names = merged[rule_id]
            resolved, _ = rule.resolve_params(params)  # validated at load time
            rules.append(
                ScopedRule(rule, resolved, severity or rule.severity, tuple(dict.fromkeys(names)))
            )
        allowance = Allowance(
            e
            for e in self.exceptions
            if e.in_scope(
                namespace=namespace,
                namespace_labels=ns_labels,
                pod_labels=pod_labels,
                workload=workload,
            )
        )
        in_force = tuple(
            g
            for g in self.guards
            if g.in_scope(
                namespace=namespace,
                namespace_labels=ns_labels,
                pod_labels=pod_labels,
                workload=workload,
            )
        )
        return Scope(tuple(rules), allowance, in_force)
