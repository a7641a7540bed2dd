"""`RuntimeRuleAlertBinding` (gadgetwatch.io/v1): which rules apply to which pods, with what.

Schema (a superset of the predecessors', `deploy/crds/runtimerulealertbindings.gadgetwatch.io.yaml`;
their ``kubescape.io/v1`` bindings are read as they are, `LEGACY_API_VERSION`)::

    spec:
      namespaceSelector: {matchLabels, matchExpressions}   # empty: all namespaces
      podSelector:       {matchLabels, matchExpressions}   # empty: all pods
      rules:
      - ruleName: Unexpected file access      # exactly one of ruleName / ruleID / ruleTags
        parameters: {ignorePrefixes: [/tmp]}
        severity: high                        # overrides the rule's severity (really)

Semantics, and where they differ from the predecessors:
- ruleName matches case-insensitively, including the names node-agent's CEL rules use;
  ruleTags selects every rule having any of the tags.
- A rule bound to a pod by several bindings runs *once*. Its parameters and severity are
  merged from the least to the most specific binding (specificity = number of selector
  requirements; ties by name), so a namespace-specific binding refines the cluster default
  instead of doubling every alert as the predecessors did.
- `severity` is applied (the predecessors parsed it and ignored it).
- Rules that IG cannot evaluate are reported as warnings and skipped; unknown rules, bad
  parameters and bad severities are errors located at their field; a broken selector drops
  the whole binding (a half-understood scope could bind rules far too widely).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.alerts import Severity
from detector.loading import DocContext, Document, Path
from detector.rules import Catalogue, Rule, UnavailableRule
from detector.selectors import LabelSelector, parse_selector
from profiler.documents import KUBESCAPE_GROUP

GROUP = "gadgetwatch.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RuntimeRuleAlertBinding"
PLURAL = "runtimerulealertbindings"
#: kubecop's and Kubescape's group: their bindings' schema is a subset of ours, so files in that
#: group (`--rules`) are read unchanged; the agent watches only its own group in a cluster.
LEGACY_API_VERSION = f"{KUBESCAPE_GROUP}/{VERSION}"
_REF_KEYS = ("ruleName", "ruleID", "ruleTags")


@dataclass(frozen=True, slots=True)
class RuleBinding:
    """One rule as a binding applies it."""

    rule: Rule
    #: Parameters as given (validated); defaults are applied when the plan is compiled.
    parameters: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    #: The namespace the resource lives in (informational: the scope is the selectors).
    namespace: str
    source: str
    namespace_selector: LabelSelector
    pod_selector: LabelSelector
    rules: tuple[RuleBinding, ...]

    @property
    def specificity(self) -> int:
        return self.namespace_selector.specificity + self.pod_selector.specificity

    def matches(self, namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]) -> bool:
        return self.namespace_selector.matches(namespace_labels) and self.pod_selector.matches(
            pod_labels
        )


def parse_binding(doc: Document, *, ctx: DocContext, catalogue: Catalogue) -> Binding | None:
    """The binding with every usable rule entry, or None if the binding as a whole is broken."""
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        ctx.error(("metadata", "name"), "is required")
        return None
    namespace = meta.get("namespace") or ""
    spec = data.get("spec")
    if not isinstance(spec, dict):
        ctx.error(("spec",), "is required (a mapping with rules and selectors)")
        return None
    for key in spec:
        if key not in ("namespaceSelector", "podSelector", "rules"):
            ctx.warning(("spec", key), "unknown field, ignored")
    ns_sel = parse_selector(
        spec.get("namespaceSelector"), ctx=ctx, path=("spec", "namespaceSelector")
    )
    pod_sel = parse_selector(spec.get("podSelector"), ctx=ctx, path=("spec", "podSelector"))
    if ns_sel is None or pod_sel is None:
        return None
    raw_rules = spec.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        ctx.error(("spec", "rules"), "must be a non-empty list")
        return None
    rules: list[RuleBinding] = []
    for i, entry in enumerate(raw_rules):
        rules.extend(_parse_entry(entry, ctx=ctx, path=("spec", "rules", i), catalogue=catalogue))
    return Binding(
        name=name,
        namespace=str(namespace),
        source=doc.source,
        namespace_selector=ns_sel,
        pod_selector=pod_sel,
        rules=tuple(rules),
    )


def _parse_entry(
    entry: Any, *, ctx: DocContext, path: Path, catalogue: Catalogue
) -> list[RuleBinding]:
    if not isinstance(entry, dict):
        ctx.error(path, "must be a mapping with ruleName, ruleID or ruleTags")
        return []
    given = [k for k in _REF_KEYS if entry.get(k) not in (None, "", [])]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        ctx.error(path, f"needs exactly one of ruleName, ruleID, ruleTags (got {what})")
        return []
    for key in entry:
        if key not in (*_REF_KEYS, "parameters", "severity"):
            ctx.warning((*path, key), "unknown field, ignored")
    ref_key = given[0]
    ref = entry[ref_key]
    rules = _resolve(ref_key, ref, ctx=ctx, path=(*path, ref_key), catalogue=catalogue)
    if not rules:
        return []

    severity = None
    if entry.get("severity") not in (None, ""):
        try:
            severity = Severity.parse(entry["severity"])
        except ValueError as exc:
            ctx.error((*path, "severity"), f"{exc}; the rule keeps its own severity")

    params_raw = entry.get("parameters") or {}
    if not isinstance(params_raw, dict):
        ctx.error((*path, "parameters"), "must be a mapping; parameters ignored")
        params_raw = {}
    params: dict[str, Any] = {}
    for name, value in params_raw.items():
        specs = [p for r in rules for p in r.parameters if p.name == name]
        if not specs:
            known = sorted({p.name for r in rules for p in r.parameters}) or ["none"]
            ctx.warning(
                (*path, "parameters", name),
                f"unknown parameter for {_names(rules)} (known: {', '.join(known)}), ignored",
            )
            continue
        try:
            specs[0].coerce(value)
        except ValueError as exc:
            ctx.error((*path, "parameters", name), f"{exc}; the default is used")
            continue
        params[name] = value
    return [RuleBinding(rule=r, parameters=params, severity=severity) for r in rules]


def _names(rules: list[Rule]) -> str:
    return rules[0].id if len(rules) == 1 else "the tagged rules"


def _resolve(
    ref_key: str, ref: Any, *, ctx: DocContext, path: Path, catalogue: Catalogue
) -> list[Rule]:
    if ref_key == "ruleTags":
        if not isinstance(ref, list) or not all(isinstance(t, str) for t in ref):
            ctx.error(path, "must be a list of tag strings")
            return []
        found = catalogue.by_tags(ref)
        if not found:
            ctx.warning(path, f"no rule has any of the tags {ref}")
        return found
    if not isinstance(ref, str):
        ctx.error(path, f"must be a string, got {type(ref).__name__}")
        return []
    entry = catalogue.by_id(ref) if ref_key == "ruleID" else catalogue.by_name(ref)
    if entry is None:
        other = catalogue.lookup(ref)
        hint = ""
        if other is not None:
            right = other.name if ref_key == "ruleName" else other.id
            hint = f" (did you mean {ref_key}: {right!r}?)"
        ctx.error(path, f"unknown rule {ref!r}{hint}; see `gadgetwatch rules list`")
        return []
    if isinstance(entry, UnavailableRule):
        ctx.warning(path, f"rule {entry.id} ({entry.name}) is unavailable: {entry.reason}")
        return []
    if entry in catalogue.resource_rules:
        ctx.warning(
            path,
            f"rule {entry.id} ({entry.name}) is switched on by RuntimeGuard resources, "
            "not by bindings; entry ignored",
        )
        return []
    return [entry]
