"""`RuntimeRule` (gadgetwatch.io/v1): rules users write in CEL, compiled into catalogue `Rule`s.

Schema (`deploy/crds/runtimerules.gadgetwatch.io.yaml`)::

    spec:
      id: C0001                      # unique; built-in ids are refused
      name: Reverse shell            # unique (case-insensitive), bindings may name it
      description: ...
      severity: high
      mitreTactic: TA0002
      mitreTechnique: T1059
      tags: [exec, custom]
      profileDependency: none        # required | optional | none
      match:                         # one CEL expression per event kind the rule reads
        exec: 'event.exec_path.endsWith("/sh") && ...'
      message: '"shell: " + text.safe(event.exec_path)'   # or one per kind
      key: '[event.exec_path]'                             # dedup key; or one per kind
      subjects: '[event.exec_path]'  # optional: what an exception may allow (default per kind)
      fix: "advice"
      parameters:                    # typed; a binding overrides them per scope
      - {name: shells, type: paths, default: [/bin/sh], description: ...}

A compiled rule is an ordinary `detector.rules.Rule`: bindings, exceptions, the profile gate,
the clean-event memo, dedup and alert building treat it exactly like a built-in one. Its
`build` makes, per container plan, one CEL context holding the helpers (`detector.cel_env`)
and the resolved parameters; per event only the `event` map of the fields the expressions
name is converted.

Expressions are compiled once when the resource loads. Problems are reported like every other
rule-source problem, located at file:line and field, and for CEL errors at the line and column
inside the expression; a broken rule is dropped, the others load.

Bounds, because rules are user input and the engine (common-expression-language, loaded by
`detector.cel_engine`) has no cost limit of its own: source length, bracket nesting and the
number of comprehension macros per expression are limited at compile time, so evaluation is
bounded by expression size times the event's own (bounded) lists. Results are checked: a match
must be a bool, a message a string, a key a scalar or a list of at most `MAX_KEY_ITEMS`
scalars; anything else is an evaluation error, which the detector counts per rule and, past a
threshold, answers by disabling the rule (`Detector`, system alert GW0003).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from detector import cel_engine as cel
from detector import exceptions
from detector.alerts import MAX_TEXT, RuleId, Severity, safe_text
from detector.catalogue_anomaly import open_path
from detector.cel_env import (
    Extractor,
    FieldError,
    Helpers,
    blank_strings,
    referenced_fields,
)
from detector.cel_env import unknown_functions as _unknown_functions
from detector.errors import CelCompileError, RuleEvaluationError
from detector.loading import DocContext, Document, Path
from detector.rules import (
    AllowKind,
    Catalogue,
    Check,
    Finding,
    ParamKind,
    ParamSpec,
    ProfileDependency,
    Rule,
    RuleEnv,
    Subject,
)
from gadgetclient.events import Event, EventKind
from gadgetclient.processes import exec_path
from profiler.readmodel import ProfileView

log = structlog.get_logger(__name__)
# The library logs every failing helper call itself (with the exception text); the detector
# counts and logs evaluation errors once, structured, so the library's copy is silenced.
logging.getLogger("cel").setLevel(logging.CRITICAL)

API_VERSION = exceptions.API_VERSION
KIND = "RuntimeRule"

#: Longest expression accepted: the built-in catalogue's longest is ~600 characters; 4 KiB
#: leaves room for long literal lists while keeping a hostile resource from costing much.
MAX_EXPRESSION_CHARS = 4096
#: Deepest bracket nesting: far above hand-written rules, far below cel-rust's own parser
#: recursion limit, so the error is ours and clear.
MAX_NESTING = 32
#: Comprehension macros (all/exists/exists_one/map/filter) per expression: each multiplies
#: the cost by a list's length, so a few are allowed, not a tower of them.
MAX_COMPREHENSIONS = 4
#: Items in a dedup key (the key is held in the cooldown table; R0003's new-syscall lists
#: are the longest the built-ins make).
MAX_KEY_ITEMS = 512
#: Subjects kept per finding: an exception is matched against each, and R0003's list of new
#: syscalls, the longest a built-in makes, rarely exceeds a dozen.
MAX_SUBJECTS = 64
#: Bounds of a rule's own text (name, description, fix, one tag): they are shown in alerts,
#: labels and `rules list`; far above any real rule, far below what would bloat every alert.
NAME_CHARS, DESCRIPTION_CHARS, FIX_CHARS, TAG_CHARS = 128, 4096, 2048, 64
#: Rule ids: what `gadgetwatch rules list` and metrics labels carry, so short and plain.
_ID = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}$")
#: Ids gadgetwatch keeps for itself (system alerts GW*, guards R3000).
_RESERVED_PREFIXES = ("GW",)
#: MITRE ATT&CK ids, as the alert schema (docs/alert.schema.json) publishes them.
_TACTIC = re.compile(r"^(TA\d{4})?$")
_TECHNIQUE = re.compile(r"^(T\d{4}(\.\d{3})?)?$")
_MACRO = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(")
_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")

_PARAM_TYPES = {k.value: k for k in ParamKind}
_DEPENDENCIES = {d.value: d for d in ProfileDependency}
_SPEC_KEYS = frozenset(
    {
        "id",
        "name",
        "description",
        "severity",
        "mitreTactic",
        "mitreTechnique",
        "tags",
        "profileDependency",
        "match",
        "message",
        "key",
        "subjects",
        "resolvedAddress",
        "fix",
        "parameters",
    }
)


#: Bidirectional-text controls: they make a log line or label read differently than it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe_text(value: Any, *, limit: int, multiline: bool) -> str:
    """Why a rule's own text (name, tags, description, fix) cannot be used, or "".

    These strings reach alerts, labels, log lines and the YAML of fix suggestions verbatim,
    so control and bidi characters are refused at load rather than escaped at every use."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > limit:
        return f"is {len(value)} characters, more than {limit}"
    for ch in value:
        if ch in _BIDI or (
            (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029")
            and not (multiline and ch == "\n")
        ):
            return f"must not contain control or bidi characters (found U+{ord(ch):04X})"
    return ""


def _position(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _check_shape(source: str) -> None:
    if len(source) > MAX_EXPRESSION_CHARS:
        raise CelCompileError(
            f"expression is {len(source)} characters, more than {MAX_EXPRESSION_CHARS}"
        )
    depth = 0
    for i, ch in enumerate(source):
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise CelCompileError(
                    f"brackets nested deeper than {MAX_NESTING}", *_position(source, i)
                )
        elif ch in ")]}":
            depth -= 1
    macros = list(_MACRO.finditer(source))
    if len(macros) > MAX_COMPREHENSIONS:
        raise CelCompileError(
            f"more than {MAX_COMPREHENSIONS} comprehensions (all/exists/map/filter)",
            *_position(source, macros[MAX_COMPREHENSIONS].start()),
        )


def compile_expression(source: Any, kind: EventKind) -> tuple[cel.Program, frozenset[str] | None]:
    """The compiled program and the `event` fields it reads; raises `CelCompileError`."""
    if not isinstance(source, str) or not source.strip():
        raise CelCompileError("must be a non-empty CEL expression (a string)")
    _check_shape(source)
    try:
        fields = referenced_fields(source, kind)
    except FieldError as exc:
        raise CelCompileError(str(exc), *_position(source, exc.offset)) from None
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        text = str(exc)
        m = _POSITION.search(text)
        if m is None:
            raise CelCompileError(safe_text(text.splitlines()[0], limit=300)) from None
        raise CelCompileError(
            safe_text(m.group(3), limit=300), int(m.group(1)), int(m.group(2))
        ) from None
    unknown = _unknown_functions(program.functions())
    if unknown:
        raise CelCompileError(
            f"unknown function(s) {', '.join(unknown)}; see docs/rules.md for the helpers"
        )
    unknown_vars = sorted(
        set(program.variables())
        - {"event", "params"}
        - _bound_names(source)
        - {n.partition(".")[0] for n in _HELPER_NAMESPACES}
    )
    if unknown_vars:
        raise CelCompileError(
            f"unknown variable(s) {', '.join(unknown_vars)} (rules see `event` and `params`)"
        )
    return program, fields


def _bound_names(source: str) -> set[str]:
    """Names bound by comprehension macros (``list.exists(x, ...)`` binds x)."""
    return set(
        re.findall(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)", source)
    )


_HELPER_NAMESPACES = frozenset(Helpers(RuleEnv()).build())


@dataclass(frozen=True, slots=True)
class _KindProgram:
    #: The expressions' sources by slot (match, message, key, subjects, resolved).
    sources: Mapping[str, str]
    match: cel.Program
    message: cel.Program
    key: cel.Program | None
    subjects: cel.Program | None
    resolved: cel.Program | None
    #: Fields of message, key, subjects and resolvedAddress (converted only on a match),
    #: None: all of them.
    finding_reads: frozenset[str] | None
    #: Every `event` field the match reads ("field" or "field.sub"), None: all of them.
    reads: frozenset[str] | None


def _per_kind(
    value: Any, kinds: list[EventKind], ctx: DocContext, path: Path
) -> dict[EventKind, Any] | None:
    """A string for every kind, or a mapping kind -> string covering every kind."""
    if isinstance(value, str):
        return dict.fromkeys(kinds, value)
    if isinstance(value, dict):
        out = {}
        for kind in kinds:
            if kind.value not in value:
                ctx.error(path, f"has no expression for event kind {kind.value!r}")
                return None
            out[kind] = value[kind.value]
        for extra in value:
            if extra not in {k.value for k in kinds}:
                ctx.warning((*path, str(extra)), "no match expression for this kind; ignored")
        return out
    ctx.error(path, "must be a CEL expression or a mapping of event kind to expression")
    return None


def _params(raw: Any, ctx: DocContext) -> tuple[ParamSpec, ...] | None:
    if raw in (None, []):
        return ()
    if not isinstance(raw, list):
        ctx.error(("spec", "parameters"), "must be a list of {name, type, default, description}")
        return None
    out: list[ParamSpec] = []
    for i, item in enumerate(raw):
        path: Path = ("spec", "parameters", i)
        if not isinstance(item, dict):
            ctx.error(path, "must be a mapping with name, type, default, description")
            return None
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w{0,63}", name):
            ctx.error((*path, "name"), "must be an identifier (letters, digits, _)")
            return None
        kind = _PARAM_TYPES.get(str(item.get("type")))
        if kind is None:
            ctx.error((*path, "type"), f"must be one of {', '.join(_PARAM_TYPES)}")
            return None
        spec = ParamSpec(name, kind, None, str(item.get("description", "")))
        try:
            default = spec.coerce(item.get("default", False if kind is ParamKind.BOOL else []))
        except ValueError as exc:
            ctx.error((*path, "default"), str(exc))
            return None
        out.append(ParamSpec(name, kind, default, spec.description))
    if len({p.name for p in out}) != len(out):
        ctx.error(("spec", "parameters"), "parameter names must be unique")
        return None
    return tuple(out)


def _freeze_param(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _cel_params(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def parse_rule(doc: Document, *, ctx: DocContext, catalogue: Catalogue) -> Rule | None:
    """The compiled rule, or None (with the problems recorded) when it cannot be used."""
    data = doc.data
    spec = data.get("spec")
    if not isinstance(spec, dict):
        ctx.error(("spec",), "is required")
        return None
    for key in spec:
        if key not in _SPEC_KEYS:
            ctx.warning(("spec", str(key)), "unknown field, ignored")
    rule_id = spec.get("id")
    if (
        not isinstance(rule_id, str)
        or not _ID.match(rule_id)
        or rule_id.startswith(_RESERVED_PREFIXES)
    ):
        ctx.error(
            ("spec", "id"),
            "must be 2-16 upper-case letters, digits, '-' or '_', starting with a letter, "
            "not GW… (reserved for system alerts)",
        )
        return None
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_CHARS:
        ctx.error(("spec", "name"), f"is required (at most {NAME_CHARS} characters)")
        return None
    for field_name, value, limit, multiline in (
        ("name", name, NAME_CHARS, False),
        ("description", spec.get("description", ""), DESCRIPTION_CHARS, True),
        ("fix", spec.get("fix", ""), FIX_CHARS, True),
        *(("tags", t, TAG_CHARS, False) for t in spec.get("tags") or [] if isinstance(t, str)),
    ):
        problem = _unsafe_text(value, limit=limit, multiline=multiline)
        if problem:
            ctx.error(("spec", field_name), problem)
            return None
    clash = catalogue.by_id(rule_id) or catalogue.by_name(name)
    if clash is not None:
        ctx.error(
            ("spec", "id"),
            f"collides with rule {clash.id} ({clash.name}); ids and names must be unique",
        )
        return None
    try:
        severity = Severity.parse(spec.get("severity", "medium"))
    except ValueError as exc:
        ctx.error(("spec", "severity"), str(exc))
        return None
    for field_name, pattern in (("mitreTactic", _TACTIC), ("mitreTechnique", _TECHNIQUE)):
        value = spec.get(field_name, "")
        if not isinstance(value, str) or not pattern.match(value):
            ctx.error(("spec", field_name), f"must match {pattern.pattern} (MITRE ATT&CK id)")
            return None
    dependency = _DEPENDENCIES.get(str(spec.get("profileDependency", "none")))
    if dependency is None:
        ctx.error(("spec", "profileDependency"), f"must be one of {', '.join(_DEPENDENCIES)}")
        return None
    tags = spec.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        ctx.error(("spec", "tags"), "must be a list of strings")
        return None
    match = spec.get("match")
    if not isinstance(match, dict) or not match:
        ctx.error(("spec", "match"), "must map event kinds to CEL expressions")
        return None
    kinds: list[EventKind] = []
    for k in match:
        try:
            kinds.append(EventKind(str(k)))
        except ValueError:
            ctx.error(
                ("spec", "match", str(k)),
                f"unknown event kind (kinds: {', '.join(e.value for e in EventKind)})",
            )
            return None
    params = _params(spec.get("parameters"), ctx)
    if params is None:
        return None
    messages = _per_kind(spec.get("message"), kinds, ctx, ("spec", "message"))
    keys = _per_kind(spec.get("key", "[]"), kinds, ctx, ("spec", "key"))
    subjects = (
        _per_kind(spec["subjects"], kinds, ctx, ("spec", "subjects"))
        if spec.get("subjects") is not None
        else {}
    )
    resolved = (
        _per_kind(spec["resolvedAddress"], kinds, ctx, ("spec", "resolvedAddress"))
        if spec.get("resolvedAddress") is not None
        else {}
    )
    if messages is None or keys is None or subjects is None or resolved is None:
        return None
    param_names = {p.name for p in params}
    programs: dict[EventKind, _KindProgram] = {}
    ok = True
    for kind in kinds:
        compiled: dict[str, tuple[cel.Program, frozenset[str] | None]] = {}
        for what, source, path in (
            ("match", match[kind.value], ("spec", "match", kind.value)),
            ("message", messages[kind], _field_path("message", spec, kind)),
            ("key", keys[kind], _field_path("key", spec, kind)),
            ("subjects", subjects.get(kind), _field_path("subjects", spec, kind)),
            ("resolved", resolved.get(kind), _field_path("resolvedAddress", spec, kind)),
        ):
            if source is None:
                continue
            try:
                compiled[what] = compile_expression(source, kind)
                _check_params(source, param_names)
            except CelCompileError as exc:
                ctx.error(path, f"rule {rule_id}: {exc}")
                ok = False
        if not ok:
            continue
        finding_fields: set[str] = set()
        whole = False
        for what in ("message", "key", "subjects", "resolved"):
            if what in compiled:
                fields = compiled[what][1]
                if fields is None:
                    whole = True
                else:
                    finding_fields |= fields
        programs[kind] = _KindProgram(
            sources={
                what: source
                for what, source in (
                    ("match", match[kind.value]),
                    ("message", messages[kind]),
                    ("key", keys[kind]),
                    ("subjects", subjects.get(kind)),
                    ("resolved", resolved.get(kind)),
                )
                if source is not None
            },
            match=compiled["match"][0],
            message=compiled["message"][0],
            key=compiled["key"][0] if "key" in compiled else None,
            subjects=compiled["subjects"][0] if "subjects" in compiled else None,
            resolved=compiled["resolved"][0] if "resolved" in compiled else None,
            finding_reads=None
            if whole or compiled["match"][1] is None
            else frozenset(finding_fields) | compiled["match"][1],
            reads=compiled["match"][1],
        )
    if not ok:
        return None
    revision = hashlib.blake2b(repr(sorted(spec.items(), key=str)).encode(), digest_size=8)
    return Rule(
        id=RuleId(rule_id),
        name=name.strip(),
        description=str(spec.get("description", "")),
        severity=severity,
        tags=tuple(tags),
        mitre_tactic=str(spec.get("mitreTactic", "")),
        mitre_technique=str(spec.get("mitreTechnique", "")),
        profile=dependency,
        kinds=frozenset(kinds),
        dedup_key=(str(spec.get("key", "[]")),) if isinstance(spec.get("key"), str) else (),
        fix=str(spec.get("fix", "")),
        build=_builder(programs, rule_id),
        parameters=params,
        source=doc.source,
        revision=revision.hexdigest(),
        reads=tuple((k, p.reads) for k, p in programs.items()),
    )


def _field_path(what: str, spec: dict[str, Any], kind: EventKind) -> Path:
    return ("spec", what, kind.value) if isinstance(spec.get(what), dict) else ("spec", what)


def _check_params(source: str, names: set[str]) -> None:
    for m in re.finditer(r"(?<![\w.])params\s*\.\s*([A-Za-z_]\w*)", source):
        if m.group(1) not in names:
            known = ", ".join(sorted(names)) or "none"
            raise CelCompileError(
                f"unknown parameter {m.group(1)!r} (declared: {known})",
                *_position(source, m.start(1)),
            )


def _hashable(value: Any, depth: int = 0) -> Hashable:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple) and depth < 2:
        return tuple(_hashable(v, depth + 1) for v in value)
    raise RuleEvaluationError(f"key items must be scalars, got {type(value).__name__}")


def _default_subjects(event: Any) -> tuple[Subject, ...]:
    kind = event.kind
    if kind is EventKind.EXEC:
        return (Subject(AllowKind.EXEC, exec_path(event)),)
    if kind is EventKind.OPEN:
        return (Subject(AllowKind.PATH, open_path(event)),)
    if kind is EventKind.DNS:
        return (Subject(AllowKind.DOMAIN, event.name),)
    if kind is EventKind.TCP:
        return (Subject(AllowKind.ADDRESS, event.dst_addr, event.dst_port),)
    if kind is EventKind.CAPABILITY:
        return (Subject(AllowKind.CAPABILITY, event.capability),)
    return ()


_SUBJECT_KIND = {
    EventKind.EXEC: AllowKind.EXEC,
    EventKind.OPEN: AllowKind.PATH,
    EventKind.DNS: AllowKind.DOMAIN,
    EventKind.TCP: AllowKind.ADDRESS,
    EventKind.CAPABILITY: AllowKind.CAPABILITY,
    EventKind.SYSCALLS: AllowKind.SYSCALL,
}


#: Distinct parameter sets a rule keeps compiled programs for (bindings usually give one or
#: two per rule; the bound only matters for a cluster with many differing bindings).
_PARAMS_CACHE = 64


def _literal(value: Any) -> str:
    """A parameter value as a CEL literal (parameters are bools, strings, ints or lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        out = []
        for ch in value:
            if ch in '\\"':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\x{ord(ch):02x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"no CEL literal for {type(value).__name__}")


_PARAM_REF = re.compile(r"(?<![\w.])params\s*\.\s*([A-Za-z_]\w*)")


def _with_params(source: str, params: Mapping[str, Any]) -> str:
    """`source` with every ``params.NAME`` replaced by the value's literal.

    Parameters are fixed for a bound rule, so they are compiled into its programs instead of
    being converted into CEL values at every evaluation (a 40-path list costs more than the
    rest of an evaluation together)."""
    blank = blank_strings(source)
    out = []
    last = 0
    for m in _PARAM_REF.finditer(blank):
        out.append(source[last : m.start()])
        out.append(_literal(params[m.group(1)]))
        last = m.end()
    out.append(source[last:])
    return "".join(out)


_SESSION = "cel-session"


class CelSession:
    """One CEL context shared by the CEL rules of a container plan.

    Converting the event into CEL values is most of an evaluation's cost, and every rule of
    the plan evaluates the same event against the same profile, so the context holds the
    union of the fields they read and is converted once per event (again only when a rule
    needs a field not loaded yet). Helpers read the plan's `RuleEnv`, the same for all.
    """

    __slots__ = ("context", "event", "extractors", "helpers", "loaded")

    def __init__(self, env: RuleEnv, variables: dict[str, Any] | None = None) -> None:
        self.helpers = Helpers(env)
        self.context = cel.new_context(variables or {}, dict(self.helpers.build()))
        self.event: object = None
        #: Fields loaded for `event`; None: all of them.
        self.loaded: frozenset[str] | None = frozenset()
        self.extractors: dict[tuple[EventKind, frozenset[str] | None], Extractor] = {}

    def load(self, event: Event, paths: frozenset[str] | None) -> None:
        if self.event is event:
            loaded = self.loaded
            if loaded is None or (paths is not None and paths <= loaded):
                return
            paths = None if paths is None else paths | loaded
        key = (event.kind, paths)
        extractor = self.extractors.get(key)
        if extractor is None:
            if len(self.extractors) >= _PARAMS_CACHE:
                self.extractors.clear()
            extractor = self.extractors[key] = Extractor(event.kind, paths)
        self.context.add_variable("event", extractor(event))
        self.event = event
        self.loaded = paths


def _builder(programs: dict[EventKind, _KindProgram], rule_id: str) -> Any:
    compiled_for: dict[Any, tuple[dict[EventKind, _KindProgram], bool]] = {}

    def specialise(params: Mapping[str, Any]) -> tuple[dict[EventKind, _KindProgram], bool]:
        """The programs with the parameters as literals, and False; when that cannot be
        compiled (not expected), the generic programs and True: `params` is then a variable."""
        key = tuple(sorted((k, _freeze_param(v)) for k, v in params.items()))
        found = compiled_for.get(key)
        if found is not None:
            return found
        try:
            out = {}
            for kind, p in programs.items():
                progs = {w: cel.compile(_with_params(s, params)) for w, s in p.sources.items()}
                out[kind] = dataclasses.replace(
                    p,
                    match=progs["match"],
                    message=progs["message"],
                    key=progs.get("key"),
                    subjects=progs.get("subjects"),
                    resolved=progs.get("resolved"),
                )
            found = (out, False)
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            log.warning("rule parameters not inlined", rule_id=rule_id, error=str(exc)[:256])
            found = (programs, True)
        if len(compiled_for) >= _PARAMS_CACHE:
            compiled_for.clear()
        compiled_for[key] = found
        return found

    def build(params: Mapping[str, Any], env: RuleEnv) -> Check:
        specialised, needs_params = specialise(params)
        if needs_params:
            session = CelSession(env, {"params": _cel_params(params)})
        else:
            shared = env.shared.get(_SESSION)
            if not isinstance(shared, CelSession):
                shared = env.shared[_SESSION] = CelSession(env)
            session = shared
        context = session.context
        helpers = session.helpers

        def check(event: Event, profile: ProfileView | None) -> Finding | None:
            p = specialised[event.kind]
            helpers.profile = profile
            session.load(event, p.reads)
            matched = p.match.execute(context)
            if matched is False:
                return None
            if matched is not True:
                raise RuleEvaluationError(
                    f"match expression returned {type(matched).__name__}, not bool"
                )
            session.load(event, p.finding_reads)
            message = p.message.execute(context)
            if not isinstance(message, str):
                raise RuleEvaluationError(
                    f"message expression returned {type(message).__name__}, not string"
                )
            key: tuple[Hashable, ...] = ()
            if p.key is not None:
                raw = p.key.execute(context)
                hashed = _hashable(raw)
                key = hashed if isinstance(hashed, tuple) else (hashed,)
                if len(key) > MAX_KEY_ITEMS:
                    raise RuleEvaluationError(f"key has more than {MAX_KEY_ITEMS} items")
            subjects = _default_subjects(event)
            if p.subjects is not None:
                raw_subjects = p.subjects.execute(context)
                items = raw_subjects if isinstance(raw_subjects, list) else [raw_subjects]
                port = event.dst_port if event.kind is EventKind.TCP else 0  # type: ignore[union-attr]
                subjects = tuple(
                    Subject(_SUBJECT_KIND[event.kind], str(s), port) for s in items[:MAX_SUBJECTS]
                )
            resolved_address = ""
            if p.resolved is not None:
                addr = p.resolved.execute(context)
                if not isinstance(addr, str):
                    raise RuleEvaluationError(
                        f"resolvedAddress expression returned {type(addr).__name__}, not string"
                    )
                resolved_address = addr
            return Finding(
                message=safe_text(message, limit=MAX_TEXT),
                key=key,
                subjects=subjects,
                resolved_address=resolved_address,
            )

        def guarded(event: Event, profile: ProfileView | None) -> Finding | None:
            try:
                return check(event, profile)
            except Exception:
                raise
            except BaseException as exc:
                # A panic inside the Rust core arrives as pyo3's PanicException, which derives
                # from BaseException: turned into an ordinary evaluation error (counted, rule
                # disabled after the limit) instead of ending the agent.
                if type(exc).__name__ != "PanicException":
                    raise
                raise RuleEvaluationError(f"CEL engine panic: {exc}") from None

        return guarded

    return build
