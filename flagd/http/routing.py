"""One route per path, whatever methods it serves.

Starlette answers 405 from the first route whose path matches, so two routes on one
path would each announce only their own methods in `Allow`. `resource` builds a single
route that dispatches on the method, so `Allow` always lists every method of the path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


def resource(path: str, **handlers: Handler) -> Route:
    """A route for `path`: resource("/x", GET=read, PUT=write)."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])

    async def dispatch(request: Request) -> Response:
        return await by_method[request.method](request)

    dispatch.__name__ = "_".join(handler.__name__ for handler in handlers.values())
    return Route(path, dispatch, methods=sorted(by_method))
