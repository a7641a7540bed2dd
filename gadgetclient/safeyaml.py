"""The one YAML reader of the product: size, depth and alias limits before anything is built.

Every YAML the agent or the CLI reads (configuration, bindings, exceptions, profiles, profile
imports) comes from a person or another tool, so it can be hostile or simply broken. PyYAML's
safe loaders build no arbitrary objects, but they still expand aliases without bound (a
500-byte "billion laughs" file becomes gigabytes once a reader walks it), and the composer
recurses once per nesting level (a few thousand `[` end in `RecursionError`, not a YAML error).

`check_limits` therefore runs the parser's *event* stream (a state machine with its own stack,
no recursion, no objects built) and counts, per document: nesting depth, alias uses, and the
nodes each alias would add when expanded (the size of the anchored subtree). Only text within
every limit reaches a composer. The readers keep their own loaders (the rule loader records
line numbers, the profile store uses libyaml's fast constructor); they call `check_limits`
first, or use `load_one` / `load_all` here.

It lives in the lowest package so every package can share it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

#: libyaml's C parser and constructor when PyYAML was built with them (10-20x faster than the
#: pure-Python ones); the same safe subset of YAML either way.
_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """Bounds on one YAML text. The defaults fit every legitimate input by a wide margin."""

    #: 16 MiB: ten times the API server's 1.5 MiB object limit, so any profile a cluster can
    #: store (and any import of a few of them) fits; a configuration is a few kilobytes.
    max_bytes: int = 16 * 1024 * 1024
    #: 64 levels: the deepest legitimate document (a profile) nests about 8 levels.
    max_depth: int = 64
    #: 1000 alias uses per document: hand-written files use a handful, generated ones none.
    max_aliases: int = 1000
    #: 100 000 nodes added by expanding aliases: a bomb needs millions, real reuse a few hundred.
    max_alias_nodes: int = 100_000


DEFAULT_LIMITS = YamlLimits()


class YamlLimitError(yaml.YAMLError):
    """The text exceeds a limit. A `YAMLError`, so every reader reports it as invalid YAML."""

    def __init__(self, problem: str, *, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = None if line is None else yaml.Mark("", 0, line - 1, 0, None, 0)

    def __str__(self) -> str:
        return self.problem


def check_limits(text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> None:
    """Raise `YamlLimitError` when `text` is too large, too deep or expands too far.

    A syntax error is *not* raised here: the caller's loader reports it with its own context
    (and may keep the documents before it).
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > limits.max_bytes:
        raise YamlLimitError(f"{size} bytes, more than the limit of {limits.max_bytes}")
    try:
        loader = _Parser(text)
    except yaml.YAMLError:
        return  # unreadable text (a NUL byte, ...): the caller's loader reports it in context
    #: One frame per open collection: [nodes so far, anchor or None].
    stack: list[list[Any]] = []
    anchors: dict[str, int] = {}
    aliases = alias_nodes = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.anchor is not None:
                    anchors[event.anchor] = 1
                if stack:
                    stack[-1][0] += 1
            elif kind is yaml.DocumentStartEvent:
                stack.clear()
                anchors.clear()
                aliases = alias_nodes = 0
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                stack.append([1, event.anchor])
                if len(stack) > limits.max_depth:
                    raise YamlLimitError(
                        f"nested deeper than the limit of {limits.max_depth}", line=_line(event)
                    )
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                nodes, anchor = stack.pop()
                if anchor is not None:
                    anchors[anchor] = nodes
                if stack:
                    stack[-1][0] += nodes
            elif kind is yaml.AliasEvent:
                line = _line(event)
                if any(frame[1] == event.anchor for frame in stack):
                    raise YamlLimitError(f"alias *{event.anchor} refers to itself", line=line)
                aliases += 1
                added = anchors.get(event.anchor, 1)
                alias_nodes += added
                if aliases > limits.max_aliases:
                    raise YamlLimitError(
                        f"more than {limits.max_aliases} aliases in one document", line=line
                    )
                if alias_nodes > limits.max_alias_nodes:
                    raise YamlLimitError(
                        f"aliases expand to more than {limits.max_alias_nodes} nodes", line=line
                    )
                if stack:
                    stack[-1][0] += added
    except YamlLimitError:
        raise
    except yaml.YAMLError as exc:
        # libyaml's scanner stops at 1000 flow levels before emitting a single event; the
        # pure-Python composer would recurse that deep, so this is a limit, not syntax.
        if "nesting depth" in str(exc):
            raise YamlLimitError(
                f"nested deeper than the limit of {limits.max_depth}", line=None
            ) from exc
        return  # a syntax error: the caller's loader reports it in context
    finally:
        loader.dispose()


def _line(event: Any) -> int | None:
    mark = event.start_mark
    return None if mark is None else int(mark.line) + 1


def load_one(text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """The single document of `text` (None when empty), within `limits`."""
    check_limits(text, limits)
    return yaml.load(text, Loader=_Parser)


def load_all(text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> list[Any]:
    """Every document of `text`, within `limits`."""
    check_limits(text, limits)
    return list(yaml.load_all(text, Loader=_Parser))
