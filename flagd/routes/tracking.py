"""The tracking plan as the server applies it, what it counted, and what really arrives (admin keys).

    GET /v1/admin/events/plan?days=7     the compiled plan, the unplanned-events setting, violation counts
    GET /v1/admin/events/schema?event=N  the observed schema per event name and its differences from the plan

The plan itself is written as flags as code (the `events:` section of PUT /v1/admin/flag-set, `flagd apply`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.http.params import int_param, text_param
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.state import server_state
from flagd.tracking.drift import differences
from flagd.tracking.repository import TrackingRepository
from flagd.tracking.wire import observed_json, plan_json, violations_json

MAX_DAYS = 92
MAX_ROWS = 10_000
MAX_NAMES = 1_000


@requires(Scope.ADMIN)
async def get_plan(request: Request, principal: Principal) -> Response:
    days = int_param(request, "days", low=1, high=MAX_DAYS) or 7
    state = server_state(request)
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    async with state.pool.acquire() as conn:
        counts = await TrackingRepository(conn).violations(since, MAX_ROWS)
    body = plan_json(state.config.snapshot.tracking.plan, state.settings.events_unplanned)
    body.update(
        configVersion=state.config.snapshot.version,
        since=since.isoformat(),
        violations=violations_json(counts),
        truncated=len(counts) >= MAX_ROWS,
    )
    return OrjsonResponse(body)


@requires(Scope.ADMIN)
async def get_schema(request: Request, principal: Principal) -> Response:
    name = text_param(request, "event")
    state = server_state(request)
    async with state.pool.acquire() as conn:
        observed = await TrackingRepository(conn).observed(name, MAX_NAMES)
    plan = state.config.snapshot.tracking.plan
    return OrjsonResponse(
        {
            "events": observed_json(observed),
            "differences": [d.to_json() for d in differences(plan, observed)],
            "truncated": len(observed) >= MAX_NAMES,
        }
    )


routes = [
    resource("/v1/admin/events/plan", GET=get_plan),
    resource("/v1/admin/events/schema", GET=get_schema),
]
