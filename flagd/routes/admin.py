"""The admin API (`/v1/admin`, admin keys only): flags, the whole flag set, the audit log.

A flag is addressed as a resource with a version; its ETag is that version. Updates
and deletes must say which version they change (`If-Match`), so two editors never
overwrite each other silently. After a write commits, the worker that made it reloads
its snapshot before answering (read-your-writes); other workers follow on NOTIFY.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.audit import AuditRepository
from flagd.config.repository import ConfigRepository, FlagRecord
from flagd.config.service import FlagService
from flagd.errors import InvalidParameter, NotFound, PreconditionRequired
from flagd.http.body import expect_object, read_json
from flagd.http.responses import OrjsonResponse
from flagd.state import server_state

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


@requires(Scope.ADMIN)
async def list_flags(request: Request, principal: Principal) -> Response:
    async with server_state(request).pool.acquire() as conn:
        flags = await ConfigRepository(conn).list_flags()
    return OrjsonResponse({"flags": [flag.to_json() for flag in flags]})


@requires(Scope.ADMIN)
async def create_flag(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    body = expect_object(
        await read_json(request, state.settings.max_body_bytes), required=("key", "definition")
    )
    key = body["key"]
    if not isinstance(key, str):
        raise InvalidParameter("key must be a string")
    async with state.pool.acquire() as conn, conn.transaction():
        record = await FlagService(conn, principal.actor).create_flag(key, body["definition"])
    await state.config.refresh()
    return _flag_response(record, status=201, location=f"/v1/admin/flags/{key}")


@requires(Scope.ADMIN)
async def get_flag(request: Request, principal: Principal) -> Response:
    key = request.path_params["key"]
    async with server_state(request).pool.acquire() as conn:
        record = await ConfigRepository(conn).get_flag(key)
    if record is None:
        raise NotFound(f'flag "{key}" does not exist', code="flag_not_found")
    return _flag_response(record)


@requires(Scope.ADMIN)
async def update_flag(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    key = request.path_params["key"]
    expected = _if_match(request)
    body = expect_object(await read_json(request, state.settings.max_body_bytes), required=("definition",))
    async with state.pool.acquire() as conn, conn.transaction():
        record = await FlagService(conn, principal.actor).update_flag(key, body["definition"], expected)
    await state.config.refresh()
    return _flag_response(record)


@requires(Scope.ADMIN)
async def delete_flag(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    key = request.path_params["key"]
    expected = _if_match(request)
    async with state.pool.acquire() as conn, conn.transaction():
        await FlagService(conn, principal.actor).delete_flag(key, expected)
    await state.config.refresh()
    return Response(status_code=204)


@requires(Scope.ADMIN)
async def get_flag_set(request: Request, principal: Principal) -> Response:
    async with server_state(request).pool.acquire() as conn:
        stored = await ConfigRepository(conn).load()
    return OrjsonResponse(stored.document(), headers={"ETag": f'"cfg-{stored.version}"'})


@requires(Scope.ADMIN)
async def apply_flag_set(request: Request, principal: Principal) -> Response:
    """Make the stored flag set equal to the body (`?prune=true` also deletes what the body lacks)."""
    state = server_state(request)
    prune = _bool_param(request, "prune")
    dry_run = _bool_param(request, "dry_run")
    document = await read_json(request, state.settings.max_body_bytes)
    async with state.pool.acquire() as conn, conn.transaction():
        plan, version = await FlagService(conn, principal.actor).apply(document, prune=prune, dry_run=dry_run)
    await state.config.refresh()
    return OrjsonResponse(
        {
            "dry_run": dry_run,
            "config_version": version,
            "counts": plan.counts(),
            "changes": [change.to_json() for change in plan.changes],
        }
    )


@requires(Scope.ADMIN)
async def audit_log(request: Request, principal: Principal) -> Response:
    limit = _int_param(request, "limit", low=1, high=1000) or 100
    before = _int_param(request, "before", low=1, high=None)
    entity = request.query_params.get("entity")
    if entity is not None and entity not in ("flag", "evaluator", "flag_set_metadata", "api_key"):
        raise InvalidParameter("entity must be one of flag, evaluator, flag_set_metadata, api_key")
    async with server_state(request).pool.acquire() as conn:
        entries = await AuditRepository(conn).page(
            entity=entity, key=request.query_params.get("key"), before_id=before, limit=limit
        )
    body: dict[str, Any] = {"entries": [entry.to_json() for entry in entries]}
    if len(entries) == limit:
        body["next"] = f"/v1/admin/audit?limit={limit}&before={entries[-1].id}"
    return OrjsonResponse(body)


def _flag_response(record: FlagRecord, *, status: int = 200, location: str | None = None) -> Response:
    headers = {"ETag": f'"{record.version}"'}
    if location is not None:
        headers["Location"] = location
    return OrjsonResponse(record.to_json(), status_code=status, headers=headers)


def _if_match(request: Request) -> int:
    raw = request.headers.get("if-match")
    if raw is None:
        raise PreconditionRequired(
            "send If-Match with the version you are changing (the ETag from GET), so concurrent edits are not lost"
        )
    match = _ETAG.match(raw)
    if match is None:
        raise InvalidParameter(f'If-Match must be a flag version such as "3", got {raw!r}')
    return int(match[1])


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidParameter(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1")


def _int_param(request: Request, name: str, *, low: int, high: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidParameter(f"{name} must be a whole number {bounds}, got {raw!r}")
    return int(raw)


routes = [
    Route("/v1/admin/flags", list_flags, methods=["GET"]),
    Route("/v1/admin/flags", create_flag, methods=["POST"]),
    Route("/v1/admin/flags/{key}", get_flag, methods=["GET"]),
    Route("/v1/admin/flags/{key}", update_flag, methods=["PUT"]),
    Route("/v1/admin/flags/{key}", delete_flag, methods=["DELETE"]),
    Route("/v1/admin/flag-set", get_flag_set, methods=["GET"]),
    Route("/v1/admin/flag-set", apply_flag_set, methods=["PUT"]),
    Route("/v1/admin/audit", audit_log, methods=["GET"]),
]
