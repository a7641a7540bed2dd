"""`Status` error bodies exactly as the API server shapes them (what `ApiException.body` holds)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.standins.kube_resources import ResourceType
from tests.standins.kube_schema import Cause

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class StatusError(Exception):
    """Raised inside handlers; rendered as a `Status` response."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out

    def response(self) -> web.Response:
        return web.Response(
            status=self.code, text=json.dumps(self.body()), content_type="application/json"
        )


def _details(rtype: ResourceType, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "kind": rtype.plural}
    if rtype.group:
        out["group"] = rtype.group
    return out


def not_found(rtype: ResourceType, name: str) -> StatusError:
    return StatusError(404, f'{rtype.qualified} "{name}" not found', details=_details(rtype, name))


def already_exists(rtype: ResourceType, name: str) -> StatusError:
    return StatusError(
        409,
        f'{rtype.qualified} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(rtype, name),
    )


def conflict(rtype: ResourceType, name: str) -> StatusError:
    return StatusError(
        409,
        f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details=_details(rtype, name),
    )


def invalid(rtype: ResourceType, name: str, causes: list[Cause]) -> StatusError:
    rendered = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    details: dict[str, Any] = {"name": name, "kind": rtype.kind}
    if rtype.group:
        details["group"] = rtype.group
    details["causes"] = [c.to_dict() for c in causes]
    return StatusError(422, f'{kind} "{name}" is invalid: {summary}', details=details)


def gone(message: str) -> StatusError:
    return StatusError(410, message, reason="Expired")
