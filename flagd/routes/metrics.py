"""`GET /metrics`: Prometheus text format, every worker added up (flagd.metrics).

FLAGD_METRICS chooses who may read it: `key` (default) asks for an admin key, `open` answers anyone
(for a scraper on a private network; or set FLAGD_METRICS_PORT to serve them on a port of their own),
`off` answers 404.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.keys import Scope
from flagd.errors import NotFound
from flagd.http.routing import resource
from flagd.metrics import CONTENT_TYPE, exposition
from flagd.state import server_state


async def get_metrics(request: Request) -> Response:
    state = server_state(request)
    mode = state.settings.metrics
    if mode == "off":
        raise NotFound("metrics are off on this server (FLAGD_METRICS=off)")
    if mode == "key":
        await state.auth.authenticate(request, Scope.ADMIN)
    return Response(exposition(), media_type=CONTENT_TYPE)


routes = [resource("/metrics", GET=get_metrics)]
