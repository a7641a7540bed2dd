"""Kubernetes label selectors (`matchLabels` + `matchExpressions`) with the API's semantics.

Used by bindings (namespaceSelector, podSelector) and exceptions. Parsing validates exactly
what the API server validates for a LabelSelector (operators In, NotIn, Exists,
DoesNotExist; values required for In/NotIn and forbidden for Exists/DoesNotExist) and reports
a problem at the offending path; matching is pure and cheap, and its results are cached per
scope by `detector.matching`, so it is never on the per-event path.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detector.loading import DocContext, Path


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op is Operator.IN:
            return labels.get(self.key) in self.values
        if op is Operator.NOT_IN:
            # Kubernetes: NotIn also matches objects that lack the key.
            return labels.get(self.key) not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An empty selector matches everything (as in a RuntimeRuleAlertBinding)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    @property
    def specificity(self) -> int:
        """Number of requirements; more specific bindings override less specific ones."""
        return len(self.match_labels) + len(self.match_expressions)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator.value, "values": sorted(r.values)}
                if r.values
                else {"key": r.key, "operator": r.operator.value}
                for r in self.match_expressions
            ]
        return out


def parse_selector(raw: Any, *, ctx: DocContext, path: Path) -> LabelSelector | None:
    """The selector, or None after reporting an error (the caller then drops the document)."""
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, dict):
        ctx.error(path, f"must be a label selector mapping, got {type(raw).__name__}")
        return None
    ok = True
    for key in raw:
        if key not in ("matchLabels", "matchExpressions"):
            ctx.error((*path, key), "unknown selector field (matchLabels, matchExpressions)")
            ok = False
    labels: list[tuple[str, str]] = []
    raw_labels = raw.get("matchLabels") or {}
    if not isinstance(raw_labels, dict):
        ctx.error((*path, "matchLabels"), "must be a mapping of label to value")
        ok = False
    else:
        for key, value in raw_labels.items():
            if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
                ctx.error((*path, "matchLabels", str(key)), "label values must be strings")
                ok = False
                continue
            labels.append((key, value if isinstance(value, str) else _scalar_text(value)))
    reqs: list[Requirement] = []
    raw_exprs = raw.get("matchExpressions") or []
    if not isinstance(raw_exprs, list):
        ctx.error((*path, "matchExpressions"), "must be a list")
        ok = False
        raw_exprs = []
    for i, expr in enumerate(raw_exprs):
        req = _parse_requirement(expr, ctx=ctx, path=(*path, "matchExpressions", i))
        if req is None:
            ok = False
        else:
            reqs.append(req)
    if not ok:
        return None
    return LabelSelector(tuple(sorted(labels)), tuple(reqs))


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_requirement(raw: Any, *, ctx: DocContext, path: Path) -> Requirement | None:
    if not isinstance(raw, dict):
        ctx.error(path, "must be a mapping with key, operator and values")
        return None
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        ctx.error((*path, "key"), "is required (a label key)")
        return None
    op_raw = raw.get("operator")
    try:
        op = Operator(str(op_raw))
    except ValueError:
        valid = ", ".join(o.value for o in Operator)
        ctx.error((*path, "operator"), f"unknown operator {op_raw!r} (valid: {valid})")
        return None
    values = raw.get("values") or []
    if not isinstance(values, list) or not all(
        isinstance(v, str | int | float | bool) for v in values
    ):
        ctx.error((*path, "values"), "must be a list of strings")
        return None
    if op in (Operator.IN, Operator.NOT_IN) and not values:
        ctx.error((*path, "values"), f"must not be empty for operator {op.value}")
        return None
    if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        ctx.error((*path, "values"), f"must be empty for operator {op.value}")
        return None
    return Requirement(key, op, frozenset(_scalar_text(v) for v in values))
