"""CORS for the endpoints a browser page calls with a client key, and for no other.

The client endpoints are OFREP's bulk and single evaluation, POST /v1/events and the client change stream
(`CLIENT_PATHS`). On them:

- a preflight (`OPTIONS`) is answered 204 here, before routing and authentication (it carries no key), and
  allowed when its `Origin` is the server's (FLAGD_CORS_ORIGINS) or any client key's (flagd.auth.client keeps
  those in memory, so a preflight costs no query): methods GET and POST, the request headers
  Authorization, Content-Type and If-None-Match, cached by the browser for PREFLIGHT_MAX_AGE seconds;
- every other answer (200, 304, errors, 429, and a 500 of a handler that failed) to an allowed origin echoes
  it in Access-Control-Allow-Origin and exposes ETag and Retry-After, except an answer refused for its
  origin (403 origin_not_allowed: the key does not allow it, though another key does);
- every answer says `Vary: Origin`, since what it allows depends on the Origin it came with.

Credentials are never allowed: a client key travels in a header, never in a cookie. Every other endpoint
sends no CORS header at all, so browsers refuse cross-origin calls to them, and `OPTIONS` there is 405 — but
for the public files under /static (flagd.web.pages), which say `Access-Control-Allow-Origin: *` themselves so
that a page on any origin can import flagd-web.js from the server.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagd.auth.client import ADMITTED_ORIGIN, REFUSED_ORIGIN, ClientAccess, request_origin
from flagd.http.handlers import unexpected_error_response

CLIENT_PATHS = frozenset({"/ofrep/v1/evaluate/flags", "/v1/events", "/v1/client/stream"})
_ONE_FLAG = "/ofrep/v1/evaluate/flags/"
PREFLIGHT_MAX_AGE = 600
ALLOWED_METHODS = b"GET, POST"
ALLOWED_HEADERS = b"Authorization, Content-Type, If-None-Match"
EXPOSED_HEADERS = b"ETag, Retry-After"
_VARY = (b"vary", b"Origin")


def is_client_path(path: str) -> bool:
    if path in CLIENT_PATHS:
        return True
    key = path.removeprefix(_ONE_FLAG)
    return key != path and bool(key) and "/" not in key


class CorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_client_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        allowed = allowed_origin(scope)
        if scope["method"] == "OPTIONS":
            await _preflight(send, allowed)
            return
        started = False

        async def send_allowed(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), *answer_headers(scope, allowed)],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_allowed)
        except Exception:
            # Starlette answers an unexpected error outside every middleware, without these headers; the same
            # answer is sent here instead (its ServerErrorMiddleware then sees it sent and only logs the error).
            if not started:
                await unexpected_error_response()(scope, receive, send_allowed)
            raise


def allowed_origin(scope: Scope) -> str | None:
    """The request's Origin when the server or any client key allows it (known in memory, no query)."""
    origin = request_origin(scope)
    if origin is None:
        return None
    server = scope.get("state", {}).get("server")
    access: ClientAccess | None = server.auth.client if server is not None else None
    return origin if access is not None and access.allows_anywhere(origin) else None


def answer_headers(scope: Scope, allowed: str | None) -> list[tuple[bytes, bytes]]:
    """The CORS headers of an answer (not a preflight) on a client path, given `allowed_origin(scope)`."""
    # A key created after the origins in memory were read is admitted from its origin all the same.
    echoed = allowed or scope.get(ADMITTED_ORIGIN)
    if echoed is None or scope.get(REFUSED_ORIGIN):
        return [_VARY]
    return [
        _VARY,
        (b"access-control-allow-origin", echoed.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSED_HEADERS),
    ]


async def _preflight(send: Send, origin: str | None) -> None:
    headers = [_VARY, (b"content-length", b"0")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", ALLOWED_HEADERS),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
