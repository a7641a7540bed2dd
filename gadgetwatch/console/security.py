"""Who may read and write through the console, and the headers every answer carries.

- **People** log in with the console token (``--token-file``) or a user and password
  (``--basic-auth-file``, ``user:password`` lines, e.g. a Secret's key). The login sets a
  session cookie (HttpOnly, SameSite=Strict, Secure under TLS) holding the user and an expiry,
  signed with HMAC-SHA256 under a key made at start-up: nothing to store, and a restart logs
  everyone out. Scripts may send ``Authorization: Bearer <token>`` or Basic instead.
- **Agents** post alerts with ``Authorization: Bearer <ingest token>`` (``--ingest-token-file``;
  without it, the console token). The file may hold ``Bearer <token>``, the header value the
  agents' webhook ``headerFiles`` send, so one Secret key serves both. The ingest token opens
  nothing else: a node that leaks it can add alerts, not read them or write exceptions.
- **CSRF**: every form that writes carries a token, HMAC(key, session or user); a write without
  the right token, or whose ``Origin`` names another site, is refused (403). The session
  cookie's SameSite=Strict is a second line, not the only one.
- ``--insecure-no-auth`` turns authentication off, only on a loopback address, and logs a
  warning at start and on every page (a banner). CSRF tokens are still checked.

Every answer carries a strict Content-Security-Policy (scripts and styles only from the
console's own /static/, no inline script or style, no framing, forms only to itself), so even
a missed escape could not run script; violations are reported to ``/csp-report`` and counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

#: Session lifetime: a working day; after it the user logs in again.
SESSION_TTL_S = 12 * 3600
COOKIE = "gw_session"
#: Who sent the request, set by the auth middleware for every non-public path.
PRINCIPAL = web.RequestKey("principal", str)
#: Longest accepted user name, password or token (a file is not a place for megabytes).
MAX_SECRET = 4096

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "report-uri /csp-report"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class AuthConfigError(ValueError):
    """The credential files are missing, empty or unreadable."""


def read_token(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"{path}: cannot read the token: {exc}") from exc
    token = text.strip()
    # The agents' header file holds the whole header value; one Secret key serves both sides.
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token or len(token) > MAX_SECRET or any(c.isspace() for c in token):
        raise AuthConfigError(f"{path}: expected one token (no spaces) of 1-{MAX_SECRET} chars")
    return token


def read_users(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"{path}: cannot read the users: {exc}") from exc
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password or len(line) > MAX_SECRET:
            # The line number, never the line: it holds a password.
            raise AuthConfigError(f"{path}:{number}: expected user:password")
        users[user] = password
    if not users:
        raise AuthConfigError(f"{path}: no user:password line")
    return users


@dataclass(slots=True)
class Auth:
    """The credentials and the signing key of one console process."""

    token: str = ""
    users: dict[str, str] = field(default_factory=dict)
    ingest_token: str = ""
    disabled: bool = False
    secure_cookie: bool = False
    key: bytes = field(default_factory=lambda: os.urandom(32))
    clock: Callable[[], float] = time.time

    @property
    def ingest_tokens(self) -> tuple[str, ...]:
        return tuple(t for t in (self.ingest_token or self.token,) if t)

    # -- checking credentials ------------------------------------------------------------------

    def check_login(self, user: str, secret: str) -> str | None:
        """The principal for a login form's fields, or None. Constant-time comparisons."""
        if len(user) > MAX_SECRET or len(secret) > MAX_SECRET:
            return None
        if not user and self.token and hmac.compare_digest(secret.encode(), self.token.encode()):
            return "token"
        expected = self.users.get(user)
        if (
            user
            and expected is not None
            and hmac.compare_digest(secret.encode(), expected.encode())
        ):
            return f"user:{user}"
        return None

    def _from_header(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return self.check_login("", value.strip())
        if scheme.lower() == "basic" and value:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return self.check_login(user, password) if user else None
        return None

    def principal(self, request: web.Request) -> str | None:
        """Who sent `request` (session cookie or Authorization header), or None."""
        if self.disabled:
            return "anonymous"
        who = self._from_header(request)
        if who is not None:
            return who
        return self.check_session(request.cookies.get(COOKIE, ""))

    def check_ingest(self, request: web.Request) -> bool:
        if self.disabled:
            return True
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        token = value.strip().encode()
        return any(hmac.compare_digest(token, t.encode()) for t in self.ingest_tokens)

    # -- sessions and CSRF ---------------------------------------------------------------------

    def _sign(self, purpose: str, text: str) -> str:
        mac = hmac.new(self.key, f"{purpose}|{text}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def new_session(self, principal: str) -> str:
        payload = f"{principal}|{int(self.clock()) + SESSION_TTL_S}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{encoded}.{self._sign('session', encoded)}"

    def check_session(self, cookie: str) -> str | None:
        encoded, _, mac = cookie.partition(".")
        if not encoded or not mac or len(cookie) > MAX_SECRET:
            return None
        if not hmac.compare_digest(mac, self._sign("session", encoded)):
            return None
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            principal, _, expiry = payload.rpartition("|")
            if int(expiry) < self.clock():
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        return principal or None

    def csrf_token(self, request: web.Request) -> str:
        """The token a form must send back: bound to this session (or header identity)."""
        basis = request.cookies.get(COOKIE) or self.principal(request) or "login"
        return self._sign("csrf", basis)

    def check_csrf(self, request: web.Request, sent: str) -> bool:
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin != f"{request.scheme}://{request.host}":
            return False
        return bool(sent) and hmac.compare_digest(sent, self.csrf_token(request))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Any  # aiohttp's middleware protocol; the decorator gives the function its type

#: Paths answered without a login: the login page itself, static files (no data in them),
#: the liveness probe, CSP reports, and ingestion (which checks the ingest token itself).
PUBLIC_PREFIXES = ("/login", "/static/", "/healthz", "/csp-report", "/api/v1/alerts")


def auth_middleware(auth: Auth) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PUBLIC_PREFIXES):
            who = auth.principal(request)
            if who is None:
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    raise web.HTTPSeeOther(f"/login?next={_next(request)}")
                raise web.HTTPUnauthorized(
                    text="authentication required\n",
                    headers={"WWW-Authenticate": 'Basic realm="gadgetwatch console"'},
                )
            request[PRINCIPAL] = who
        response = await handler(request)
        return response

    return middleware


def _next(request: web.Request) -> str:
    from urllib.parse import quote

    return quote(request.path_qs, safe="")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer (pages, errors, the event stream, static files) carries the policy."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
