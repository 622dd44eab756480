"""The one table that maps exceptions to HTTP responses in the error model.

Every response that is not a success has the body
`{"error": {"code": "<stable_code>", "message": "<what to fix>"}}` (plus `details`
for validation problems), including Starlette's own 404 and 405.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ExceptionHandler, Scope

from flagd import error_codes, errors
from flagd.http.responses import error_response
from flagd.storage.pool import DATABASE_UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)


async def _flagd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.FlagdError)
    return error_response(exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(_translate_http_exception(request, exc))


def _translate_http_exception(request: Request, exc: HTTPException) -> errors.FlagdError:
    method, path = request.method, request.url.path
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 404:
        return errors.NotFound(f"No endpoint at {method} {path}; check the path against the API reference.")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return errors.MethodNotAllowed(
            f"{method} is not allowed on {path}; use one of: {allowed}.", headers=headers
        )
    return errors.FlagdError(
        exc.detail, code=error_codes.generic(exc.status_code), status=exc.status_code, headers=headers
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable during %s %s: %r", request.method, request.url.path, exc)
    return error_response(
        errors.DatabaseUnavailable("the database is not reachable right now; retry shortly")
    )


CLIENT_CLOSED_REQUEST = 499
"""What the metrics and the access log record for a request whose client went away (nginx's code); nothing is
sent."""


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    # Not a server failure: one line instead of uvicorn's traceback of "Exception in ASGI application". The
    # route's template, not the path the client sent, so the line holds nothing a client wrote.
    route = getattr(request.scope.get("route"), "path", "(unmatched)")
    logger.info(
        "%s %s: the client closed the connection before the request was complete", request.method, route
    )
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def unexpected_error_response() -> Response:
    """The answer to a request whose handler failed unexpectedly (its error is logged, never returned)."""
    return error_response(
        errors.FlagdError("The server failed to handle this request; the error has been logged.")
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after this, so the traceback is logged by uvicorn.
    return unexpected_error_response()


async def answer_to(scope: Scope, exc: Exception) -> tuple[Response, bool]:
    """What the table below answers to `exc` raised by a plain ASGI handler outside Starlette's middleware
    (flagd.http.fast_lane), and whether it is unexpected: then the caller re-raises it after answering, as
    Starlette's ServerErrorMiddleware does, so its traceback is logged."""
    for cls in type(exc).__mro__:
        handler = _PLAIN_HANDLERS.get(cls)
        if handler is not None:
            return await handler(Request(scope), exc), cls is Exception
    return unexpected_error_response(), True  # not reached: the table has a handler for Exception


_PLAIN_HANDLERS: Mapping[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    errors.FlagdError: _flagd_error,
    HTTPException: _http_exception,
    **dict.fromkeys(DATABASE_UNAVAILABLE_ERRORS, _database_unavailable),
    ClientDisconnect: _client_disconnected,
    Exception: _unexpected,
}

EXCEPTION_HANDLERS: Mapping[type[Exception] | int, ExceptionHandler] = {
    cls: handler for cls, handler in _PLAIN_HANDLERS.items()
}
"""The table, as Starlette takes it."""
