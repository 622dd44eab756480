"""Metrics, layers and experiments: read by admin and results keys, changed by admin keys.

Definitions are written as flags as code (`PUT /v1/admin/flag-set`, `flagd apply`), beside the
flags, or one at a time here (POST creates, PUT replaces, DELETE removes; each goes through the
same validation, running-experiment checks and audit as a file would). These endpoints also read
them, with each experiment's lifecycle, and move experiments through it: start, stop,
new-phase (optionally with the changed definition the next phase starts with), launch.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.audit import Action
from flagd.config.experiment_lifecycle import ExperimentLifecycle
from flagd.config.repository import ConfigRepository, StoredConfig
from flagd.config.service import FlagService, check_key
from flagd.errors import Conflict, InvalidParameter, NotFound
from flagd.http.body import expect_object, has_body, read_json
from flagd.http.params import path_key
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.state import server_state


async def _stored(request: Request) -> StoredConfig:
    async with server_state(request).pool.acquire() as conn:
        return await ConfigRepository(conn).load()


def _experiment_json(stored: StoredConfig, key: str) -> dict[str, Any]:
    lifecycle = stored.lifecycles.get(key)
    return {
        "key": key,
        "definition": stored.experiments[key],
        "state": lifecycle.state if lifecycle else "draft",
        "phase": lifecycle.phase if lifecycle else 0,
        "slotStart": lifecycle.slot_start if lifecycle else None,
    }


@requires(Scope.RESULTS)
async def list_metrics(request: Request, principal: Principal) -> Response:
    stored = await _stored(request)
    return OrjsonResponse({"metrics": [{"key": k, "definition": v} for k, v in stored.metrics.items()]})


@requires(Scope.RESULTS)
async def list_layers(request: Request, principal: Principal) -> Response:
    stored = await _stored(request)
    return OrjsonResponse({"layers": [{"key": k, "definition": v} for k, v in stored.layers.items()]})


@requires(Scope.RESULTS)
async def list_experiments(request: Request, principal: Principal) -> Response:
    stored = await _stored(request)
    return OrjsonResponse({"experiments": [_experiment_json(stored, key) for key in stored.experiments]})


@requires(Scope.RESULTS)
async def get_experiment(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "experiment")
    stored = await _stored(request)
    if key not in stored.experiments:
        raise NotFound(f'experiment "{key}" does not exist', code="experiment_not_found")
    return OrjsonResponse(_experiment_json(stored, key))


def _writer(section: str, what: str) -> tuple[Any, Any, Any]:
    """POST (create), PUT (create or replace) and DELETE for one section's entries, as flags as code."""

    async def write(
        request: Request, principal: Principal, key: str, definition: Any, *, create: bool
    ) -> Response:
        state = server_state(request)
        async with state.pool.acquire() as conn, conn.transaction():
            stored = await ConfigRepository(conn).load(for_update=True)
            if create and key in getattr(stored, section):
                raise Conflict(f'{what} "{key}" already exists; replace it with PUT', code=f"{what}_exists")
            document = {"flags": {}, section: {key: definition}}
            _plan, version = await FlagService(conn, principal.actor).apply(
                document, prune=False, dry_run=False
            )
        await state.config.refresh_after_write()
        status = 201 if create else 200
        return OrjsonResponse(
            {"key": key, "definition": definition, "configVersion": version}, status_code=status
        )

    @requires(Scope.ADMIN)
    async def create(request: Request, principal: Principal) -> Response:
        body = expect_object(
            await read_json(request, server_state(request).settings.max_body_bytes),
            required=("key", "definition"),
        )
        if not isinstance(body["key"], str):
            raise InvalidParameter("key must be a string")
        check_key(body["key"], f"{what} key")
        return await write(request, principal, body["key"], body["definition"], create=True)

    @requires(Scope.ADMIN)
    async def replace_one(request: Request, principal: Principal) -> Response:
        key = path_key(request, "key", what)
        body = expect_object(
            await read_json(request, server_state(request).settings.max_body_bytes), required=("definition",)
        )
        return await write(request, principal, key, body["definition"], create=False)

    @requires(Scope.ADMIN)
    async def delete(request: Request, principal: Principal) -> Response:
        state = server_state(request)
        key = path_key(request, "key", what)
        async with state.pool.acquire() as conn, conn.transaction():
            stored = await ConfigRepository(conn).load(for_update=True)
            entries = getattr(stored, section)
            if key not in entries:
                raise NotFound(f'{what} "{key}" does not exist', code=f"{what}_not_found")
            # The whole stored set minus this entry, pruned: nothing else can change.
            document = {**stored.document(), section: {k: v for k, v in entries.items() if k != key}}
            await FlagService(conn, principal.actor).apply(document, prune=True, dry_run=False)
        await state.config.refresh_after_write()
        return Response(status_code=204)

    create.__name__, replace_one.__name__, delete.__name__ = (
        f"create_{what}",
        f"replace_{what}",
        f"delete_{what}",
    )
    return create, replace_one, delete


@requires(Scope.RESULTS)
async def get_metric(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "metric")
    stored = await _stored(request)
    if key not in stored.metrics:
        raise NotFound(f'metric "{key}" does not exist', code="metric_not_found")
    return OrjsonResponse({"key": key, "definition": stored.metrics[key]})


create_metric, replace_metric, delete_metric = _writer("metrics", "metric")
create_experiment, replace_experiment, delete_experiment = _writer("experiments", "experiment")


def _transition(action: Action) -> Any:
    @requires(Scope.ADMIN)
    async def move(request: Request, principal: Principal) -> Response:
        state = server_state(request)
        key = path_key(request, "key", "experiment")
        variant, definition = None, None
        if action == "launch":
            body = expect_object(
                await read_json(request, state.settings.max_body_bytes), required=("variant",)
            )
            variant = body["variant"]
            if not isinstance(variant, str):
                raise InvalidParameter("variant must be the name of one of the experiment's variants")
        elif action == "new_phase" and has_body(request):
            body = expect_object(
                await read_json(request, state.settings.max_body_bytes), optional=("definition",)
            )
            definition = body.get("definition")
            if "definition" in body and not isinstance(definition, dict):
                raise InvalidParameter(
                    "definition must be the experiment's changed definition, a JSON object as in flags as code"
                )
        async with state.pool.acquire() as conn, conn.transaction():
            result = await ExperimentLifecycle(conn, principal.actor).transition(
                key, action, variant, definition=definition
            )
        await state.config.refresh_after_write()
        return OrjsonResponse(result)

    move.__name__ = f"{action}_experiment"
    return move


routes = [
    resource("/v1/admin/metrics", GET=list_metrics, POST=create_metric),
    resource("/v1/admin/metrics/{key}", GET=get_metric, PUT=replace_metric, DELETE=delete_metric),
    resource("/v1/admin/layers", GET=list_layers),
    resource("/v1/admin/experiments", GET=list_experiments, POST=create_experiment),
    resource(
        "/v1/admin/experiments/{key}", GET=get_experiment, PUT=replace_experiment, DELETE=delete_experiment
    ),
    resource("/v1/admin/experiments/{key}/start", POST=_transition("start")),
    resource("/v1/admin/experiments/{key}/stop", POST=_transition("stop")),
    resource("/v1/admin/experiments/{key}/new-phase", POST=_transition("new_phase")),
    resource("/v1/admin/experiments/{key}/launch", POST=_transition("launch")),
]
