"""The single-flag OFREP evaluation, answered in front of Starlette's middleware stack.

POST /ofrep/v1/evaluate/flags/{key} is most of what a server answers. Through the stack it passes seven ASGI
layers (Starlette's error and exception middleware, the metrics, the access log, CORS, the router, the route),
each a coroutine and most a wrapper of `send`, per request: measured with bench/ofrep.py, they cost more than
the evaluation. `FastLane` answers that request in one coroutine that does what those layers do for it, the
same way and with the same shared pieces:

- metrics: `flagd_http_requests` and `flagd_http_request_seconds` under the route's template;
- the access log: the same line and the same X-Request-ID header (when the log is on);
- CORS: `Vary: Origin`, and Access-Control-Allow-Origin / -Expose-Headers for an allowed origin
  (flagd.http.cors; preflights are OPTIONS and still go through the stack);
- errors: whatever the evaluation raises is answered from the one table (flagd.http.handlers); an unexpected
  error is re-raised after its 500, as Starlette's ServerErrorMiddleware does, so uvicorn logs its traceback.

Every other request (another method or path, a key with a slash) goes to the stack unchanged.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from flagd.http.access_log import REQUEST_ID_HEADER, AccessLogWriter, request_id_of
from flagd.http.cors import allowed_origin, answer_headers
from flagd.http.handlers import answer_to
from flagd.metrics import observe_request
from flagd.routes.ofrep import evaluate_one

ROUTE = "/ofrep/v1/evaluate/flags/{key}"
_PREFIX = "/ofrep/v1/evaluate/flags/"
_JSON = (b"content-type", b"application/json")


class FastLane:
    def __init__(self, app: ASGIApp, access_log: AccessLogWriter | None) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        key = path[len(_PREFIX) :]
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(_PREFIX)
            or not key
            or "/" in key
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        unexpected: Exception | None = None
        try:
            status, body = await evaluate_one(scope, receive, key)
            headers = [_JSON, (b"content-length", str(len(body)).encode())]
        except Exception as exc:
            response, is_unexpected = await answer_to(scope, exc)
            status, body, headers = response.status_code, bytes(response.body), list(response.raw_headers)
            unexpected = exc if is_unexpected else None
        log = self.access_log
        request_id = request_id_of(scope) if log is not None else ""
        if log is not None:
            headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
        headers += answer_headers(scope, allowed_origin(scope))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            seconds = time.perf_counter() - started
            observe_request(ROUTE, "POST", status, seconds)
            if log is not None:
                log.record(
                    scope.get("client"),
                    "POST",
                    path,
                    scope.get("http_version", "1.1"),
                    status,
                    seconds,
                    request_id,
                )
        if unexpected is not None:
            raise unexpected
