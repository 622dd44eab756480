"""A funnel metric's steps read from its definition, every problem located.

    checkout-funnel:
      type: funnel
      direction: increase
      window_seconds: 604800          # the whole funnel, from the unit's first exposure (default: no end)
      steps:                          # 2 to 10, in order
        - {event: product_viewed}
        - {event: added_to_cart, within_seconds: 3600}   # within an hour of the previous step
        - {event: checkout_started}
        - {event: order_paid, where: {currency: {equals: EUR}}}
      decide_on: 4                    # the step whose conversion from exposure decides (default the last)

A unit completes step k at its first event of step k at or after it completed step k - 1 (step 1: at
or after its exposure), inside the funnel's window and the step's `within_seconds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagd.experiments.filters import read_filter
from flagd.experiments.model import FunnelStep
from flagd_sdk.evaluation.problems import Problem, child, given

MIN_STEPS = 2
MAX_STEPS = 10
MAX_WITHIN_SECONDS = 10 * 365 * 86_400
_STEP_MEMBERS = ("event", "where", "within_seconds")


def _step(raw: Any, path: str, problems: list[Problem]) -> FunnelStep | None:
    if not isinstance(raw, dict):
        problems.append(
            Problem(path, f"must be an object {{event, where?, within_seconds?}}; got {given(raw)}")
        )
        return None
    before = len(problems)
    for member in raw:
        if member not in _STEP_MEMBERS:
            problems.append(Problem(child(path, member), f"unknown member; use {', '.join(_STEP_MEMBERS)}"))
    event = raw.get("event")
    if not isinstance(event, str) or not event:
        problems.append(Problem(child(path, "event"), "name the event that completes this step"))
    where = read_filter(raw["where"], child(path, "where"), problems) if "where" in raw else None
    within = raw.get("within_seconds")
    if within is not None and (type(within) is not int or not 1 <= within <= MAX_WITHIN_SECONDS):
        problems.append(
            Problem(child(path, "within_seconds"), "must be a whole number of seconds, 1 to 10 years")
        )
    if len(problems) > before:
        return None
    return FunnelStep(str(event), where, within)


def read_funnel(
    entry: Mapping[str, Any], path: str, problems: list[Problem]
) -> tuple[tuple[FunnelStep, ...], int | None]:
    """The funnel's steps and the step it decides on (the last unless it names one); problems appended."""
    raw, at = entry.get("steps"), child(path, "steps")
    if "event" in entry:
        problems.append(
            Problem(child(path, "event"), "a funnel reads its steps' events; name them under steps")
        )
    if "winsorisation" in entry:
        problems.append(
            Problem(
                child(path, "winsorisation"),
                "a funnel's values are 0 or 1 (a step reached or not): nothing to cap",
            )
        )
    if not isinstance(raw, list) or not MIN_STEPS <= len(raw) <= MAX_STEPS:
        problems.append(
            Problem(
                at,
                f"give {MIN_STEPS} to {MAX_STEPS} steps in order, e.g. [{{event: viewed}}, {{event: paid}}]; "
                f"got {given(raw)}",
            )
        )
        return (), None
    steps = [_step(item, child(at, index), problems) for index, item in enumerate(raw)]
    decide_on = entry.get("decide_on")
    if decide_on is not None and (type(decide_on) is not int or not 1 <= decide_on <= len(raw)):
        problems.append(
            Problem(
                child(path, "decide_on"),
                f"must be a step number from 1 to {len(raw)}: the step whose conversion decides; "
                f"got {given(decide_on)}",
            )
        )
    return tuple(s for s in steps if s is not None), len(raw) if decide_on is None else decide_on
