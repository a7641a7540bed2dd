"""`RuleSet`: the bindings and exceptions in force, and how they are loaded.

A rule set is immutable. Sources (files, the cluster watcher) build a new one and hand it to
`Detector.update_rules(source, ruleset)`; the detector unions the sources and recompiles its
per-container plans. Loading never raises for bad content: it returns the usable documents
plus the `Problem`s found, each located (file:line or resource name, then the field path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from detector import bindings, exceptions, guards
from detector.bindings import Binding, RuleBinding
from detector.config import DetectorSettings
from detector.errors import RuleSourceError
from detector.exceptions import RuntimeAlertException
from detector.guards import RuntimeGuard
from detector.loading import DocContext, Document, Level, Problem, read_yaml
from detector.rules import Catalogue
from detector.selectors import LabelSelector

#: Name of the built-in default binding (also shipped as deploy/bindings/all-rules-all-pods.yaml).
DEFAULT_BINDING_NAME = "all-rules-all-pods"

#: R0002 parameters of the default binding: files every process touches (procfs, the
#: service-account token, which R0006 watches) or that are scratch space (/tmp).
DEFAULT_R0002_PARAMETERS: dict[str, Any] = {
    "ignoreMounts": True,
    "ignorePrefixes": [
        "/proc",
        "/run/secrets/kubernetes.io/serviceaccount",
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "/tmp",
    ],
}


@dataclass(frozen=True, slots=True)
class RuleSet:
    bindings: tuple[Binding, ...] = ()
    exceptions: tuple[RuntimeAlertException, ...] = ()
    problems: tuple[Problem, ...] = ()
    guards: tuple[RuntimeGuard, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.level is Level.ERROR)

    @staticmethod
    def union(parts: Iterable[RuleSet]) -> RuleSet:
        parts = list(parts)
        return RuleSet(
            bindings=tuple(b for p in parts for b in p.bindings),
            exceptions=tuple(e for p in parts for e in p.exceptions),
            problems=tuple(x for p in parts for x in p.problems),
            guards=tuple(g for p in parts for g in p.guards),
        )


def describe(doc: Document) -> str:
    data = doc.data
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    kind = data.get("kind") if isinstance(data, dict) else None
    who = f"{ns}/{name}" if ns and name else str(name) if name else "(unnamed)"
    return f"{kind or 'document'} {who}"


def parse_documents(docs: Sequence[Document], *, catalogue: Catalogue) -> RuleSet:
    """Bindings, exceptions and guards from documents; others are reported and skipped."""
    problems: list[Problem] = []
    found_bindings: list[Binding] = []
    found_exceptions: list[RuntimeAlertException] = []
    found_guards: list[RuntimeGuard] = []
    for doc in docs:
        ctx = DocContext(doc, problems)
        ctx.label = describe(doc)
        data = doc.data
        if data is None:
            continue
        if not isinstance(data, dict):
            ctx.error((), "a document must be a mapping (a Kubernetes object)")
            continue
        kind = data.get("kind")
        api = data.get("apiVersion")
        if kind == bindings.KIND:
            if api not in (bindings.API_VERSION, bindings.LEGACY_API_VERSION):
                ctx.warning(("apiVersion",), f"expected {bindings.API_VERSION}, got {api!r}")
            binding = bindings.parse_binding(doc, ctx=ctx, catalogue=catalogue)
            if binding is not None:
                found_bindings.append(binding)
        elif kind == exceptions.KIND:
            if api != exceptions.API_VERSION:
                ctx.warning(("apiVersion",), f"expected {exceptions.API_VERSION}, got {api!r}")
            exc = exceptions.parse_exception(doc, ctx=ctx, catalogue=catalogue)
            if exc is not None:
                found_exceptions.append(exc)
        elif kind == guards.KIND:
            if api != guards.API_VERSION:
                ctx.warning(("apiVersion",), f"expected {guards.API_VERSION}, got {api!r}")
            guard = guards.parse_guard(doc, ctx=ctx)
            if guard is not None:
                found_guards.append(guard)
        else:
            ctx.warning(
                ("kind",),
                f"ignored: not a {bindings.KIND}, {exceptions.KIND} or {guards.KIND} "
                f"(kind {kind!r})",
            )
    return RuleSet(
        tuple(found_bindings), tuple(found_exceptions), tuple(problems), tuple(found_guards)
    )


def load_text(text: str, *, source: str, catalogue: Catalogue) -> RuleSet:
    problems: list[Problem] = []
    docs = read_yaml(text, source=source, problems=problems)
    parsed = parse_documents(docs, catalogue=catalogue)
    return RuleSet(parsed.bindings, parsed.exceptions, (*problems, *parsed.problems), parsed.guards)


def load_files(paths: Iterable[FilePath], *, catalogue: Catalogue) -> RuleSet:
    """Every file (a directory: its *.yaml / *.yml files, sorted).

    Raises `RuleSourceError` only when a file cannot be read at all.
    """
    parts = []
    for path in paths:
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RuleSourceError(f"cannot read: {exc}", source=str(file)) from exc
            parts.append(load_text(text, source=str(file), catalogue=catalogue))
    return RuleSet.union(parts)


def configured_files(settings: DetectorSettings) -> list[FilePath]:
    """The bindings, exceptions and guards files named in the settings (each may be a
    directory)."""
    files = (settings.bindings_file, settings.exceptions_file, settings.guards_file)
    return [p for p in files if p is not None]


def default_binding(catalogue: Catalogue) -> Binding:
    """Every available rule for every pod, R0002 with the predecessors' noise filters."""
    entries = tuple(
        RuleBinding(rule=r, parameters=DEFAULT_R0002_PARAMETERS if r.id == "R0002" else {})
        for r in catalogue.rules
    )
    return Binding(
        name=DEFAULT_BINDING_NAME,
        namespace="",
        source="built-in",
        namespace_selector=LabelSelector(),
        pod_selector=LabelSelector(),
        rules=entries,
    )


def default_binding_document(catalogue: Catalogue) -> dict[str, Any]:
    """The default binding as a resource (what deploy/bindings/all-rules-all-pods.yaml holds)."""
    rules: list[dict[str, Any]] = []
    for r in catalogue.rules:
        entry: dict[str, Any] = {"ruleName": r.name}
        if r.id == "R0002":
            entry["parameters"] = DEFAULT_R0002_PARAMETERS
        rules.append(entry)
    return {
        "apiVersion": bindings.API_VERSION,
        "kind": bindings.KIND,
        "metadata": {"name": DEFAULT_BINDING_NAME},
        "spec": {"namespaceSelector": {}, "podSelector": {}, "rules": rules},
    }
