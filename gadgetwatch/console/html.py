"""A small autoescaping HTML layer: every value is escaped unless it is already `Markup`.

The console's pages are built from Python strings, not a template engine (no new runtime
dependency for a dozen pages). The rule that keeps attacker-controlled text (process names,
paths, arguments, DNS names, all from the nodes) inert is structural, not a habit:
`render(template, **values)` escapes every value that is not `Markup`, and only `render`,
`join` and the helpers here produce `Markup`. A forgotten call therefore shows escaped text,
never live HTML.

Escaping covers what HTML needs (``& < > " '``) and what a reader needs: bidirectional
override and isolate characters (U+202A-U+202E, U+2066-U+2069, and the marks U+200E, U+200F,
U+061C) are shown as visible ``⟨U+202E⟩`` tokens, so a name cannot display reversed
(``exe.txt`` that is really ``txt.exe``), and other control characters become ``\\xNN``.
`clip` bounds a string for list views with a visible marker of what was cut.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

from gadgetclient.textsafety import escape_control


class Markup(str):
    """A string that is already safe HTML (built by this module from escaped parts)."""

    __slots__ = ()


#: Bidirectional formatting characters (Unicode's "Bidi_Control"): reorder what follows them.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Zero-width characters that hide differences between two names that look the same.
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def neutralise(text: str) -> str:
    """Bidi controls and zero-width characters as visible tokens; controls as escapes."""
    text = _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)
    text = _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)
    return escape_control(text, keep="\n\t")


def escape(value: Any) -> Markup:
    """`value` as HTML text: Markup passes through, anything else is neutralised and escaped."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(neutralise(str(value)), quote=True))


def render(template: str, **values: Any) -> Markup:
    """`template` with ``{name}`` fields filled by escaped values (``{{``/``}}`` are braces).

    The template itself is trusted (a literal in this package); the values never are.
    """
    return Markup(template.format_map({k: escape(v) for k, v in values.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    """Escaped parts (Markup stays as it is) joined by a trusted separator."""
    return Markup(sep.join(escape(p) for p in parts))


#: Longest text shown in a list cell before it is cut (a 100 KB argument must not stretch a
#: table row); the detail page shows the whole value in a scrolling block.
LIST_TEXT_LIMIT = 160


def clip(text: str, limit: int = LIST_TEXT_LIMIT) -> Markup:
    """`text` cut to `limit` characters with a visible marker naming what was left out."""
    if len(text) <= limit:
        return escape(text)
    return render(
        '{head}<span class="cut">…[{n} more chars]</span>', head=text[:limit], n=len(text) - limit
    )


#: The only URL schemes a link built from data may use; anything else (javascript:, data:)
#: is rendered as text. Links in pages are built from the console's own paths or MITRE ids.
_SAFE_URL = re.compile(r"^(?:https://|/)[^\s\"'<>]*$")


def link(href: str, text: Any, *, cls: str = "") -> Markup:
    """An ``<a>`` whose href is checked: only https: and same-site paths become links."""
    if not _SAFE_URL.match(href) or href.startswith("//"):
        return escape(text)
    if cls:
        return render('<a href="{h}" class="{c}">{t}</a>', h=href, c=cls, t=text)
    return render('<a href="{h}">{t}</a>', h=href, t=text)
