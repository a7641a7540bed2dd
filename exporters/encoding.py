"""JSON encoding of alerts that cannot fail on hostile text.

`Alert.to_dict` is the documented JSON form. orjson escapes quotes, backslashes and control
characters, so no string can break a JSON document or a JSON line; what it refuses is text that
is not valid Unicode scalar values (lone surrogates, which Python strings can carry when they
come from `surrogateescape` decoding) and values it does not know. Rather than losing such an
alert, the fallback path re-encodes every string with the offending code points escaped as
`\\udXXX` and stringifies unknown values. The fast path costs one `orjson.dumps`.
"""

from __future__ import annotations

from typing import Any

import orjson

from detector.alerts import Alert

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: object) -> object:
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    return str(value)


def clean_text(value: str) -> str:
    """`value` with lone surrogates escaped, so it encodes as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """orjson bytes of `value`; never raises on strings."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return orjson.dumps(_clean(value), default=_default, option=_OPTIONS)


def alert_json(alert: Alert) -> bytes:
    """The alert's documented JSON form, compact, without a trailing newline."""
    return dumps(alert.to_dict())
