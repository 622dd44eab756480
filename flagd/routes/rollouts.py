"""Rollouts: started and moved by admin keys, read by results keys.

POST /v1/rollouts starts one (its definition as in flags as code); each is read with its stage, its share
over time, the guardrails with their always-valid intervals at the monitor's latest look, and the
transition log. pause, resume, advance and rollback move it by hand, each in one transaction, with
an optional reason.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.service import check_key
from flagd.errors import InvalidParameter, NotFound
from flagd.http.body import expect_object, has_body, read_json
from flagd.http.params import path_key
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.service import Move, RolloutService
from flagd.rollouts.wire import detail, summary
from flagd.state import server_state

MAX_REASON = 500
MAX_KEY = 200


@requires(Scope.RESULTS)
async def list_rollouts(request: Request, principal: Principal) -> Response:
    async with server_state(request).pool.acquire() as conn:
        rows = await RolloutRepository(conn).all()
    return OrjsonResponse({"rollouts": [summary(row) for row in rows]})


@requires(Scope.RESULTS)
async def get_rollout(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "rollout")
    async with server_state(request).pool.acquire() as conn:
        row = await RolloutRepository(conn).get(key)
        if row is None:
            raise NotFound(f'rollout "{key}" does not exist', code="rollout_not_found")
        return OrjsonResponse(await detail(conn, row))


@requires(Scope.ADMIN)
async def start_rollout(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    body = expect_object(
        await read_json(request, state.settings.max_body_bytes), required=("key", "definition")
    )
    key = body["key"]
    check_key(key, "rollout key")
    if len(key) > MAX_KEY:
        raise InvalidParameter(f"a rollout key has at most {MAX_KEY} characters; got {len(key)}")
    if not isinstance(body["definition"], dict):
        raise InvalidParameter(
            "definition must be the rollout's definition, a JSON object as in flags as code"
        )
    async with state.pool.acquire() as conn, conn.transaction():
        row, version = await RolloutService(conn, principal.actor).start(key, body["definition"])
    await state.config.refresh_after_write()
    return OrjsonResponse({**summary(row), "configVersion": version}, status_code=201)


def _move(move: Move) -> Any:
    @requires(Scope.ADMIN)
    async def moved(request: Request, principal: Principal) -> Response:
        state = server_state(request)
        key = path_key(request, "key", "rollout")
        reason = f"{move} by hand"
        if has_body(request):
            body = expect_object(
                await read_json(request, state.settings.max_body_bytes), optional=("reason",)
            )
            given = body.get("reason", reason)
            if not isinstance(given, str) or not 1 <= len(given) <= MAX_REASON:
                raise InvalidParameter(f"reason must be text of 1 to {MAX_REASON} characters")
            reason = given
        async with state.pool.acquire() as conn, conn.transaction():
            result = await RolloutService(conn, principal.actor).move(key, move, reason=reason)
        assert result is not None, "a move by hand is made from the current version"
        await state.config.refresh_after_write()
        row, version = result
        return OrjsonResponse({**summary(row), "configVersion": version})

    moved.__name__ = f"{move}_rollout"
    return moved


routes = [
    resource("/v1/rollouts", GET=list_rollouts, POST=start_rollout),
    resource("/v1/rollouts/{key}", GET=get_rollout),
    resource("/v1/rollouts/{key}/pause", POST=_move("pause")),
    resource("/v1/rollouts/{key}/resume", POST=_move("resume")),
    resource("/v1/rollouts/{key}/advance", POST=_move("advance")),
    resource("/v1/rollouts/{key}/rollback", POST=_move("rollback")),
]
