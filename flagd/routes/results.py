"""Results for product managers (results scope): `GET /v1/experiments/{key}/results`."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.repository import ConfigRepository
from flagd.errors import InvalidParameter
from flagd.http.params import choice_param, int_param, path_key, text_param
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.results.analysis import Correction, Options
from flagd.results.rollup import RollupPolicy
from flagd.results.service import experiment_results, experiment_timeseries, list_experiments
from flagd.state import server_state


def _options(request: Request) -> Options:
    chosen = choice_param(request, "correction", ("holm", "bh", "none"))
    correction: Correction = "bh" if chosen == "bh" else "none" if chosen == "none" else "holm"
    cuped = (choice_param(request, "cuped", ("true", "false")) or "true") == "true"
    alpha_text = text_param(request, "alpha")
    alpha = 0.05
    if alpha_text is not None:
        try:
            alpha = float(alpha_text)
        except ValueError:
            alpha = -1.0
        if not 0.001 <= alpha <= 0.5:
            raise InvalidParameter(f"alpha must be a number from 0.001 to 0.5, got {alpha_text!r}")
    return Options(alpha=alpha, cuped=cuped, correction=correction, alpha_given=alpha_text is not None)


@requires(Scope.RESULTS)
async def get_results(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "experiment")
    phase = int_param(request, "phase", low=1, high=1_000_000)
    options = _options(request)
    segment = text_param(request, "segment")
    if segment is not None and not 1 <= len(segment) <= 64:
        raise InvalidParameter("segment must be the name of an exposure attribute, 1 to 64 characters")
    state = server_state(request)
    policy = RollupPolicy.from_settings(state.settings)
    async with state.pool.acquire() as conn:
        stored = await ConfigRepository(conn).load()
        body = await experiment_results(
            conn, stored, key, phase, options, datetime.now(UTC), policy, state.results_cache, segment
        )
    return OrjsonResponse(body)


@requires(Scope.RESULTS)
async def get_timeseries(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "experiment")
    phase = int_param(request, "phase", low=1, high=1_000_000)
    metric = text_param(request, "metric")
    options = _options(request)
    state = server_state(request)
    policy = RollupPolicy.from_settings(state.settings)
    async with state.pool.acquire() as conn:
        stored = await ConfigRepository(conn).load()
        body = await experiment_timeseries(
            conn, stored, key, phase, metric, options, datetime.now(UTC), policy
        )
    return OrjsonResponse(body)


@requires(Scope.RESULTS)
async def get_experiments(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    policy = RollupPolicy.from_settings(state.settings)
    async with state.pool.acquire() as conn:
        stored = await ConfigRepository(conn).load()
        listed = await list_experiments(conn, stored, policy, state.results_cache, datetime.now(UTC))
    return OrjsonResponse({"experiments": listed})


routes = [
    resource("/v1/experiments", GET=get_experiments),
    resource("/v1/experiments/{key}/results", GET=get_results),
    resource("/v1/experiments/{key}/results/timeseries", GET=get_timeseries),
]
