"""Human durations ("500ms", "30s", "10m", "1h30m", "2d"), the one parser every package uses.

Configuration fields declare `Duration` (a `timedelta` that also accepts these strings), flags
use `parse_duration`, and `format_duration` writes a `timedelta` back the same way, so the
default configuration serialises to YAML and loads back unchanged. It lives in the lowest
package so `profiler`, `detector`, `exporters` and `gadgetwatch` can share it without a cycle.
"""

from __future__ import annotations

import math
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
    """Seconds of a duration like "1h30m" or "250ms"; a bare number is seconds.

    The same rules as a `Duration` setting (`to_duration`): never negative, no ISO 8601.
    """
    return to_duration(text).total_seconds()


#: The accepted forms, quoted in every rejection.
_FORMS = "use e.g. 500ms, 30s, 5m, 1h30m, 2d, or a number of seconds"


def to_duration(value: object) -> timedelta:
    """The one validation of a duration, whatever form it comes in (YAML, environment, flag).

    Accepted: a `timedelta` (code defaults), a non-negative finite number of seconds, a text
    like "1h30m", or a text that is such a number. Everything else is a `ValueError`, in
    particular negative values in any spelling (`-5m`, `-300`, `-PT5M`) and ISO 8601 texts,
    which pydantic would otherwise accept: a negative learning period or cooldown would make
    the agent alert on everything.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} ({_FORMS})")
    try:
        if isinstance(value, timedelta):
            result = value
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"invalid duration {value!r} ({_FORMS})")
            result = timedelta(seconds=value)
        elif isinstance(value, str):
            parsed = parse_duration_text(value)
            if parsed is None:
                try:
                    seconds = float(value.strip())
                except ValueError:
                    raise ValueError(f"invalid duration {value!r} ({_FORMS})") from None
                if not math.isfinite(seconds):
                    raise ValueError(f"invalid duration {value!r} ({_FORMS})")
                parsed = timedelta(seconds=seconds)
            result = parsed
        else:
            raise ValueError(f"invalid duration {value!r} ({_FORMS})")
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None
    if result < timedelta(0):
        raise ValueError(f"duration {value!r} must not be negative")
    return result


def format_duration(value: timedelta) -> str:
    """The shortest exact form in h, m, s or ms: 24h, 90s, 1500ms (0 is "0s"); a value with
    sub-millisecond precision is written in seconds with its microseconds, so it loads back
    unchanged."""
    total_us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if total_us % 1000:
        sign = "-" if total_us < 0 else ""
        whole, frac = divmod(abs(total_us), 1_000_000)
        return f"{sign}{whole}.{frac:06d}".rstrip("0") + "s"
    total_ms = total_us // 1000
    if total_ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms % size == 0:
            return f"{total_ms // size}{unit}"
    return f"{total_ms}ms"


#: A duration setting: a `timedelta` written like "24h" in YAML, flags and the environment.
Duration = Annotated[
    timedelta,
    BeforeValidator(to_duration),
    PlainSerializer(format_duration, when_used="json"),
]
