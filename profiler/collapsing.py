"""Collapsing dynamic paths and addresses, so a profile models behaviour rather than names.

Two moments:

1. **Record time** (`collapse_proc`): ``/proc/<pid>/…`` becomes ``/proc/⋯/…``. Process ids are
   never meaningful across containers or restarts, and they are the bulk of open events.
2. **Flush time** (`collapse_opens`, `collapse_ingress`): the merged profile's paths are laid out
   as a trie; a directory with more distinct children than its threshold gets one wildcard child
   ``⋯`` instead, whose subtree is the union of the children's subtrees (flags unioned). Once a
   directory is collapsed, literals that arrive later under it are folded into the wildcard. The
   threshold is per prefix (longest prefix wins, `Thresholds`). Before that, when file
   generalisation is on (`rotation` > 0), children of one directory whose names differ only in
   numbers and dates (`generalizing.file_shape`: ``access.log.1``, ``000073.sst``) become one
   pattern child (``access.log.⟨n⟩``) once `rotation` distinct names share the shape; a pattern
   child already there absorbs later literals of its shape. Ingress entries of one
   (port, protocol) with more distinct raw peer addresses than the default threshold become one
   entry with peer ``*``: a public service's clients are not behaviour.

Matching (`PathMatcher`) understands ``⋯`` as exactly one path segment of any value, and a
segment with ``⟨n⟩``/``⟨date⟩`` placeholders as any segment of that shape (the segment's own
`file_shape` equals it). Exact paths are one dict lookup; patterns are tried only on a miss,
grouped by segment count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from profiler.config import ProfilerSettings
from profiler.generalizing import Generalization, file_shape, is_file_pattern
from profiler.profiles import ANY_ADDRESS, NO_PEER, WILDCARD, Ingress, intern_set

V = TypeVar("V")


def collapse_proc(path: str) -> str:
    """``/proc/1234/status`` -> ``/proc/⋯/status``; other paths unchanged (no allocation)."""
    if path.startswith("/proc/") and len(path) > 6 and path[6].isdigit():
        end = path.find("/", 6)
        segment = path[6:end] if end != -1 else path[6:]
        if segment.isdigit():
            return "/proc/" + WILDCARD + (path[end:] if end != -1 else "")
    return path


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Collapse threshold per directory: the longest configured prefix wins."""

    default: int
    #: (prefix, threshold), longest prefix first.
    prefixes: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_settings(cls, settings: ProfilerSettings) -> Thresholds:
        pairs = sorted(
            ((p.prefix.rstrip("/") or "/", p.threshold) for p in settings.collapse_prefixes),
            key=lambda pair: len(pair[0]),
            reverse=True,
        )
        return cls(default=settings.collapse_threshold, prefixes=tuple(pairs))

    def for_directory(self, directory: str) -> int:
        for prefix, threshold in self.prefixes:
            if prefix == "/" or directory == prefix or directory.startswith(prefix + "/"):
                return threshold
        return self.default


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    #: Flags when this path itself was opened; None for a pure directory.
    flags: frozenset[str] | None = None

    def absorb(self, other: _Node) -> None:
        if other.flags is not None:
            self.flags = other.flags if self.flags is None else self.flags | other.flags
        for name, child in other.children.items():
            mine = self.children.get(name)
            if mine is None:
                self.children[name] = child
            else:
                mine.absorb(child)


def collapse_opens(
    opens: Mapping[str, frozenset[str]],
    thresholds: Thresholds,
    *,
    rotation: int = 0,
    counts: Counter[str] | None = None,
) -> dict[str, frozenset[str]]:
    """Return the collapsed path -> flags mapping (the input is not modified).

    `rotation`: distinct names of one numbered/dated shape that make a directory's pattern
    (0: file generalisation off); `counts["files"]` grows by the literals folded into one.
    Relative paths (IG without ``--paths`` reports them as passed) are kept literally.
    """
    root = _Node()
    result: dict[str, frozenset[str]] = {}
    for path, flags in opens.items():
        if not path.startswith("/"):
            result[path] = flags
            continue
        node = root
        for segment in path[1:].split("/"):
            node = node.children.setdefault(segment, _Node())
        node.flags = flags if node.flags is None else node.flags | flags
    folded = [0]
    _collapse(root, "", thresholds, rotation, folded)
    _flatten(root, "", result)
    if counts is not None and folded[0]:
        counts[Generalization.FILES.value] += folded[0]
    return result


def _rotate(node: _Node, rotation: int) -> int:
    """Fold children of one numbered/dated shape into their pattern child; returns how many."""
    groups: dict[str, list[str]] = {}
    for name in node.children:
        shape = file_shape(name)
        if shape != name:
            groups.setdefault(shape, []).append(name)
    folded = 0
    for shape, names in groups.items():
        pattern = node.children.get(shape)
        if pattern is None and len(names) < rotation:
            continue
        if pattern is None:
            pattern = node.children[shape] = _Node()
        for name in names:
            pattern.absorb(node.children.pop(name))
        folded += len(names)
    return folded


