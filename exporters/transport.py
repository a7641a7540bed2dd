"""HTTP plumbing shared by the webhook and AlertManager exporters.

- `classify`: the retry decision from a status code. 2xx is success; 408 (request timeout),
  429 (too many requests) and 5xx are transient (the same request can succeed later); every
  other status is permanent (the receiver rejected the content or our credentials, and sending
  it again would be rejected again, so retrying would only delay the alerts behind it).
- `client_ssl`: the TLS context from a CA bundle, or verification off for tests.
- `SecretFile`: a token or password read from a file and re-read when the file changes
  (Kubernetes rotates projected tokens and updates mounted secrets in place). Its value is
  never logged; errors name the file, not the content.
- `probe`: a health check that opens (and closes) a TCP or TLS connection to the URL's host,
  for receivers that have no health endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from exporters.errors import ExporterError, SendError

#: Statuses worth retrying besides 5xx: the receiver asked us to come back later.
RETRYABLE_4XX = frozenset({408, 429})

#: Longest response body quoted in an error message: enough for a receiver's one-line reason.
MAX_QUOTED_BODY = 200


def classify(status: int, *, exporter: str, target: str, body: str = "") -> SendError | None:
    """None for success, else the `SendError` to raise (permanent or transient)."""
    if 200 <= status < 300:
        return None
    permanent = 400 <= status < 500 and status not in RETRYABLE_4XX
    reason = " ".join(body.split())[:MAX_QUOTED_BODY]
    return SendError(
        f"{target} answered HTTP {status}" + (f": {reason}" if reason else ""),
        exporter=exporter,
        permanent=permanent,
        status=status,
    )


def client_ssl(
    *, ca_file: Path | None, insecure: bool, exporter: str, field: str
) -> ssl.SSLContext | bool:
    """What aiohttp's connector takes: a context, or False to skip verification."""
    if insecure:
        return False
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ExporterError(
            f"cannot load CA bundle {ca_file}: {exc}", exporter=exporter, field=field
        ) from exc


class SecretFile:
    """A secret kept in a file; `read()` returns the current value (trailing newline removed)."""

    __slots__ = ("_mtime_ns", "_value", "label", "path")

    def __init__(self, path: Path, *, label: str) -> None:
        self.path = path
        #: What the secret is for (e.g. "header Authorization"): used in errors, never the value.
        self.label = label
        self._mtime_ns = -1
        self._value = ""

    def read(self, *, exporter: str) -> str:
        try:
            mtime_ns = self.path.stat().st_mtime_ns
            if mtime_ns != self._mtime_ns:
                self._value = self.path.read_text(encoding="utf-8").rstrip("\r\n")
                self._mtime_ns = mtime_ns
        except (OSError, UnicodeDecodeError) as exc:
            # Transient: a secret mount can appear or be fixed while the agent runs.
            raise SendError(
                f"cannot read the file for {self.label} ({self.path}): {exc}", exporter=exporter
            ) from exc
        return self._value


def make_session(*, ssl_setting: ssl.SSLContext | bool, timeout_s: float) -> aiohttp.ClientSession:
    """A session for one exporter: its own connection pool, so one receiver's stalled
    connections never hold another's."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_setting),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        raise_for_status=False,
    )


async def probe(url: str, *, ssl_setting: ssl.SSLContext | bool, timeout_s: float) -> None:
    """Open and close a connection to the URL's host and port; raise `OSError` or
    `TimeoutError` when that fails."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname or ""
    ctx: ssl.SSLContext | None = None
    if https:
        if isinstance(ssl_setting, ssl.SSLContext):
            ctx = ssl_setting
        elif ssl_setting:
            ctx = ssl.create_default_context()
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(timeout_s):
        _, writer = await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=host if ctx else None
        )
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
