"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Strategic merge is approximated as a merge patch in which lists of objects that all carry a
merge key (`name`, or `mountPath`/`containerPort`/`ip` for the lists that use those) are merged
element by element, and `$patch: delete` removes an element; other lists are replaced. The real
server rejects strategic merge for custom resources (415), and so does the stand-in.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch the real server would reject; `code` is the HTTP status it would use."""

    def __init__(self, message: str, *, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


_MERGE_KEYS = ("name", "mountPath", "containerPort", "ip", "devicePath", "type")


def _merge_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in _MERGE_KEYS:
        if all(key in i for i in items):
            return key
    return None


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch with keyed list merging (see module docstring)."""
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key([*target, *[p for p in patch if isinstance(p, dict)]])
        if key is None:
            return copy.deepcopy(patch)
        merged = [copy.deepcopy(t) for t in target]
        for item in patch:
            idx = next((i for i, t in enumerate(merged) if t.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    merged.pop(idx)
                continue
            if idx is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[idx] = strategic_merge_patch(merged[idx], item)
        return merged
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        else:
            out[key] = strategic_merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"index {part} out of range") from exc
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise PatchError(f"doc is missing path: {part}")
    return cur


def _get(doc: Any, parts: list[str]) -> Any:
    parent = _parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, list):
        try:
            return parent[int(last)]
        except (ValueError, IndexError) as exc:
            raise PatchError(f"index {last} out of range") from exc
    if not isinstance(parent, dict) or last not in parent:
        raise PatchError(f"doc is missing key: {last}")
    return parent[last]


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise PatchError(f"index {last} out of range") from exc
    if not isinstance(parent, dict) or last not in parent:
        raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
    return parent.pop(last)


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError as exc:
                raise PatchError(f"invalid index {last}") from exc
            if idx > len(parent):
                raise PatchError(f"index {idx} out of range")
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"doc is missing path: {last}")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise PatchError(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch", code=400
        )
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}", code=400)
        kind = op["op"]
        parts = _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            if not parts:
                doc = copy.deepcopy(op.get("value"))
                continue
            _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = _remove(doc, _pointer(op["from"]))
            doc = _add(doc, parts, value)
        elif kind == "copy":
            value = copy.deepcopy(_get(doc, _pointer(op["from"])))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if (_get(doc, parts) if parts else doc) != op.get("value"):
                raise PatchError(f"testing value {op['path']} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}", code=400)
    return doc
