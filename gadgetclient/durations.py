"""Human durations ("500ms", "30s", "10m", "1h30m", "2d"), the one parser every package uses.

Configuration fields declare `Duration` (a `timedelta` that also accepts these strings), flags
use `parse_duration`, and `format_duration` writes a `timedelta` back the same way, so the
default configuration serialises to YAML and loads back unchanged. It lives in the lowest
package so `profiler`, `detector`, `exporters` and `gadgetwatch` can share it without a cycle.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_text(text: str) -> timedelta | None:
    """A `timedelta` for text like "1h30m", or None when the text is not of that form."""
    text = text.strip()
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if pos != len(text) or not text:
        return None
    return timedelta(seconds=total)


def parse_duration(text: str) -> float:
    """Seconds of a duration like "1h30m" or "250ms"; a bare number is seconds."""
    try:
        return float(text.strip())
    except ValueError:
        pass
    parsed = parse_duration_text(text)
    if parsed is None:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 30s, 5m, 1h)")
    return parsed.total_seconds()


def format_duration(value: timedelta) -> str:
    """The shortest exact form in h, m, s or ms: 24h, 90s, 1500ms (0 is "0s")."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms % size == 0:
            return f"{total_ms // size}{unit}"
    return f"{total_ms}ms"


def _accept_text(value: object) -> object:
    if isinstance(value, str):
        parsed = parse_duration_text(value)
        if parsed is not None:
            return parsed
    return value


#: A duration setting: a `timedelta` written like "24h" in YAML, flags and the environment.
Duration = Annotated[
    timedelta,
    BeforeValidator(_accept_text),
    PlainSerializer(format_duration, when_used="json"),
]
