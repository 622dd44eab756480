"""Metrics, layers and experiments: read by admin and results keys, changed by admin keys.

Definitions are written as flags as code (`PUT /v1/admin/flag-set`, `flagd apply`), beside the
flags; these endpoints read them, with each experiment's lifecycle, and move experiments
through it: start, stop, new-phase, launch.
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
from flagd.errors import InvalidParameter, NotFound
from flagd.http.body import expect_object, read_json
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
        "slot_start": lifecycle.slot_start if lifecycle else None,
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


def _transition(action: Action) -> Any:
    @requires(Scope.ADMIN)
    async def move(request: Request, principal: Principal) -> Response:
        state = server_state(request)
        key = path_key(request, "key", "experiment")
        variant = None
        if action == "launch":
            body = expect_object(
                await read_json(request, state.settings.max_body_bytes), required=("variant",)
            )
            variant = body["variant"]
            if not isinstance(variant, str):
                raise InvalidParameter("variant must be the name of one of the experiment's variants")
        async with state.pool.acquire() as conn, conn.transaction():
            result = await ExperimentLifecycle(conn, principal.actor).transition(key, action, variant)
        await state.config.refresh_after_write()
        return OrjsonResponse(result)

    move.__name__ = f"{action}_experiment"
    return move


routes = [
    resource("/v1/admin/metrics", GET=list_metrics),
    resource("/v1/admin/layers", GET=list_layers),
    resource("/v1/admin/experiments", GET=list_experiments),
    resource("/v1/admin/experiments/{key}", GET=get_experiment),
    resource("/v1/admin/experiments/{key}/start", POST=_transition("start")),
    resource("/v1/admin/experiments/{key}/stop", POST=_transition("stop")),
    resource("/v1/admin/experiments/{key}/new-phase", POST=_transition("new_phase")),
    resource("/v1/admin/experiments/{key}/launch", POST=_transition("launch")),
]
