"""The parameters gadgetwatch sends to each gadget on purpose, and what is lost without them.

IG's gadgets ship defaults chosen for a person at a terminal, not for a profiler: `trace_exec`,
`trace_open` and `trace_dns` leave their path fields (`exepath`, `cwd`, `fpath`, ...) empty unless
`paths` is set, and `trace_capabilities` collects a kernel stack for every event by default. A
client that sends no params gets those defaults, so profiles would learn `nginx` or `./x` instead
of `/usr/sbin/nginx` and `/dev/shm/x`, and every exe-based rule could be dodged with a relative
path. `DEFAULT_PARAMS` is the one table of what gadgetwatch asks for and why
(`docs/gadgetclient.md` renders the same reasons).

Planning (`plan_params`), per gadget and per server:

* the table's values for that gadget, overridden by the user's params (user params are fully
  qualified keys, as on `ig run`'s command line); a user key no gadget declares is an error
  elsewhere (`sessions.check_params`);
* when the server reports the gadget's params (GetGadgetInfo) and one of the table's keys is not
  among them (an older IG), the key is dropped instead of sent and the plan records it as
  *unsupported*, with the fields that will stay empty and the rules that degrade; the session logs
  it once, counts it (`gadgetwatch_gadget_params_unsupported`) and `probe` and `/readyz` show it;
* a user override that switches a default off (`operator.oci.ebpf.paths: "false"`) is honoured
  and reported the same way, as a *degraded* plan.

The missing-field behaviour downstream (what an event without `exepath` becomes) lives in the
mappers: see `UNRESOLVED_PREFIX`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Prefix of a path the event could not resolve: an exec without IG's `exepath` (its `argv[0]`
#: is chosen by the caller and is no evidence of the executed file). Not an absolute path, so it
#: never matches a path pattern, an exception or a learned absolute path; profiles and alerts
#: show it as is. (An open's name is always a name of the file opened: a relative one is joined
#: to the process's cwd, or to ``/`` when IG sent none, by `pathnorm`.)
UNRESOLVED_PREFIX = "unresolved:"

_PATHS = "operator.oci.ebpf.paths"


@dataclass(frozen=True, slots=True)
class DefaultParam:
    """One parameter gadgetwatch sets for a gadget, with the reason and the cost of losing it."""

    key: str
    value: str
    reason: str
    #: Event fields IG leaves empty when this param cannot be set to `value`.
    fields: tuple[str, ...] = ()
    #: Rules that judge on those fields and degrade without them.
    rules: tuple[str, ...] = ()


#: What gadgetwatch sends to each gadget, with the reason for every value. Keys are IG's fully
#: qualified param keys (`operator.oci.ebpf.<key>` for a gadget's own eBPF params).
DEFAULT_PARAMS: dict[str, tuple[DefaultParam, ...]] = {
    "trace_exec": (
        DefaultParam(
            _PATHS,
            "true",
            "fills exepath, cwd and parent_exepath: profiles learn the executed file, not the "
            "argv[0] the caller chose, and exe-based rules cannot be dodged with a relative path",
            fields=("exepath", "cwd", "parent_exepath"),
            rules=("R0001", "R1000", "R1004", "R1005"),
        ),
        DefaultParam(
            "operator.oci.ebpf.ignore-failed",
            "true",
            "a failed exec ran nothing; a shell searching $PATH fails once per directory, so "
            "failed execs would flood the stream and teach profiles programs that never ran",
        ),
    ),
    "trace_open": (
        DefaultParam(
            _PATHS,
            "true",
            "fills fpath, the resolved path; without it only the raw name passed to open() "
            "remains and IG sends no cwd, so a relative name is joined to / and 'shadow' "
            "opened in /etc is seen as '/shadow'",
            fields=("fpath",),
            rules=("R0002", "R0006", "R0010", "R1011"),
        ),
        DefaultParam(
            "operator.oci.ebpf.failed",
            "false",
            "profiles and rules need the successful opens; 'true' would deliver only failures",
        ),
    ),
    "trace_dns": (
        DefaultParam(
            _PATHS,
            "true",
            "fills exepath of the querying process, which profiles and alerts show",
            fields=("exepath",),
        ),
    ),
    "trace_tcp": (
        DefaultParam(
            "operator.oci.ebpf.connect-only",
            "false",
            "profiles keep both directions: outgoing connects and accepted connections",
        ),
        DefaultParam(
            "operator.oci.ebpf.accept-only",
            "false",
            "as for connect-only: accepted connections feed the inbound side of the profile",
        ),
        DefaultParam(
            "operator.oci.ebpf.failure-only",
            "false",
            "established connections are the behaviour profiles learn; failures alone would "
            "hide every successful egress",
        ),
    ),
    "trace_capabilities": (
        DefaultParam(
            "operator.oci.ebpf.collect-kstack",
            "false",
            "IG's default collects a kernel stack in every event; nothing in gadgetwatch reads "
            "it, and it is the largest field of the event",
        ),
        DefaultParam(
            "operator.oci.ebpf.unique",
            "true",
            "profiles keep the set of capabilities per container and the anomaly rule alerts on "
            "the first capability outside it, so one event per (container, capability) carries "
            "all the information; capable() runs on hot kernel paths and would otherwise "
            "dominate the event rate",
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class ParamPlan:
    """What one gadget is run with on one server, and what that costs."""

    gadget: str
    #: The params sent, user overrides included.
    sent: dict[str, str]
    #: Keys of `sent` that came from the user (the others are gadgetwatch's defaults).
    user_keys: frozenset[str] = frozenset()
    #: Defaults the server's gadget does not declare (older IG): not sent.
    unsupported: tuple[DefaultParam, ...] = ()
    #: Defaults the user switched to another value.
    overridden: tuple[DefaultParam, ...] = ()
    #: Whether the server reported the gadget's params at all (None: it did not say).
    declared: frozenset[str] | None = field(default=None)

    @property
    def missing_fields(self) -> tuple[str, ...]:
        """Fields IG will leave empty because a default could not be applied."""
        lost = self.unsupported + self.overridden
        return tuple(sorted({f for p in lost for f in p.fields}))

    @property
    def degraded_rules(self) -> tuple[str, ...]:
        lost = self.unsupported + self.overridden
        return tuple(sorted({r for p in lost for r in p.rules}))

    def is_declared(self, key: str) -> bool | None:
        """Whether the server declares `key` for this gadget (None: it did not report params)."""
        return None if self.declared is None else key in self.declared


def params_table() -> str:
    """`DEFAULT_PARAMS` as the Markdown table of `docs/gadgetclient.md` (a test compares)."""
    rows = ["| gadget | param | value | why |", "|---|---|---|---|"]
    for gadget, params in DEFAULT_PARAMS.items():
        for p in params:
            rows.append(f"| `{gadget}` | `{p.key}` | `{p.value}` | {p.reason} |")
    return "\n".join(rows)


def defaults_for(gadget: str) -> tuple[DefaultParam, ...]:
    return DEFAULT_PARAMS.get(gadget, ())


def plan_params(gadget: str, user: Mapping[str, str], declared: Iterable[str] | None) -> ParamPlan:
    """The params to send to `gadget` (a short gadget name) on a server declaring `declared`.

    User params apply when the gadget declares them (all of them when it reports nothing, as IG
    ignores unknown keys); gadgetwatch's defaults apply under them, except those a reporting
    server does not declare.
    """
    keys = None if declared is None else frozenset(declared)
    sent: dict[str, str] = {}
    unsupported: list[DefaultParam] = []
    overridden: list[DefaultParam] = []
    for default in defaults_for(gadget):
        if default.key in user:
            if user[default.key].strip().lower() != default.value:
                overridden.append(default)
            continue
        if keys is not None and default.key not in keys:
            unsupported.append(default)
            continue
        sent[default.key] = default.value
    user_keys = {k for k in user if keys is None or k in keys}
    sent.update({k: user[k] for k in sorted(user_keys)})
    return ParamPlan(
        gadget=gadget,
        sent=sent,
        user_keys=frozenset(user_keys),
        unsupported=tuple(unsupported),
        overridden=tuple(overridden),
        declared=keys,
    )


__all__ = [
    "DEFAULT_PARAMS",
    "UNRESOLVED_PREFIX",
    "DefaultParam",
    "ParamPlan",
    "defaults_for",
    "params_table",
    "plan_params",
]
