"""Webhooks (`/v1/webhooks`): admin keys change them, results keys read them and their delivery log.

POST   /v1/webhooks                  create (the generated secret is in this answer only)
GET    /v1/webhooks                  list
GET    /v1/webhooks/{id}             one, with how many deliveries are pending, delivered, failed
PATCH  /v1/webhooks/{id}             change the members given (rotateSecret: a new secret, shown once)
DELETE /v1/webhooks/{id}             delete, with what it still owed
GET    /v1/webhooks/{id}/deliveries  the last attempts, newest first
POST   /v1/webhooks/{id}/test        send a signed `webhook.test` now and say what the receiver answered
"""

from __future__ import annotations

import contextlib
from uuid import UUID

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.errors import NotFound
from flagd.http.body import expect_object, read_json
from flagd.http.params import int_param, shown
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.notify.definitions import CREATE_OPTIONAL, CREATE_REQUIRED, UPDATE_OPTIONAL
from flagd.notify.deliverer import ping
from flagd.notify.repository import WebhookRepository
from flagd.notify.service import MAX_WEBHOOKS, WebhookService
from flagd.state import server_state


def _webhook_id(request: Request) -> UUID:
    raw: str = request.path_params["id"]
    try:
        if len(raw) == 36:
            return UUID(raw)
    except ValueError:
        pass
    raise NotFound(
        f"webhook {shown(raw)} does not exist: webhook ids are UUIDs, as POST /v1/webhooks answered",
        code="webhook_not_found",
    )


@requires(Scope.ADMIN)
async def create_webhook(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    body = expect_object(
        await read_json(request, state.settings.max_body_bytes),
        required=CREATE_REQUIRED,
        optional=CREATE_OPTIONAL,
    )
    async with state.pool.acquire() as conn, conn.transaction():
        written = await WebhookService(conn, principal.actor).create(body)
    return OrjsonResponse(
        written.to_json(), status_code=201, headers={"Location": f"/v1/webhooks/{written.record.id}"}
    )


@requires(Scope.RESULTS)
async def list_webhooks(request: Request, principal: Principal) -> Response:
    async with server_state(request).pool.acquire() as conn:
        records = await WebhookRepository(conn).all(MAX_WEBHOOKS)
    return OrjsonResponse({"webhooks": [record.to_json() for record in records]})


@requires(Scope.RESULTS)
async def get_webhook(request: Request, principal: Principal) -> Response:
    webhook_id = _webhook_id(request)
    async with server_state(request).pool.acquire() as conn:
        record = await WebhookService(conn, principal.actor).get(webhook_id)
        counts = await WebhookRepository(conn).delivery_counts(webhook_id)
    return OrjsonResponse({**record.to_json(), "deliveries": counts})


@requires(Scope.ADMIN)
async def update_webhook(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    webhook_id = _webhook_id(request)
    body = expect_object(await read_json(request, state.settings.max_body_bytes), optional=UPDATE_OPTIONAL)
    async with state.pool.acquire() as conn, conn.transaction():
        written = await WebhookService(conn, principal.actor).update(webhook_id, body)
    state.webhooks.wake()  # re-enabled or pointed elsewhere: what it owes may be due now
    return OrjsonResponse(written.to_json())


@requires(Scope.ADMIN)
async def delete_webhook(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    webhook_id = _webhook_id(request)
    async with state.pool.acquire() as conn, conn.transaction():
        await WebhookService(conn, principal.actor).delete(webhook_id)
    return Response(status_code=204)


@requires(Scope.RESULTS)
async def deliveries(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    webhook_id = _webhook_id(request)
    limit = int_param(request, "limit", low=1, high=10_000) or 50
    async with state.pool.acquire() as conn:
        await WebhookService(conn, principal.actor).get(webhook_id)
        repository = WebhookRepository(conn)
        counts = await repository.delivery_counts(webhook_id)
        attempts = await repository.attempts(webhook_id, limit)
    return OrjsonResponse({"deliveries": counts, "attempts": [attempt.to_json() for attempt in attempts]})


@requires(Scope.ADMIN)
async def test_webhook(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    webhook_id = _webhook_id(request)
    async with state.pool.acquire() as conn:
        record = await WebhookService(conn, principal.actor).get(webhook_id)
    attempt, outcome = await ping(state.webhooks.sender, record)
    async with state.pool.acquire() as conn:
        with contextlib.suppress(asyncpg.ForeignKeyViolationError):  # deleted meanwhile: no log to keep
            await WebhookRepository(conn).log_attempt(webhook_id, attempt, state.settings.webhook_log_size)
    return OrjsonResponse({**attempt.to_json(), "delivered": outcome.delivered})


routes = [
    resource("/v1/webhooks", GET=list_webhooks, POST=create_webhook),
    resource("/v1/webhooks/{id}", GET=get_webhook, PATCH=update_webhook, DELETE=delete_webhook),
    resource("/v1/webhooks/{id}/deliveries", GET=deliveries),
    resource("/v1/webhooks/{id}/test", POST=test_webhook),
]