def _collapse(
    node: _Node, directory: str, thresholds: Thresholds, rotation: int, folded: list[int]
) -> None:
    children = node.children
    # A directory with more distinct children than its threshold is dynamic whatever their
    # shapes: it becomes `*`. Counted before rotation folds numbered names into patterns, or a
    # directory of random session files, some of them digits only, would shrink below the
    # threshold and keep alerting on every new name.
    dynamic = WILDCARD in children or len(children) > thresholds.for_directory(directory or "/")
    if rotation and len(children) > 1 and not dynamic:
        folded[0] += _rotate(node, rotation)
        children = node.children
    if dynamic:
        merged = children.pop(WILDCARD, None) or _Node()
        for child in children.values():
            merged.absorb(child)
        node.children = {WILDCARD: merged}
    for name, child in node.children.items():
        _collapse(child, f"{directory}/{name}", thresholds, rotation, folded)


def _flatten(node: _Node, prefix: str, out: dict[str, frozenset[str]]) -> None:
    if node.flags is not None:
        out[prefix or "/"] = intern_set(node.flags)
    for name, child in node.children.items():
        _flatten(child, f"{prefix}/{name}", out)


def collapse_ingress(ingress: Iterable[Ingress], threshold: int) -> set[Ingress]:
    """Fold raw peer addresses of one (port, protocol) into ``*`` past `threshold`."""
    raw: dict[tuple[int, str], set[str]] = {}
    kept: set[Ingress] = set()
    for entry in ingress:
        port, proto, address, peer = entry
        if peer.kind in ("pod", "svc"):
            kept.add(entry)
        else:
            raw.setdefault((port, proto), set()).add(address)
    for (port, proto), addresses in raw.items():
        if ANY_ADDRESS in addresses or len(addresses) > threshold:
            kept.add((port, proto, ANY_ADDRESS, NO_PEER))
        else:
            kept.update((port, proto, address, NO_PEER) for address in addresses)
    return kept


def has_wildcard(path: str) -> bool:
    return WILDCARD in path


def is_pattern(path: str) -> bool:
    """The key holds a ``⋯`` segment or a numbered/dated file pattern."""
    return WILDCARD in path or "⟨" in path


def _segment_matches(pattern: str, segment: str) -> bool:
    if pattern in (WILDCARD, segment):
        return True
    return is_file_pattern(pattern) and file_shape(segment) == pattern


def segments_match(pattern: tuple[str, ...], segments: list[str]) -> bool:
    if len(pattern) != len(segments):
        return False
    return all(_segment_matches(p, s) for p, s in zip(pattern, segments, strict=True))


class PathMatcher(Generic[V]):
    """Wildcard-aware lookup of a path -> value mapping (flags, argument sets, …).

    `lookup` returns every value whose key matches: the exact key first, then the patterns with
    the same number of segments. Built once per profile version; read-only afterwards.
    """

    __slots__ = ("_exact", "_patterns")

    def __init__(self, mapping: Mapping[str, frozenset[V]]) -> None:
        self._exact = dict(mapping)
        self._patterns: dict[int, list[tuple[tuple[str, ...], frozenset[V], str]]] = {}
        for key, value in mapping.items():
            if is_pattern(key):
                parts = tuple(key.split("/"))
                self._patterns.setdefault(len(parts), []).append((parts, value, key))

    def exact(self, path: str) -> frozenset[V] | None:
        return self._exact.get(path)

    def has_patterns(self) -> bool:
        return bool(self._patterns)

    def matching(self, path: str) -> list[frozenset[V]]:
        found: list[frozenset[V]] = []
        value = self._exact.get(path)
        if value is not None:
            found.append(value)
        if self._patterns:
            parts = path.split("/")
            for pattern, pattern_value, _ in self._patterns.get(len(parts), ()):
                if pattern != tuple(parts) and segments_match(pattern, parts):
                    found.append(pattern_value)
        return found

    def matching_keys(self, path: str) -> list[str]:
        """The keys `matching` takes its values from (the exact key first)."""
        found = [path] if path in self._exact else []
        if self._patterns:
            parts = path.split("/")
            for pattern, _, key in self._patterns.get(len(parts), ()):
                if pattern != tuple(parts) and segments_match(pattern, parts):
                    found.append(key)
        return found

    def covers(self, path: str, wanted: Collection[V]) -> bool:
        """True when the path matches and the union of matching values includes `wanted`."""
        value = self._exact.get(path)
        if value is not None and value.issuperset(wanted):
            return True
        matches = self.matching(path)
        if not matches:
            return False
        union: frozenset[V] = frozenset().union(*matches)
        return union.issuperset(wanted)
