"""Results for product managers (results scope): `GET /v1/experiments`, `/v1/experiments/{key}/results` and its
time series. The parameters are checked here; the work runs in a results process (flagd.results.pool)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.errors import InvalidParameter
from flagd.http.params import choice_param, float_param, int_param, path_key, text_param
from flagd.http.routing import resource
from flagd.results.analysis import Method, Options
from flagd.results.jobs import Job, Kind, PageSession
from flagd.results.journey import JourneyQuery
from flagd.results.model import Correction
from flagd.state import server_state

MAX_SEGMENT_CHARS = 64


def results_options(request: Request) -> Options:
    chosen = choice_param(request, "correction", ("holm", "bh", "none"))
    correction: Correction = "bh" if chosen == "bh" else "none" if chosen == "none" else "holm"
    cuped = (choice_param(request, "cuped", ("true", "false")) or "true") == "true"
    alpha = float_param(request, "alpha", low=0.001, high=0.5)
    chosen_method = choice_param(request, "method", ("planned", "mixture"))
    method: Method | None = "planned" if chosen_method == "planned" else "mixture" if chosen_method else None
    return Options(
        alpha=0.05 if alpha is None else alpha,
        cuped=cuped,
        correction=correction,
        alpha_given=alpha is not None,
        method=method,
    )


def segment_param(request: Request) -> str | None:
    segment = text_param(request, "segment")
    if segment is not None and not 1 <= len(segment) <= MAX_SEGMENT_CHARS:
        raise InvalidParameter(
            f"segment must be the name of an exposure attribute, 1 to {MAX_SEGMENT_CHARS} characters"
        )
    return segment


def job(
    request: Request,
    kind: Kind,
    *,
    key: str = "",
    phase: int | None = None,
    metric: str | None = None,
    segment: str | None = None,
    options: Options | None = None,
    session: PageSession | None = None,
    journey: JourneyQuery | None = None,
) -> Job:
    """A results job as of now, against this worker's config version."""
    version = server_state(request).config.snapshot.version
    return Job(
        kind, datetime.now(UTC), version, key, phase, metric, segment, options or Options(), session, journey
    )


async def answer(request: Request, work: Job) -> Response:
    """The job's body, from a results process."""
    answer = await server_state(request).results.run(work)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


@requires(Scope.RESULTS)
async def get_results(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "experiment")
    phase = int_param(request, "phase", low=1, high=1_000_000)
    work = job(
        request,
        "results",
        key=key,
        phase=phase,
        options=results_options(request),
        segment=segment_param(request),
    )
    return await answer(request, work)


@requires(Scope.RESULTS)
async def get_timeseries(request: Request, principal: Principal) -> Response:
    key = path_key(request, "key", "experiment")
    phase = int_param(request, "phase", low=1, high=1_000_000)
    work = job(
        request,
        "timeseries",
        key=key,
        phase=phase,
        metric=text_param(request, "metric"),
        options=results_options(request),
    )
    return await answer(request, work)


@requires(Scope.RESULTS)
async def get_experiments(request: Request, principal: Principal) -> Response:
    return await answer(request, job(request, "experiments"))


routes = [
    resource("/v1/experiments", GET=get_experiments),
    resource("/v1/experiments/{key}/results", GET=get_results),
    resource("/v1/experiments/{key}/results/timeseries", GET=get_timeseries),
]
