"""Errors of the gadget client, rooted at `GadgetClientError`.

    GadgetClientError            any failure this package reports (carries `where`)
    ├── TargetError              a bad target string, TLS files, or an unreachable endpoint
    ├── SessionError             the server refused: too old, gadget rejected, bad params
    ├── StreamError              a RunGadget stream failed after it started
    └── CaptureError             a capture file that cannot be read or written

Third-party errors (`grpc.aio.AioRpcError`, `kubernetes` `ApiException`, `OSError`) are
translated where they happen (`raise TargetError(...) from exc`), so callers catch only these.
`str(error)` is one line fit for a terminal: what failed, where, and the server's own words.
"""

from __future__ import annotations


class GadgetClientError(Exception):
    """Base class. `where` names the target, gadget, file or parameter the error is about."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class TargetError(GadgetClientError):
    """The endpoint string is invalid, or nothing IG-like answers there."""


class SessionError(GadgetClientError):
    """The server answered but refused (version, gadget image, parameters)."""


class StreamError(GadgetClientError):
    """A running stream ended with an error; the source reconnects with back-off."""


class CaptureError(GadgetClientError):
    """A capture line or file is unusable (`where` is `file:line`)."""
