"""The QA view of one unit (issue 25): its newest events with the plan's verdicts, as JSON and as a page.

    GET /v1/events/live?unit=U&after=CURSOR&limit=N   results or admin key
    GET /events/live?unit=U                           the page (a session from /login)
    GET /events/live/rows?unit=U&after=CURSOR         what the page polls every 2 s (the same session)

`unit` is required (at most 256 characters), `after` the `cursor` of the previous answer (none: the unit's
newest events of the last hour), `limit` 1 to 200 (default 100). What one read does and costs is
flagd.tracking.live's; the page is a form and an empty list that flagd/web/static/live-events.js fills.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.errors import InvalidParameter, ServiceUnavailable, Unauthorized
from flagd.http.params import int_param
from flagd.http.responses import OrjsonResponse, error_response
from flagd.http.routing import resource
from flagd.state import server_state
from flagd.tracking.check import UnplannedMode
from flagd.tracking.live import MAX_LIMIT, MAX_UNIT, LiveQuery, read_live
from flagd.web import pages
from flagd.web.render import render


def _query(request: Request) -> LiveQuery:
    params = request.query_params
    limit = int_param(request, "limit", low=1, high=MAX_LIMIT)
    return LiveQuery.parse(params.get("unit"), params.get("after"), limit)


MAX_READS_IN_FLIGHT = 1
"""Live reads one worker runs at once: a first read scans the hour's events (no index on unit), and back-to-back
reads from two clients kept PostgreSQL on both cores of a 2-core machine (bench/live_events.py --beside-ofrep)."""
_in_flight = 0


async def _live(request: Request) -> dict[str, Any]:
    global _in_flight
    query = _query(request)
    state = server_state(request)
    if _in_flight >= MAX_READS_IN_FLIGHT:
        raise ServiceUnavailable(
            "Another live read is running on this worker; ask again in a second (the page does so by itself).",
            code="live_busy",
            headers={"Retry-After": "1"},
        )
    _in_flight += 1
    try:
        async with state.pool.acquire() as conn:
            page = await read_live(
                conn,
                query,
                plan=state.config.snapshot.tracking,
                unplanned=cast(UnplannedMode, state.settings.events_unplanned),
                now=datetime.now(UTC),
                max_age_days=state.settings.events_max_age_days,
            )
    finally:
        _in_flight -= 1
    return page.to_json()


@requires(Scope.RESULTS)
async def get_live(request: Request, principal: Principal) -> Response:
    return OrjsonResponse(await _live(request))


async def live_rows(request: Request) -> Response:
    """The page's poll: the same answer as GET /v1/events/live, for the page's session instead of a key."""
    if await pages.find_page_session(request) is None:
        return error_response(
            Unauthorized("The page's session ended (or was never opened): reload the page and log in again.")
        )
    try:
        body = await _live(request)
    except (InvalidParameter, ServiceUnavailable) as exc:
        return error_response(exc)
    return OrjsonResponse(body, headers={"Cache-Control": "no-store"})


async def live_page(request: Request) -> Response:
    session = await pages.find_page_session(request)
    if session is None:
        return pages.login_redirect(request)
    unit = request.query_params.get("unit") or None
    if unit is not None:
        try:
            LiveQuery.parse(unit, None, None)
        except InvalidParameter as exc:
            return pages.message("Bad unit", exc.message, 400, session)
    body = render("live_events.html", session=session, unit=unit, max_unit=MAX_UNIT)
    return HTMLResponse(body, headers=pages.HEADERS)


routes = [
    resource("/v1/events/live", GET=get_live),
    resource("/events/live", GET=live_page),
    resource("/events/live/rows", GET=live_rows),
]
