"""Data-health alarms (results scope): `GET /v1/data-health`, and the page /data-health.

    GET /v1/data-health?state=open&event=signup&limit=100

`state` is open or resolved (default both, open first), `event` one event name, `limit` 1 to 500 (default 100).
The alarms come from the detector (flagd.health.detector); the page is a bounded table rendered where it is
asked for (at most `limit` rows, like the message pages), the API the same rows as JSON.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.errors import InvalidParameter
from flagd.health.alarms import Alarm, list_alarms
from flagd.health.progress import read_progress
from flagd.http.params import choice_param, int_param, shown, text_param
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.identifiers import is_key
from flagd.state import server_state
from flagd.web import pages
from flagd.web.render import render

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


async def _alarms(request: Request) -> tuple[list[Alarm], dict[str, Any]]:
    state = choice_param(request, "state", ("open", "resolved"))
    event = text_param(request, "event")
    if event is not None and not is_key(event):
        raise InvalidParameter(f"event must be an event name (letters, digits, . _ : -), got {shown(event)}")
    limit = int_param(request, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
    async with server_state(request).pool.acquire() as conn:
        alarms = await list_alarms(conn, state=state, event=event, limit=limit)
        progress = await read_progress(conn)
    judged = progress.judged_hour if progress else None
    return alarms, {"judgedHour": judged.isoformat() if judged else None}


@requires(Scope.RESULTS)
async def get_data_health(request: Request, principal: Principal) -> Response:
    alarms, detector = await _alarms(request)
    return OrjsonResponse({"alarms": [a.wire() for a in alarms], "detector": detector})


async def data_health_page(request: Request) -> Response:
    session = await pages.find_page_session(request)
    if session is None:
        return pages.login_redirect(request)
    try:
        alarms, detector = await _alarms(request)
    except InvalidParameter as exc:
        return pages.message("Bad parameter", exc.message, 400, session)
    body = render("data_health.html", session=session, alarms=alarms, judged_hour=detector["judgedHour"])
    return HTMLResponse(body, headers=pages.HEADERS)


routes = [
    resource("/v1/data-health", GET=get_data_health),
    resource("/data-health", GET=data_health_page),
]
