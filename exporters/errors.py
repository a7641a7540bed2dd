"""Errors of the exporters, rooted at `ExporterError`.

    ExporterError        anything this package reports (carries `exporter` and `field`)
    └── SendError        one `send` attempt failed; `permanent` says whether a retry can help

`Delivery` is the only caller that sees a `SendError`: it retries transient ones with backoff
and drops (and counts) the batch of a permanent one. Third-party errors (`OSError`,
`ssl.SSLError`, `aiohttp.ClientError`, `asyncio.TimeoutError`) are translated where they happen
(`raise SendError(...) from exc`). A configuration problem found while building an exporter
(an unreadable CA file, a missing environment variable) is a plain `ExporterError` whose
`field` is the dotted configuration key, e.g. `exporters.http.caFile`.

Messages never contain secrets: header values, tokens and passwords are named, not shown, and
every URL in a message (ours, or one quoted by a third-party exception) goes through
`redact_urls`, so `user:password@` and query values never reach a log, a metric or `/readyz`.
"""

from __future__ import annotations

from gadgetclient.textsafety import redact_urls


class ExporterError(Exception):
    """Base class. `exporter` names the exporter; `field` the configuration key, if any."""

    def __init__(self, message: str, *, exporter: str = "", field: str = "") -> None:
        message = redact_urls(message)
        super().__init__(message)
        self.message = message
        self.exporter = exporter
        self.field = field

    def __str__(self) -> str:
        where = self.field or self.exporter
        return f"{where}: {self.message}" if where else self.message


class SendError(ExporterError):
    """A delivery attempt failed.

    `permanent` is true when sending the same batch again cannot succeed (HTTP 4xx other than
    408 and 429: the receiver rejected the content or our credentials). `status` is the HTTP
    status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        exporter: str = "",
        permanent: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message, exporter=exporter)
        self.permanent = permanent
        self.status = status

    @property
    def reason(self) -> str:
        """Bounded label value for the failure counters."""
        return "permanent" if self.permanent else "transient"
