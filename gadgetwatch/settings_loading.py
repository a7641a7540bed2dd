"""Loading one typed configuration from layered sources, with errors a person can act on.

Precedence: defaults < YAML file < environment < command-line flags. Every layer is a nested
mapping keyed by the YAML (camelCase) names; layers are deep-merged and validated once, at
start-up, into the frozen pydantic `Settings`. Nothing else in the program reads `os.environ`.

Environment variables: ``GADGETWATCH_<SECTION>__<KEY>[__<SUBKEY>]``, for example
``GADGETWATCH_PROFILER__LEARNING_PERIOD=1h``. Segments are upper snake case and map to the
camelCase keys; values are parsed as YAML scalars or flow collections (``[a, b]``).

Errors: an unknown key is reported with its dotted path and the closest valid key
(``unknown key 'profiler.learningPerod' (did you mean 'learningPeriod'?)``); a bad value with
its path, the reason and the value given.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from gadgetclient.safeyaml import load_one
from gadgetclient.textsafety import escape_control, redact_urls

ENV_PREFIX = "GADGETWATCH_"
#: Words YAML 1.1 reads as booleans: an environment value is text (`MODE=on` means "on"; bool
#: fields still accept these words through pydantic). "" keeps a blank value a blank string.
_YAML11_WORDS = frozenset({"", "on", "off", "yes", "no", "y", "n"})


M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every issue found, one line each."""

    def __init__(self, problems: list[str], *, source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(problems))

    def __str__(self) -> str:
        # Shown on a terminal: values given may hold credentials in URLs or escape sequences.
        return "\n".join(escape_control(redact_urls(f"{self.source}: {p}")) for p in self.problems)


def read_yaml_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror}"], source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"not UTF-8 text (byte {exc.start}); a configuration file is YAML"], source=str(path)
        ) from exc
    try:
        data = load_one(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"invalid YAML{where}: {problem}"], source=str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"the top level must be a mapping, not {type(data).__name__}"], source=str(path)
        )
    return data


#: Variables with a short, documented name of their own (the usual spelling still works):
#: `GADGETWATCH_DEBUG_ENDPOINTS=1` is what an operator types to open the debug listener.
ENV_SHORTCUTS: Mapping[str, tuple[str, ...]] = {
    "GADGETWATCH_DEBUG_ENDPOINTS": ("debug", "enabled"),
}


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested mapping from ``GADGETWATCH_A__B_C=v`` variables (``{"a": {"bC": v}}``)."""
    layer: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        shortcut = ENV_SHORTCUTS.get(name)
        if shortcut is not None:
            path = list(shortcut)
        elif not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        else:
            # The models' own alias generator: a variable names exactly the key the YAML would.
            path = [to_camel(seg.lower()) for seg in name[len(ENV_PREFIX) :].split("__") if seg]
        try:
            value = raw.strip() if raw.strip().lower() in _YAML11_WORDS else load_one(raw)
        except yaml.YAMLError:
            value = raw
        set_path(layer, path, value)
    return layer


def set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate(model: type[M], data: Mapping[str, Any], *, source: str = "config") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(model, exc), source=source) from exc


def describe_errors(model: type[BaseModel], exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        dotted = ".".join(loc)
        if err["type"] == "extra_forbidden":
            valid = field_aliases(model, loc[:-1])
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            listing = (
                f"; valid keys here: {', '.join(sorted(valid))}" if valid and not close else ""
            )
            problems.append(f"unknown key '{dotted}'{hint}{listing}")
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            message = err["msg"]
            if err["type"].startswith("time_delta"):
                # pydantic's own text names ISO 8601; people write the short forms.
                message = "invalid duration; use a number with a unit, e.g. 24h, 10m, 90s"
            if err["type"] == "value_error" and message.startswith("Value error, "):
                message = message.removeprefix("Value error, ")
            # A check across sections (a model validator) names its own settings.
            problems.append(f"{dotted}: {message}{shown}" if dotted else message)
    return problems


def field_aliases(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The valid keys of the model found at `loc` (walking fields by alias), or []."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        nxt = None
        for name, info in current.model_fields.items():
            if part in (info.alias, name):
                nxt = _unwrap_model(info.annotation)
                break
        if nxt is None:
            return []
        current = nxt
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap_model(annotation: Any) -> Any:
    """Find a BaseModel inside Optional[...], list[...], dict[str, ...] annotations."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    return None
