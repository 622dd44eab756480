"""A journey report outside experiments (results scope): `GET /v1/journeys/funnel`.

    GET /v1/journeys/funnel?step=checkout_started&step=checkout_completed&step=order_paid
        &from=2026-11-01&to=2026-11-30&window=7d&breakdown=property:country

`step` is repeated, in order (2 to 10 event names; the same event may not follow itself); `from` and `to`
are UTC days, both included (default the 30 days to today; at most 92); `window` is seconds or a number with
s, m, h or d (default 7d, at most 30d); `breakdown` is `property:NAME` (the entering event's property),
`exposure:EXPERIMENT:ATTRIBUTE` (the unit's first exposure's attribute) or `variant:EXPERIMENT`;
`where=K:{...}` (repeated) makes step K count only events whose properties meet the filter, written as a
metric's `where` is (flagd.experiments.filters), as JSON. Each bad
value is a 400 `invalid_parameter` that names it. The work runs in a results process (flagd.results.pool).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.errors import InvalidParameter
from flagd.experiments.filters import EventFilter, read_filter
from flagd.http.params import MAX_TEXT_PARAM, shown
from flagd.http.routing import resource
from flagd.identifiers import KEY_RULE, is_key
from flagd.results.journey import (
    DEFAULT_RANGE_DAYS,
    DEFAULT_WINDOW_SECONDS,
    MAX_RANGE_DAYS,
    MAX_STEPS,
    MAX_WINDOW_SECONDS,
    MIN_STEPS,
    Breakdown,
    JourneyQuery,
)
from flagd.routes.results import answer, job
from flagd_sdk.evaluation.problems import FlagSetError

MAX_NAME_CHARS = 64
MAX_FILTER_CHARS = 1_000
"""A step's filter as JSON, at most (ten of them keep the URL within the 16 KB the server reads)."""
EARLIEST_DAY = date(2000, 1, 1)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_WINDOW = re.compile(r"([0-9]{1,9})([smhd]?)", re.ASCII)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def steps_param(params: QueryParams) -> tuple[str, ...]:
    steps = params.getlist("step")
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise InvalidParameter(
            f"give the funnel's steps in order as step=EVENT, {MIN_STEPS} to {MAX_STEPS} of them "
            f"(step=checkout_started&step=order_paid); got {len(steps)}"
        )
    for number, step in enumerate(steps, start=1):
        if not is_key(step):
            raise InvalidParameter(
                f"step {number} must be an event name: names {KEY_RULE}; got {shown(step)}"
            )
        if number > 1 and step == steps[number - 2]:
            raise InvalidParameter(
                f"step {number} repeats step {number - 1} ({step}): the event that reaches one would reach "
                "the other; give each step a different event from the one before"
            )
    return tuple(steps)


def day_param(params: QueryParams, name: str) -> date | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if _DAY.fullmatch(raw) and date.fromisoformat(raw) >= EARLIEST_DAY:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise InvalidParameter(f"{name} must be a day as YYYY-MM-DD (UTC), such as 2026-11-30; got {shown(raw)}")


def days_params(params: QueryParams, today: date) -> tuple[date, date]:
    """`from` and `to`, both included: by default the DEFAULT_RANGE_DAYS to today."""
    last = day_param(params, "to") or today
    first = day_param(params, "from") or max(last - timedelta(days=DEFAULT_RANGE_DAYS - 1), EARLIEST_DAY)
    if last > today + timedelta(days=1):
        raise InvalidParameter(
            f"to must not be later than tomorrow ({today + timedelta(days=1)}); got {last}"
        )
    if first > last:
        raise InvalidParameter(f"from ({first}) must not be later than to ({last})")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidParameter(
            f"the range from {first} to {last} is {(last - first).days + 1} days; "
            f"a journey covers at most {MAX_RANGE_DAYS}: move from or to closer"
        )
    return first, last


