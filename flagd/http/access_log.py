"""One access-log line per request, with a request id, as a pure ASGI middleware.

A pure ASGI middleware (not BaseHTTPMiddleware) so that streaming responses such as
the server-sent-events feed pass through untouched, and the hot path pays only for a
clock read and one log call.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("flagd.access")

REQUEST_ID_HEADER = "x-request-id"
# A caller's request id is echoed only if it is short and printable, so it cannot forge log lines.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            client = scope.get("client")
            client_addr = f"{client[0]}:{client[1]}" if client else "-"
            logger.info(
                '%s "%s %s HTTP/%s" %d %.2fms id=%s',
                client_addr,
                scope["method"],
                scope["path"],
                scope.get("http_version", "1.1"),
                status,
                elapsed_ms,
                request_id,
                extra={
                    "client": client_addr,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed_ms, 3),
                    "request_id": request_id,
                },
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex
