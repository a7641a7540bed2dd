"""Text that leaves the process: terminal escapes neutralised, credentials in URLs redacted.

Two kinds of strings reach a terminal, a log line or an HTTP answer without the agent having
written them: values from events and files (attacker- or operator-controlled), and URLs from
the configuration (which may carry `user:password@` or `?token=`). Both are handled here, once:

- `escape_control` turns every character that can rewrite what a person sees (C0/C1 controls,
  DEL, line/paragraph separators, and the Unicode bidirectional overrides behind "Trojan Source")
  into a visible ``\\xNN`` / ``\\uNNNN`` escape. Printable text, accents and CJK stay as they are.
- `redact_url` keeps what an operator needs to recognise an endpoint (scheme, host, port, path,
  query keys) and replaces the user information and every query value; `redact_urls` does the
  same for every URL inside a free text (an exception message, a log field).

It lives in the lowest package so every package and the composition root share one version.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: What replaces a secret. Visible, so a reader knows something was there.
REDACTED = "REDACTED"

#: Unicode bidirectional formatting characters: they reorder how the rest of a line displays.
_BIDI = frozenset(
    [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)],
)


def _unsafe(code: int) -> bool:
    return (
        code < 0x20
        or code == 0x7F
        or 0x80 <= code < 0xA0
        or code in (0x2028, 0x2029)
        or code in _BIDI
        or 0xD800 <= code < 0xE000  # lone surrogates (from undecodable bytes)
    )


#: Fast path: one regex finds whether anything needs escaping at all.
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def escape_control(value: str, *, keep: str = "") -> str:
    """`value` with every display-changing character escaped (except those in `keep`)."""
    if _UNSAFE_RE.search(value) is None:
        return value
    out = []
    for ch in value:
        code = ord(ch)
        if _unsafe(code) and ch not in keep:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def redact_url(url: str) -> str:
    """`url` without user information and query values (`https://REDACTED@h/p?token=REDACTED`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED  # not parseable: it cannot be shown safely either
    # Surgery on the original text rather than `urlunsplit`, which would normalise the rest
    # (`unix:///path` becomes `unix:/path`): only the secrets change.
    out = url
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        out = out.replace(parts.netloc, f"{REDACTED}@{host}", 1)
    if parts.fragment:
        out = out[: out.rindex("#")] + f"#{REDACTED}"
    if parts.query:
        query = "&".join(
            f"{pair.partition('=')[0]}={REDACTED}" if "=" in pair else REDACTED
            for pair in parts.query.split("&")
        )
        out = out.replace(f"?{parts.query}", f"?{query}", 1)
    return out


#: A URL inside free text: a scheme, `://`, then everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_urls(text: str) -> str:
    """`text` with every URL in it passed through `redact_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