def window_param(params: QueryParams) -> int:
    raw = params.get("window")
    if raw is None:
        return DEFAULT_WINDOW_SECONDS
    match = _WINDOW.fullmatch(raw)
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]] if match else 0
    if not 1 <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidParameter(
            "window must be seconds, or a number with s, m, h or d (90m, 36h, 7d), from 1 s to "
            f"{MAX_WINDOW_SECONDS // 86_400}d; got {shown(raw)}"
        )
    return seconds


def _name(raw: str, what: str) -> str:
    if not 1 <= len(raw) <= MAX_NAME_CHARS:
        raise InvalidParameter(
            f"breakdown's {what} must be 1 to {MAX_NAME_CHARS} characters; got {shown(raw)}"
        )
    return raw


def _experiment(raw: str) -> str:
    if not is_key(raw):
        raise InvalidParameter(
            f"breakdown's experiment must be an experiment key: keys {KEY_RULE}; got {shown(raw)}"
        )
    return raw


def breakdown_param(params: QueryParams) -> Breakdown | None:
    raw = params.get("breakdown")
    if raw is None:
        return None
    if len(raw) > MAX_TEXT_PARAM or not raw.isprintable():
        raise InvalidParameter(
            f"breakdown must be at most {MAX_TEXT_PARAM} printable characters; got {shown(raw)}"
        )
    source, _, rest = raw.partition(":")
    if source == "property":
        return Breakdown("property", _name(rest, "property"))
    if source == "variant":
        return Breakdown("variant", experiment=_experiment(rest))
    if source == "exposure" and ":" in rest:
        experiment, _, attribute = rest.rpartition(":")
        return Breakdown("exposure", _name(attribute, "attribute"), _experiment(experiment))
    raise InvalidParameter(
        "breakdown must be property:NAME (a property of the entering event), exposure:EXPERIMENT:ATTRIBUTE "
        f"(an attribute of the unit's first exposure) or variant:EXPERIMENT; got {shown(raw)}"
    )


def filters_param(params: QueryParams, steps: int) -> tuple[EventFilter | None, ...]:
    """`where=K:{...}`, repeated: step K's filter as a JSON object in the syntax of a metric's `where`."""
    found: dict[int, EventFilter] = {}
    for raw in params.getlist("where"):
        number, _, text = raw.partition(":")
        if not (number.isascii() and number.isdigit() and 1 <= int(number) <= steps and text):
            raise InvalidParameter(
                f"where must be a step number from 1 to {steps}, a colon and a filter as JSON, such as "
                f'where=2:{{"currency":{{"equals":"EUR"}}}}; got {shown(raw)}'
            )
        if int(number) in found:
            raise InvalidParameter(
                f"where gives step {number} two filters; give each step one (with every condition)"
            )
        if len(text) > MAX_FILTER_CHARS:
            raise InvalidParameter(f"where for step {number} is longer than {MAX_FILTER_CHARS} characters")
        try:
            document = orjson.loads(text)
            found[int(number)] = read_filter(document, f"where for step {number}")
        except orjson.JSONDecodeError:
            raise InvalidParameter(
                f"where for step {number} must be a JSON object; got {shown(text)}"
            ) from None
        except FlagSetError as exc:
            raise InvalidParameter("; ".join(str(p) for p in exc.problems)) from None
    return tuple(found.get(k) for k in range(1, steps + 1)) if found else ()


def journey_query(params: QueryParams, today: date) -> JourneyQuery:
    """The journey a request asks for, every parameter checked."""
    steps = steps_param(params)
    first, last = days_params(params, today)
    filters = filters_param(params, len(steps))
    return JourneyQuery(steps, first, last, window_param(params), breakdown_param(params), filters)


@requires(Scope.RESULTS)
async def get_funnel(request: Request, principal: Principal) -> Response:
    query = journey_query(request.query_params, datetime.now(UTC).date())
    return await answer(request, job(request, "journey", journey=query))


routes = [resource("/v1/journeys/funnel", GET=get_funnel)]
