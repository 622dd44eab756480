"""Exposures sent with a client key, checked against the assignment the server computes: pure.

A client key is public, so what its batches claim is checked: an exposure says unit U saw variant V of
experiment E in phase P, and the server evaluates E's flag itself, with the served snapshot, for a context of
the exposure's attributes and U at the experiment's unit attribute. The exposure is kept only when that
evaluation is an exposure of E (the unit is in the experiment) in phase P to variant V; any other is refused
with `variant_not_assigned`, so a page cannot put a unit in a variant it does not get, nor in an experiment
that does not run now. Attributes a page sends can still make a unit eligible (they are the context it
evaluates with), but never choose its variant: the split hashes the unit.

An exposure sent across a change of phase (its phase was current when it was seen, and is not now) is refused
too: a browser sends its exposures within seconds, so few are, and a stopped experiment takes no more.
"""

from __future__ import annotations

from typing import Any

from flagd.config.snapshot import ConfigSnapshot
from flagd.ingest.events import Batch, Event
from flagd.ingest.exposure_check import refuse_exposures
from flagd.ingest.fields import FieldProblem
from flagd_sdk.evaluation import FlagType


def assigned(batch: Batch, snapshot: ConfigSnapshot) -> tuple[Batch, list[tuple[str, str]]]:
    """The batch with every exposure its unit is not assigned moved to its rejections, and (experiment,
    code) of each exposure refused."""
    flags = {served.key: flag for flag, served in snapshot.experiments.items()}

    def why(event: Event) -> FieldProblem | None:
        message = _unassigned(event, flags.get(str(event.experiment)), snapshot)
        return None if message is None else FieldProblem("variant", "variant_not_assigned", message)

    return refuse_exposures(batch, why)


def _unassigned(event: Event, flag: str | None, snapshot: ConfigSnapshot) -> str | None:
    """Why the exposure is not the unit's assignment, or None when it is."""
    experiment, unit = event.experiment, _shown(event.unit)
    served = snapshot.experiments.get(flag) if flag is not None else None
    if flag is None or served is None:
        return f"experiment {experiment!r} is not running, so no unit is assigned a variant of it"
    context = {**event.attributes, **_nested(served.unit, event.unit)}
    details = snapshot.flag_set.resolve(FlagType.ANY, flag, None, context)
    exposed = snapshot.exposure(flag, details, context)
    if exposed is None:
        return (
            f"unit {unit} is not in experiment {experiment!r} with these attributes (its eligibility, "
            "traffic or layer leaves the unit out): send the exposures of evaluations that said "
            "experimentExposure: true"
        )
    if exposed.phase != event.phase or exposed.variant != event.variant:
        return (
            f"unit {unit} is assigned variant {exposed.variant!r} in phase {exposed.phase} of experiment "
            f"{experiment!r}, not {event.variant!r} in phase {event.phase}: send the variant and phase the "
            "evaluation served"
        )
    return None


def _nested(path: str, unit: str) -> dict[str, Any]:
    """The unit at the dotted `path` of a context: user.id -> {"user": {"id": unit}}."""
    value: Any = unit
    for part in reversed(path.split(".")):
        value = {part: value}
    nested: dict[str, Any] = value
    return nested


def _shown(unit: str) -> str:
    return repr(unit) if len(unit) <= 60 else f"{unit[:60]!r}…"
