"""Lexical path normalisation: one spelling per file, before any rule, exception or profile.

IG reports the resolved path (``fpath``) only with ``--paths``; otherwise an open event carries
the name exactly as the process passed it (``fname``): ``./etc/shadow``, ``/etc//shadow``,
``/etc/./shadow`` and ``/tmp/../etc/shadow`` all name ``/etc/shadow``. Comparing raw strings
would let any of these spellings slip past a sensitive-file rule, and would make a profile
learned from one spelling miss another. So every path is normalised here, lexically (no file
system access: the agent does not share the container's mount namespace):

- a relative path is joined to the process's working directory when it is known, else to
  ``/`` (a relative spelling of a sensitive file is then never missed; the cost is that a
  relative open of a same-named file in another directory is compared as if it were at the
  root, which only matters when IG runs without ``--paths`` and without the cwd);
- empty and ``.`` components are dropped, ``..`` removes the previous component (``..`` at the
  root stays at the root, as the kernel does);
- a trailing slash is dropped (except for ``/`` itself).

Symbolic links are not resolved (that needs the container's file system); the predecessors did
not resolve them either. `normalise_path` is called on the hot path, so the common case (an
already-normal absolute path) costs a handful of substring checks.
"""

from __future__ import annotations


def is_normal(path: str) -> bool:
    """True when `path` is certainly in normal form (fast check, no allocation).

    Conservative: a path with a component starting with ``.`` (``/.dockerenv``, kubelet's
    ``..2024_…`` directories) answers False and takes the slower exact path, which returns it
    unchanged; three substring checks keep the common case cheap on the per-event path.
    """
    return (
        path[:1] == "/"
        and "/." not in path
        and "//" not in path
        and (path[-1:] != "/" or path == "/")
    )


def normalise_path(path: str, cwd: str = "") -> str:
    """The lexically normal absolute form of `path`; relative paths are joined to `cwd`.

    An empty path stays empty (IG said nothing; there is nothing to match).
    """
    if not path or is_normal(path):
        return path
    if not path.startswith("/"):
        base = cwd if cwd.startswith("/") else "/"
        path = base + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def normalise_exec_path(path: str, cwd: str = "") -> str:
    """Like `normalise_path`, but a bare name (no ``/``) is a PATH lookup and stays as it is."""
    if "/" not in path:
        return path
    return normalise_path(path, cwd)
