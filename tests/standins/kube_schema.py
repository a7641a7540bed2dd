"""Structural-schema validation of custom objects, the way the API server does it.

The real API server validates a custom object against its CRD's `openAPIV3Schema` in three
steps, and this module reproduces them in the same order so that the errors our code sees in
tests are the errors it will see in a cluster:

1. *Pruning*: fields the schema does not declare are unknown. With `fieldValidation=Strict` they
   make the request fail (400 BadRequest, "strict decoding error: unknown field ..."); with
   `Warn` (the server's default) and `Ignore` they are silently dropped. Fields under
   `x-kubernetes-preserve-unknown-fields: true` are kept.
2. *Validation*: types (with `x-kubernetes-int-or-string`), `nullable`, `required`, `enum`,
   string/number/array/object bounds, `pattern`, a few `format`s, `x-kubernetes-list-type`
   set/map uniqueness. `allOf`/`anyOf`/`oneOf`/`not` are delegated to `jsonschema`.
3. The errors become `Status.details.causes` (`reason`, `message`, `field`), with the reasons
   the real server uses (`FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
   `FieldValueTooLong`, `FieldValueTooMany`, `FieldValueDuplicate`).

CEL rules (`x-kubernetes-validations`) are not evaluated (documented in
`docs/kubernetes-standin.md`).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema


def structural_problems(schema: Any, path: str) -> list[str]:
    """Why `schema` is not structural, as the API server words it (empty: it is).

    apiextensions.k8s.io/v1 refuses a CRD whose schema is not structural: every node must name
    its `type` (unless `x-kubernetes-int-or-string` or `x-kubernetes-preserve-unknown-fields`
    says otherwise), `properties` and `additionalProperties` exclude each other, and arrays
    need `items`. Only these rules are checked (the ones a hand-written CRD breaks).
    """
    if not isinstance(schema, dict):
        return [f"{path}: Invalid value: must be a schema object"]
    problems: list[str] = []
    exempt = schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    kind = schema.get("type")
    if not kind and not exempt:
        problems.append(f"{path}.type: Required value: must not be empty for specified fields")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(
            f"{path}.additionalProperties: Forbidden: additionalProperties and properties are "
            "mutual exclusive"
        )
    for name, sub in (schema.get("properties") or {}).items():
        problems.extend(structural_problems(sub, f"{path}.properties[{name}]"))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(
            structural_problems(schema["additionalProperties"], f"{path}.additionalProperties")
        )
    if kind == "array":
        if "items" not in schema:
            problems.append(f"{path}.items: Required value: must be specified")
        else:
            problems.extend(structural_problems(schema["items"], f"{path}.items"))
    return problems


@dataclass(frozen=True, slots=True)
class Cause:
    """One `Status.details.causes` entry."""

    reason: str
    message: str
    field: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def _show(value: Any) -> str:
    """Go's `%#v`-ish rendering used in the server's messages."""
    return json.dumps(value, sort_keys=True, default=str)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, expected: str) -> bool:
    actual = _type_name(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return actual == expected


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


def _format_ok(value: str, fmt: str) -> bool:
    """The formats kube-openapi checks that we are likely to write; others pass."""
    if fmt == "date-time":
        if not _DATE_TIME.match(value):
            return False
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return False
        return True
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    if fmt == "uuid":
        return bool(_UUID.match(value))
    return True


class _Walker:
    """Walks one object against one structural schema, pruning and collecting causes."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []
        self.unknown: list[str] = []

    def invalid(self, path: str, value: Any, detail: str) -> None:
        msg = f"Invalid value: {_show(value)}: {detail}"
        self.causes.append(Cause("FieldValueInvalid", msg, path))

    def walk(self, value: Any, schema: dict[str, Any], path: str) -> Any:
        """Return the pruned value; record causes and unknown fields on the way."""
        if value is None:
            if schema.get("nullable"):
                return None
            if "type" in schema or schema.get("x-kubernetes-int-or-string"):
                want = schema.get("type", "integer-or-string")
                self.invalid(path, "null", f'{path} in body must be of type {want}: "null"')
            return None
        if schema.get("x-kubernetes-int-or-string"):
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.invalid(
                    path, _type_name(value), f"{path} in body must be of type integer-or-string"
                )
                return value
        elif "type" in schema and not _type_ok(value, schema["type"]):
            actual = _type_name(value)
            self.invalid(
                path, actual, f'{path} in body must be of type {schema["type"]}: "{actual}"'
            )
            return value
        if isinstance(value, dict):
            value = self._object(value, schema, path)
        elif isinstance(value, list):
            value = self._array(value, schema, path)
        elif isinstance(value, str):
            self._string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, schema, path)
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(_show(v) for v in schema["enum"])
            self.causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f"Unsupported value: {_show(value)}: supported values: {allowed}",
                    path,
                )
            )
        self._combinators(value, schema, path)
        return value

    def _object(self, value: dict[str, Any], schema: dict[str, Any], path: str) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if key in props:
                out[key] = self.walk(item, props[key], child)
            elif isinstance(additional, dict):
                out[key] = self.walk(item, additional, child)
            elif (
                additional is True
                or preserve
                or (embedded and key in ("apiVersion", "kind", "metadata"))
            ):
                out[key] = item
            else:
                self.unknown.append(child)
        for key in schema.get("required", []):
            if key not in value:
                child = f"{path}.{key}" if path else key
                self.causes.append(Cause("FieldValueRequired", "Required value", child))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.causes.append(
                Cause(
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                    path,
                )
            )
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.invalid(
                path,
                len(value),
                f"{path} in body should have at least {schema['minProperties']} properties",
            )
        return out

    def _array(self, value: list[Any], schema: dict[str, Any], path: str) -> list[Any]:
        items = schema.get("items")
        out = [
            self.walk(item, items, f"{path}[{i}]") if isinstance(items, dict) else item
            for i, item in enumerate(value)
        ]
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.causes.append(
                Cause(
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                    path,
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.invalid(
                path, len(value), f"{path} in body should have at least {schema['minItems']} items"
            )
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set" or schema.get("uniqueItems"):
            seen: set[str] = set()
            for i, item in enumerate(value):
                key = _show(item)
                if key in seen:
                    self.causes.append(
                        Cause("FieldValueDuplicate", f"Duplicate value: {key}", f"{path}[{i}]")
                    )
                seen.add(key)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen_keys: set[str] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = _show({k: item.get(k) for k in keys})
                if key in seen_keys:
                    self.causes.append(
                        Cause("FieldValueDuplicate", f"Duplicate value: {key}", f"{path}[{i}]")
                    )
                seen_keys.add(key)
        return out

    def _string(self, value: str, schema: dict[str, Any], path: str) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.causes.append(
                Cause(
                    "FieldValueTooLong",
                    f"Too long: may not be more than {schema['maxLength']} bytes",
                    path,
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.invalid(
                path, value, f"{path} in body should be at least {schema['minLength']} chars long"
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            self.invalid(path, value, f"{path} in body should match '{schema['pattern']}'")
        if "format" in schema and not _format_ok(value, schema["format"]):
            self.invalid(
                path, value, f"{path} in body must be of type {schema['format']}: {_show(value)}"
            )

    def _number(self, value: float, schema: dict[str, Any], path: str) -> None:
        if "maximum" in schema:
            limit = schema["maximum"]
            if value > limit or (schema.get("exclusiveMaximum") is True and value == limit):
                self.invalid(path, value, f"{path} in body should be less than or equal to {limit}")
        if "minimum" in schema:
            limit = schema["minimum"]
            if value < limit or (schema.get("exclusiveMinimum") is True and value == limit):
                self.invalid(
                    path, value, f"{path} in body should be greater than or equal to {limit}"
                )
        if schema.get("multipleOf") and value % schema["multipleOf"] != 0:
            self.invalid(
                path, value, f"{path} in body should be a multiple of {schema['multipleOf']}"
            )

    def _combinators(self, value: Any, schema: dict[str, Any], path: str) -> None:
        for keyword in ("allOf", "anyOf", "oneOf", "not"):
            if keyword not in schema:
                continue
            try:
                jsonschema.validate(value, {keyword: schema[keyword]})
            except jsonschema.ValidationError as exc:
                self.invalid(path, value, f"{path} in body {exc.message}")


@dataclass(frozen=True, slots=True)
class SchemaResult:
    """Outcome of validating one object: the pruned object, causes, unknown field paths."""

    pruned: dict[str, Any]
    causes: list[Cause]
    unknown: list[str]


def validate_custom_object(obj: dict[str, Any], schema: dict[str, Any] | None) -> SchemaResult:
    """Validate a custom object (everything but apiVersion/kind/metadata) against its schema.

    `apiVersion`, `kind` and `metadata` are validated by the generic object-meta rules, as in
    the real server; a schema that declares `metadata` may only constrain the name.
    """
    if schema is None:
        return SchemaResult(pruned=obj, causes=[], unknown=[])
    walker = _Walker()
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    top = dict(schema)
    top_props = {
        k: v
        for k, v in top.get("properties", {}).items()
        if k not in ("apiVersion", "kind", "metadata")
    }
    top["properties"] = top_props
    top["required"] = [
        r for r in top.get("required", []) if r not in ("apiVersion", "kind", "metadata")
    ]
    top.pop("type", None)
    pruned = walker.walk(body, {**top, "type": "object"}, "")
    out: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    out.update(pruned)
    return SchemaResult(pruned=out, causes=walker.causes, unknown=walker.unknown)
