"""Label and field selectors with the API server's syntax and errors.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a`
(does not exist), comma-separated (AND). Field selectors: `path=value`, `path==value`,
`path!=value`, only for the fields the real server indexes for that resource; any other field is
a 400 BadRequest `field label not supported: <field>`, exactly like a cluster, so code that
would fail there fails here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class SelectorError(ValueError):
    """A selector the real server would reject (400 BadRequest)."""


#: Field selectors each resource supports (metadata.name/namespace are supported everywhere).
FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "namespaces": ("status.phase",),
    "jobs": ("status.successful",),
    "replicasets": ("status.replicas",),
}

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")

Predicate = Callable[[Mapping[str, str]], bool]


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _label_term(term: str) -> Predicate:
    cmp = _CMP_RE.match(term)
    if cmp:
        key, op, val = cmp.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != val
        return lambda labels: labels.get(key) == val
    match = _SET_RE.match(term)
    if not match:
        raise SelectorError(f"unable to parse requirement: {term!r}")
    neg, key, op, values = match.groups()
    if op is None:
        if neg:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    if neg:
        raise SelectorError(f"unable to parse requirement: {term!r}")
    allowed = {v.strip() for v in values.split(",") if v.strip()}
    if op == "in":
        return lambda labels: labels.get(key) in allowed
    return lambda labels: labels.get(key) not in allowed


def parse_label_selector(text: str | None) -> Predicate:
    """Compile a label selector into a predicate over a label map."""
    if not text:
        return lambda _labels: True
    terms = [_label_term(t) for t in _split_top(text)]
    return lambda labels: all(t(labels) for t in terms)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, *, resource: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector for `resource`; unsupported fields raise SelectorError."""
    if not text:
        return lambda _obj: True
    supported = ("metadata.name", "metadata.namespace", *FIELD_SELECTORS.get(resource, ()))
    checks: list[tuple[str, bool, str]] = []
    for term in _split_top(text):
        cmp = _CMP_RE.match(term)
        if not cmp:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        path, op, val = cmp.groups()
        if path not in supported:
            raise SelectorError(f'field label not supported: "{path}"')
        checks.append((path, op == "!=", val))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, path) == val) != negate for path, negate, val in checks)

    return predicate
