"""The admin API (`/v1/admin`, admin keys only): flags, the whole flag set, the audit log.

A flag is addressed as a resource with a version; its ETag is that version. Updates
and deletes must say which version they change (`If-Match`), so two editors never
overwrite each other silently; a whole-set write may name the config ETag it read
(`If-Match: "cfg-N"`). After a write commits, the worker that made it reloads its
snapshot before answering (read-your-writes); other workers follow on NOTIFY.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.audit import ENTITIES, AuditRepository
from flagd.config.repository import ConfigRepository, FlagRecord
from flagd.config.service import FlagService, check_key, exported_document
from flagd.config.whole_file import apply_whole_file
from flagd.errors import InvalidParameter, NotFound
from flagd.http.body import expect_object, read_json
from flagd.http.params import (
    bool_param,
    choice_param,
    if_match,
    if_match_config,
    int_param,
    path_key,
    text_param,
)
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.state import server_state


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
    check_key(key, "flag key")
    async with state.pool.acquire() as conn, conn.transaction():
        record = await FlagService(conn, principal.actor).create_flag(key, body["definition"])
    await state.config.refresh_after_write()
    return _flag_response(record, status=201, location=f"/v1/admin/flags/{key}")


@requires(Scope.ADMIN)
async def get_flag(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "flag")
    async with server_state(request).pool.acquire() as conn:
        record = await ConfigRepository(conn).get_flag(key)
    if record is None:
        raise NotFound(f'flag "{key}" does not exist', code="flag_not_found")
    return _flag_response(record)


@requires(Scope.ADMIN)
async def update_flag(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    key = path_key(request, "key", "flag")
    expected = if_match(request)
    body = expect_object(await read_json(request, state.settings.max_body_bytes), required=("definition",))
    async with state.pool.acquire() as conn, conn.transaction():
        record = await FlagService(conn, principal.actor).update_flag(key, body["definition"], expected)
    await state.config.refresh_after_write()
    return _flag_response(record)


@requires(Scope.ADMIN)
async def delete_flag(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    key = path_key(request, "key", "flag")
    expected = if_match(request)
    async with state.pool.acquire() as conn, conn.transaction():
        await FlagService(conn, principal.actor).delete_flag(key, expected)
    await state.config.refresh_after_write()
    return Response(status_code=204)


@requires(Scope.ADMIN)
async def get_flag_set(request: Request, principal: Principal) -> Response:
    async with server_state(request).pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        version = await ConfigRepository(conn).version()
        document = await exported_document(conn)
    return OrjsonResponse(document, headers={"ETag": f'"cfg-{version}"'})


@requires(Scope.ADMIN)
async def apply_flag_set(request: Request, principal: Principal) -> Response:
    """Make the stored flag set equal to the body (`?prune=true` also deletes what the body lacks)."""
    state = server_state(request)
    prune = bool_param(request, "prune")
    dry_run = bool_param(request, "dry_run")
    expected = if_match_config(request)
    document = await read_json(request, state.settings.max_body_bytes)
    async with state.pool.acquire() as conn, conn.transaction():
        plan, version, rollouts = await apply_whole_file(
            conn, principal.actor, document, prune=prune, dry_run=dry_run, expected_version=expected
        )
    await state.config.refresh_after_write()
    if not dry_run and any(change.entity == "webhook" for change in plan.changes):
        state.webhooks.wake()  # a webhook re-enabled or pointed elsewhere may be owed deliveries now
    return OrjsonResponse(
        {
            "dryRun": dry_run,
            "configVersion": version,
            "counts": plan.counts(),
            "changes": [change.to_json() for change in plan.changes],
            "rollouts": rollouts,
        },
        headers={"ETag": f'"cfg-{version}"'},
    )


@requires(Scope.ADMIN)
async def audit_log(request: Request, principal: Principal) -> Response:
    limit = int_param(request, "limit", low=1, high=1000) or 100
    before = int_param(request, "before", low=1)
    entity = choice_param(request, "entity", ENTITIES)
    key = text_param(request, "key")
    async with server_state(request).pool.acquire() as conn:
        entries = await AuditRepository(conn).page(entity=entity, key=key, before_id=before, limit=limit)
    body: dict[str, Any] = {"entries": [entry.to_json() for entry in entries]}
    if len(entries) == limit:
        body["next"] = f"/v1/admin/audit?limit={limit}&before={entries[-1].id}"
    return OrjsonResponse(body)


def _flag_response(record: FlagRecord, *, status: int = 200, location: str | None = None) -> Response:
    headers = {"ETag": f'"{record.version}"'}
    if location is not None:
        headers["Location"] = location
    return OrjsonResponse(record.to_json(), status_code=status, headers=headers)


routes = [
    resource("/v1/admin/flags", GET=list_flags, POST=create_flag),
    resource("/v1/admin/flags/{key}", GET=get_flag, PUT=update_flag, DELETE=delete_flag),
    resource("/v1/admin/flag-set", GET=get_flag_set, PUT=apply_flag_set),
    resource("/v1/admin/audit", GET=audit_log),
]
