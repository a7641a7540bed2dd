"""Path prefixes and globs, compiled once so the hot path does `str.startswith(tuple)`.

A prefix is directory-aware: ``/tmp`` matches ``/tmp`` and ``/tmp/x`` but not ``/tmpfoo``
(the predecessors used plain string prefixes, so ``ignorePrefixes: [/tmp]`` also hid
``/tmpfs-secrets``). A pattern with ``*``, ``?`` or ``[`` is a glob in which ``*`` also
crosses ``/`` (one rule for every allow-list entry, easy to explain).

Patterns and queried paths are both normalised lexically first (`gadgetclient.pathnorm`), so
``/etc//shadow`` or ``/tmp/../etc/shadow`` match ``/etc/shadow`` whichever side spelled it so.
Rules, bindings' path parameters and exceptions all match through this class. A bare name
without any ``/`` (an exec by PATH lookup, ``curl``) is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate

from gadgetclient.pathnorm import is_normal, normalise_exec_path


def basename(path: str) -> str:
    return path.rpartition("/")[2]


class PathSet:
    """Exact paths, directory prefixes and globs; `matches` answers any of them."""

    __slots__ = ("_dirs", "_exact", "_globs")

    def __init__(self, patterns: Iterable[str], *, prefixes: bool = True) -> None:
        exact: set[str] = set()
        dirs: list[str] = []
        globs: list[str] = []
        for raw in patterns:
            pattern = normalise_exec_path(raw) + ("/" if raw.endswith("/") and raw != "/" else "")
            if any(c in pattern for c in "*?["):
                globs.append(translate(pattern))
                continue
            stripped = pattern.rstrip("/") or "/"
            exact.add(stripped)
            if prefixes or pattern.endswith("/"):
                dirs.append("/" if stripped == "/" else stripped + "/")
        self._exact = frozenset(exact)
        self._dirs = tuple(dirs)
        self._globs = re.compile("|".join(globs)) if globs else None

    def __bool__(self) -> bool:
        return bool(self._exact or self._dirs or self._globs)

    def matches(self, path: str) -> bool:
        if not is_normal(path):
            path = normalise_exec_path(path)
        if path in self._exact or (self._dirs and path.startswith(self._dirs)):
            return True
        return self._globs is not None and self._globs.match(path) is not None
