"""`RuleSet`: the bindings and exceptions in force, and how they are loaded.

A rule set is immutable. Sources (files, the cluster watcher) build a new one and hand it to
`Detector.update_rules(source, ruleset)`; the detector unions the sources and recompiles its
per-container plans. Loading never raises for bad content: it returns the usable documents
plus the `Problem`s found, each located (file:line or resource name, then the field path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path as FilePath
from typing import Any

from detector import bindings, custom_rules, exceptions, guards, kubescape_rules
from detector.bindings import Binding, RuleBinding
from detector.config import DetectorSettings
from detector.errors import RuleSourceError
from detector.exceptions import RuntimeAlertException
from detector.guards import RuntimeGuard
from detector.loading import DocContext, Document, Level, Problem, read_yaml
from detector.rules import Catalogue, Rule, default_catalogue
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
    #: `RuntimeRule`s (CEL) compiled from this source.
    rules: tuple[Rule, ...] = ()

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
            rules=tuple(r for p in parts for r in p.rules),
        )


def describe(doc: Document) -> str:
    data = doc.data
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    kind = data.get("kind") if isinstance(data, dict) else None
    who = f"{ns}/{name}" if ns and name else str(name) if name else "(unnamed)"
    return f"{kind or 'document'} {who}"


def parse_rules(
    docs: Sequence[Document], *, catalogue: Catalogue, problems: list[Problem]
) -> tuple[Rule, ...]:
    """The `RuntimeRule`s of the documents, compiled; each id and name must be new to the
    catalogue and to the rules before it."""
    found: list[Rule] = []
    for doc in docs:
        data = doc.data
        if kubescape_rules.is_rules_document(data):
            found.extend(
                _kubescape_rules(doc, catalogue=catalogue.extended(found), problems=problems)
            )
            continue
        if not isinstance(data, dict) or data.get("kind") != custom_rules.KIND:
            continue
        ctx = DocContext(doc, problems)
        ctx.label = describe(doc)
        if data.get("apiVersion") != custom_rules.API_VERSION:
            ctx.warning(
                ("apiVersion",),
                f"expected {custom_rules.API_VERSION}, got {data.get('apiVersion')!r}",
            )
        rule = custom_rules.parse_rule(doc, ctx=ctx, catalogue=catalogue.extended(found))
        if rule is not None:
            found.append(rule)
    return tuple(found)


def _kubescape_rules(doc: Document, *, catalogue: Catalogue, problems: list[Problem]) -> list[Rule]:
    """A Kubescape `Rules` document: its convertible rules compiled, the others warned about
    (with the reason, as bindings naming unavailable built-ins are)."""
    ctx = DocContext(doc, problems)
    ctx.label = describe(doc)
    converted, skipped = kubescape_rules.convert(doc.data)
    for item in skipped:
        ctx.warning(("spec", "rules"), f"rule {item.id} ({item.name}) not imported: {item.reason}")
    found: list[Rule] = []
    entries = doc.data["spec"]["rules"] if converted else []
    for resource in converted:
        original = resource["spec"]["id"].removeprefix("KS-")
        index = next(
            (
                i
                for i, e in enumerate(entries)
                if isinstance(e, dict) and str(e.get("id")) == original
            ),
            0,
        )
        prefix = ("spec", "rules", index)
        lines = {(): doc.line(prefix) or 0}
        sub = Document(resource, doc.source, {k: v for k, v in lines.items() if v})
        sub_ctx = DocContext(sub, problems)
        sub_ctx.label = f"{describe(doc)} rule {original}"
        rule = custom_rules.parse_rule(sub, ctx=sub_ctx, catalogue=catalogue.extended(found))
        if rule is not None:
            found.append(rule)
    return found


def parse_documents(docs: Sequence[Document], *, catalogue: Catalogue) -> RuleSet:
    """Rules, bindings, exceptions and guards from documents; others are reported and skipped.

    `RuntimeRule`s are compiled first, so bindings and exceptions of the same documents can
    name them."""
    problems: list[Problem] = []
    found_rules = parse_rules(docs, catalogue=catalogue, problems=problems)
    catalogue = catalogue.extended(found_rules)
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
        elif kind == custom_rules.KIND or kubescape_rules.is_rules_document(data):
            continue  # compiled above
        else:
            ctx.warning(
                ("kind",),
                f"ignored: not a {custom_rules.KIND}, {bindings.KIND}, {exceptions.KIND} or "
                f"{guards.KIND} (kind {kind!r})",
            )
    return RuleSet(
        tuple(found_bindings),
        tuple(found_exceptions),
        tuple(problems),
        tuple(found_guards),
        found_rules,
    )


def load_text(text: str, *, source: str, catalogue: Catalogue) -> RuleSet:
    problems: list[Problem] = []
    docs = read_yaml(text, source=source, problems=problems)
    return _parse_read(docs, problems, catalogue=catalogue)


def load_files(paths: Iterable[FilePath], *, catalogue: Catalogue) -> RuleSet:
    """Every file (a directory: its *.yaml / *.yml files, sorted), parsed as one set of
    documents, so a binding in one file can name a `RuntimeRule` of another.

    Raises `RuleSourceError` only when a file cannot be read at all.
    """
    problems: list[Problem] = []
    docs: list[Document] = []
    for path in paths:
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RuleSourceError(f"cannot read: {exc}", source=str(file)) from exc
            docs.extend(read_yaml(text, source=str(file), problems=problems))
    return _parse_read(docs, problems, catalogue=catalogue)


def _parse_read(
    docs: Sequence[Document], read_problems: Sequence[Problem], *, catalogue: Catalogue
) -> RuleSet:
    """Documents parsed, with the problems of reading them (YAML errors) listed first."""
    parsed = parse_documents(docs, catalogue=catalogue)
    return replace(parsed, problems=(*read_problems, *parsed.problems))


def cel_catalogue(directory: FilePath) -> Catalogue:
    """The `RuntimeRule` files of `directory` as the base catalogue, replacing the Python
    rules (guards' R3000 and the list of unavailable rules stay).

    Raises `RuleSourceError` when a file cannot be read or any rule has an error: a
    catalogue that silently lost rules would be a hole in detection.
    """
    builtin = default_catalogue()
    empty = Catalogue((), builtin.unavailable, builtin.resource_rules)
    loaded = load_files([directory], catalogue=empty)
    if loaded.errors or not loaded.rules:
        first = "; ".join(str(p) for p in loaded.errors[:3]) or "it holds no RuntimeRule"
        raise RuleSourceError(f"rule catalogue unusable: {first}", source=str(directory))
    return empty.extended(loaded.rules)


def base_catalogue(settings: DetectorSettings) -> Catalogue:
    """The catalogue the settings ask for: the built-in Python rules, or a CEL directory."""
    if settings.rule_catalogue_dir is None:
        return default_catalogue()
    return cel_catalogue(settings.rule_catalogue_dir)


def configured_files(settings: DetectorSettings) -> list[FilePath]:
    """The rules, bindings, exceptions and guards files named in the settings (each may be a
    directory)."""
    files = (
        settings.rules_file,
        settings.bindings_file,
        settings.exceptions_file,
        settings.guards_file,
    )
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
