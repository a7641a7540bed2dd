"""Reading binding and exception documents with their source locations.

Bindings and exceptions come from YAML files (hosts, laptops, `gadgetwatch rules check`) and
from the cluster (watched resources). Both end up as `Document`s: the parsed data plus where
each value came from (file and line, or the resource's kind/namespace/name), so every problem
can be reported as precisely as a compiler would::

    bindings.yaml:14: RuntimeRuleAlertBinding "shop": spec.rules[2].ruleName: unknown rule ...

Problems are *collected*, never raised: the parsers (`detector.bindings`,
`detector.exceptions`) record them on a `DocContext` and drop only what is broken (a whole
document when its scope is broken, else one rule entry or one value), so one bad document
never disables the others.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import yaml

from gadgetclient.safeyaml import YamlLimitError, check_limits

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class Level(enum.StrEnum):
    #: Something in the document is not applied (the rest is).
    ERROR = "error"
    #: Applied, with a caveat (an unavailable rule, an unknown parameter, an ignored document).
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    level: Level
    #: File path, or "cluster".
    source: str
    line: int | None
    #: e.g. 'RuntimeRuleAlertBinding "shop"' or 'RuntimeRuleAlertBinding ns/shop'.
    document: str
    #: Dotted path inside the document, e.g. "spec.rules[2].ruleName".
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        parts = [where]
        if self.document:
            parts.append(self.document)
        if self.field:
            parts.append(self.field)
        return f"{': '.join(parts)}: {self.level.value}: {self.message}"


@dataclass(slots=True)
class Document:
    data: Any
    source: str
    #: Line (1-based) of each path's node, for files; empty for cluster objects.
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """Line of the path, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


class DocContext:
    """Collects the problems of one document, located by path."""

    def __init__(self, doc: Document, problems: list[Problem]) -> None:
        self.doc = doc
        self.problems = problems
        self.label = ""

    def _add(self, level: Level, path: Path, message: str) -> None:
        self.problems.append(
            Problem(
                level=level,
                source=self.doc.source,
                line=self.doc.line(path),
                document=self.label,
                field=format_path(path),
                message=message,
            )
        )

    def error(self, path: Path, message: str) -> None:
        self._add(Level.ERROR, path, message)

    def warning(self, path: Path, message: str) -> None:
        self._add(Level.WARNING, path, message)


def read_yaml(text: str, *, source: str, problems: list[Problem]) -> list[Document]:
    """Every YAML document of `text` (a `kind: List` is flattened into its items).

    A syntax error is reported with its line; the documents before it are kept.
    """
    docs: list[Document] = []
    try:
        check_limits(text)
    except YamlLimitError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        problems.append(Problem(Level.ERROR, source, line, "", "", f"invalid YAML: {exc.problem}"))
        return docs
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {}
            data = _convert(loader, node, (), lines)
            docs.extend(_flatten(Document(data, source, lines)))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(
            Problem(
                level=Level.ERROR,
                source=source,
                line=mark.line + 1 if mark is not None else None,
                document="",
                field="",
                message=f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
            )
        )
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def _flatten(doc: Document) -> list[Document]:
    data = doc.data
    if (
        isinstance(data, dict)
        and data.get("kind") == "List"
        and isinstance(data.get("items"), list)
    ):
        out = []
        for i, item in enumerate(data["items"]):
            prefix: Path = ("items", i)
            lines = {p[2:]: n for p, n in doc.lines.items() if p[:2] == prefix}
            out.append(Document(item, doc.source, lines))
        return out
    return [doc]


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                key = str(key)
            child = (*path, str(key))
            out[key] = _convert(loader, value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def from_object(obj: Any, *, source: str = "cluster") -> Document:
    """A document from an API object (no line numbers; the resource name locates it)."""
    return Document(obj, source)
