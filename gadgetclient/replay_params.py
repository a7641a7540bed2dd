"""How IG's gadgets apply the params that change what they send, for the replay server.

The replay server stands in for `ig daemon`, so a client's params must change a replayed stream
the way they change a live one; otherwise a client that forgets `paths=true` would pass every
test and learn `argv[0]` in production. The server knows each gadget's IG defaults
(`IG_DEFAULTS`, from the gadgets' `gadget.yaml`) and, for the params that shape payloads:

* `paths` (trace_exec, trace_open, trace_dns) false: the path fields IG fills only with the
  flag are emptied (they stay in the layout, as IG's struct keeps them);
* `ignore-failed` (trace_exec) true: failed execs (non-empty `error`) are not sent;
* `failed` (trace_open) true: only failed opens are sent;
* `connect-only` / `accept-only` / `failure-only` (trace_tcp): only connects, only accepts, only
  failed connections;
* `collect-kstack` (trace_capabilities) false: `kstack` is emptied; `unique` true: only the first
  event of each (container, capability); `audit-only` true: only audited checks.

A capture can only lose information, never regain it: a capture recorded with `paths=false`
cannot be replayed with paths. The capture header records the params each gadget ran with
(`gadgetwatch record`); a capture without them (an `ig -o json` file, an older capture) is taken
as recorded with everything on (paths, failed events, kernel stacks, no uniqueness). When a
client asks for something the recording cannot give, the server says so once per gadget
(`replay params differ from the recording`) and serves what it has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_EBPF = "operator.oci.ebpf."

#: IG's own defaults of the payload-shaping params, per gadget (gadgets/<name>/gadget.yaml).
IG_DEFAULTS: dict[str, dict[str, str]] = {
    "trace_exec": {"paths": "false", "ignore-failed": "true"},
    "trace_open": {"paths": "false", "failed": "false"},
    "trace_dns": {"paths": "false"},
    "trace_tcp": {"connect-only": "false", "accept-only": "false", "failure-only": "false"},
    "trace_capabilities": {"collect-kstack": "true", "unique": "false", "audit-only": "false"},
}

#: What a capture without recorded params is taken to contain: everything the gadget can send.
FULL_RECORDING: dict[str, dict[str, str]] = {
    "trace_exec": {"paths": "true", "ignore-failed": "false"},
    "trace_open": {"paths": "true", "failed": "false"},
    "trace_dns": {"paths": "true"},
    "trace_tcp": {"connect-only": "false", "accept-only": "false", "failure-only": "false"},
    "trace_capabilities": {"collect-kstack": "true", "unique": "false", "audit-only": "false"},
}

#: Fields IG fills only with `paths=true`, per gadget.
PATH_FIELDS: dict[str, tuple[str, ...]] = {
    "trace_exec": ("cwd", "exepath", "parent_exepath", "file"),
    "trace_open": ("fpath",),
    "trace_dns": ("cwd", "exepath"),
}


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def effective(gadget: str, param_values: Mapping[str, str]) -> dict[str, str]:
    """The payload-shaping params a run of `gadget` gets: IG's defaults under the client's
    values (`operator.oci.ebpf.<key>`), normalised to "true"/"false"."""
    out = dict(IG_DEFAULTS.get(gadget, {}))
    for key in out:
        given = param_values.get(_EBPF + key)
        if given is not None:
            out[key] = "true" if _true(given) else "false"
    return out


def recorded(gadget: str, header: Mapping[str, Any]) -> dict[str, str]:
    """What the capture's gadget was recorded with (see the module docstring)."""
    out = dict(FULL_RECORDING.get(gadget, {}))
    params = header.get("params")
    per_gadget = params.get(gadget) if isinstance(params, dict) else None
    if isinstance(per_gadget, dict):
        ig = IG_DEFAULTS.get(gadget, {})
        for key in out:
            given = per_gadget.get(_EBPF + key)
            value = ig.get(key, out[key]) if given is None else str(given)
            out[key] = "true" if _true(value) else "false"
    return out


def unavailable(gadget: str, wanted: Mapping[str, str], have: Mapping[str, str]) -> list[str]:
    """Params whose wanted value the recording cannot provide (it would need data it lacks)."""
    # For each param, the value that *keeps more* data; asking for it when the recording used
    # the other value cannot be served.
    richer = {
        "paths": "true",
        "ignore-failed": "false",
        "failed": "false",
        "connect-only": "false",
        "accept-only": "false",
        "failure-only": "false",
        "collect-kstack": "true",
        "unique": "false",
        "audit-only": "false",
    }
    return sorted(
        k for k, v in wanted.items() if v != have.get(k, v) and v == richer.get(k) and k in have
    )


@dataclass(frozen=True, slots=True)
class Shaping:
    """The transformation of one gadget's records for one set of effective params."""

    gadget: str
    #: The transform per record: the record to send (maybe changed), or None to drop it.
    apply: Callable[[Any], Any]
    #: Whether it changes anything at all (identity shapings reuse the pre-encoded packets).
    identity: bool


def shaping(gadget: str, want: Mapping[str, str], have: Mapping[str, str]) -> Shaping:
    """How to turn records recorded with `have` into what a run asking for `want` gets."""
    changes = {k: v for k, v in want.items() if have.get(k) != v}
    blank: tuple[str, ...] = ()
    if changes.get("paths") == "false":
        blank = PATH_FIELDS.get(gadget, ())
    keep: list[Callable[[dict[str, Any]], bool]] = []
    if changes.get("ignore-failed") == "true":
        keep.append(lambda r: not r.get("error"))
    if changes.get("failed") == "true" or changes.get("failure-only") == "true":
        keep.append(lambda r: bool(r.get("error")))
    if changes.get("connect-only") == "true":
        keep.append(lambda r: r.get("type") == "connect")
    if changes.get("accept-only") == "true":
        keep.append(lambda r: r.get("type") == "accept")
    if changes.get("audit-only") == "true":
        keep.append(lambda r: bool(r.get("audit")))
    blank_kstack = changes.get("collect-kstack") == "false"
    unique = changes.get("unique") == "true"
    seen: set[tuple[Any, Any]] = set()

    def apply(record: Any) -> Any:
        if not isinstance(record, dict):
            return record
        if not all(k(record) for k in keep):
            return None
        if unique:
            key = (_container_key(record), record.get("cap", record.get("cap_raw")))
            if key in seen:
                return None
            seen.add(key)
        names = blank + (("kstack",) if blank_kstack else ())
        if not any(record.get(name) for name in names):
            return record  # nothing to empty: the very same object (see `ReplayServer`)
        out = dict(record)
        for name in names:
            if name in out:
                out[name] = ""
        return out

    identity = not (blank or keep or blank_kstack or unique)
    return Shaping(gadget=gadget, apply=apply, identity=identity)


def _container_key(record: Mapping[str, Any]) -> Any:
    """IG's `unique` keys by the container (its mount namespace)."""
    proc = record.get("proc")
    if isinstance(proc, dict) and proc.get("mntns_id"):
        return proc["mntns_id"]
    runtime = record.get("runtime")
    if isinstance(runtime, dict):
        return runtime.get("containerId")
    return record.get("mntns_id")


__all__ = ["FULL_RECORDING", "IG_DEFAULTS", "Shaping", "effective", "recorded", "shaping"]
