"""Scheduled changes (`/v1/schedules`): made and cancelled with admin keys, read with results keys.

A schedule enables, disables or replaces a flag, or starts or stops an experiment, at `dueAt`; the
executors (flagd.schedules.executor) run it exactly once and record the result here and in the audit log.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.errors import NotFound
from flagd.http.body import expect_object, read_json
from flagd.http.params import INT64_MAX, choice_param, int_param, shown
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.schedules.model import STATUSES, read_request
from flagd.schedules.repository import ScheduleRepository
from flagd.schedules.service import ScheduleService
from flagd.state import server_state

_MEMBERS = ("action", "target", "dueAt")
_OPTIONAL = ("definition", "allowPast")


@requires(Scope.ADMIN)
async def create_schedule(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    body = expect_object(
        await read_json(request, state.settings.max_body_bytes), required=_MEMBERS, optional=_OPTIONAL
    )
    async with state.pool.acquire() as conn, conn.transaction():
        wanted = read_request(body, await ScheduleRepository(conn).now())
        schedule = await ScheduleService(conn, principal.actor).create(wanted)
    return OrjsonResponse(
        schedule.to_json(), status_code=201, headers={"Location": f"/v1/schedules/{schedule.id}"}
    )


@requires(Scope.RESULTS)
async def list_schedules(request: Request, principal: Principal) -> Response:
    limit = int_param(request, "limit", low=1, high=1000) or 100
    before = int_param(request, "before", low=1)
    status = choice_param(request, "status", STATUSES)
    async with server_state(request).pool.acquire() as conn:
        found = await ScheduleRepository(conn).page(status=status, before_id=before, limit=limit)
    body: dict[str, Any] = {"schedules": [schedule.to_json() for schedule in found]}
    if len(found) == limit:
        query = f"&status={status}" if status else ""
        body["next"] = f"/v1/schedules?limit={limit}&before={found[-1].id}{query}"
    return OrjsonResponse(body)


@requires(Scope.RESULTS)
async def get_schedule(request: Request, principal: Principal) -> Response:
    schedule_id = _schedule_id(request)
    async with server_state(request).pool.acquire() as conn:
        schedule = await ScheduleRepository(conn).get(schedule_id)
    if schedule is None:
        raise NotFound(f"schedule {schedule_id} does not exist", code="schedule_not_found")
    return OrjsonResponse(schedule.to_json())


@requires(Scope.ADMIN)
async def cancel_schedule(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    schedule_id = _schedule_id(request)
    async with state.pool.acquire() as conn, conn.transaction():
        schedule = await ScheduleService(conn, principal.actor).cancel(schedule_id)
    return OrjsonResponse(schedule.to_json())


def _schedule_id(request: Request) -> int:
    """The schedule id of the path; one that no schedule could have is simply not found."""
    raw: str = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= INT64_MAX):
        raise NotFound(
            f"schedule {shown(raw)} does not exist: schedule ids are whole numbers from 1",
            code="schedule_not_found",
        )
    return int(raw)


routes = [
    resource("/v1/schedules", GET=list_schedules, POST=create_schedule),
    resource("/v1/schedules/{id}", GET=get_schedule),
    resource("/v1/schedules/{id}/cancel", POST=cancel_schedule),
]
