"""What to notify about an experiment, from what was watched before and its new results: pure, no I/O.

    observe(results)         the part of a results report the watcher compares (computed where the
                             results are, in a results process, so only this small value travels)
    step(previous, seen)     the new watched state, and the notifications of what changed since:

    experiment.decision_changed   the decision (action and variant) is not the one watched before; a
                                  phase not watched yet counts as "keep running"
    experiment.health_failed      a health check fails that did not fail before (one per check)
    experiment.guardrail_harmed   a guardrail is harmed by a variant that did not harm it before

A change is notified once two looks in a row agree on it, and not again while it stays so; a check that
recovers (on two looks) and fails again is notified again. A new phase starts from nothing. While a phase has no data (no unit exposed and no metric event that
arrived without exposures) nothing is watched: its failing checks ("no event has arrived yet") are the
normal state of an experiment that just started, and would only be noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from flagd.results.decision import side
from flagd.results.model import (
    Action,
    Check,
    Decision,
    Estimate,
    ExperimentResults,
    NoEstimate,
    SampleRatio,
    TestResult,
    VariantSummary,
    VariantUnits,
)
from flagd.results.wire import to_wire

Kind = Literal["experiment.decision_changed", "experiment.health_failed", "experiment.guardrail_harmed"]

EXPOSURES_ARRIVE: Final = "exposures arrive"
"""The health check that fails when metric events arrive without exposures: data, though no unit is exposed."""
SAMPLE_RATIO: Final = "sample ratio"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Harm:
    """A guardrail a variant harms, with the always-valid estimates that say so."""

    metric: str
    variant: str
    direction: str
    type: str
    absolute: Estimate
    relative: TestResult
    control: VariantSummary | None
    treatment: VariantSummary | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.metric, self.variant)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the watcher compares of one experiment phase's results."""

    experiment: str
    phase: int
    as_of: datetime
    has_data: bool
    decision: Decision
    headline: str
    failing: tuple[Check, ...]
    harms: tuple[Harm, ...]
    units: tuple[VariantUnits, ...]
    sample_ratio: SampleRatio | NoEstimate


@dataclass(frozen=True, slots=True)
class Look:
    """What one look at an experiment's phase saw (or what was notified): the decision, the failing checks,
    the harmed guardrails (metric, variant)."""

    action: Action = "keep running"
    variant: str | None = None
    failed: frozenset[str] = field(default_factory=frozenset)
    harmed: frozenset[tuple[str, str]] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Watched:
    """What was watched of an experiment's phase: what was notified, and what the previous look saw."""

    phase: int
    notified: Look = field(default_factory=Look)
    last: Look = field(default_factory=Look)


@dataclass(frozen=True, slots=True)
class Notice:
    kind: Kind
    payload: dict[str, Any]


def observe(results: ExperimentResults) -> Observation:
    harms = []
    for metric in results.metrics:
        if metric.role != "guardrail":
            continue
        by_variant = {v.variant: v for v in metric.variants}
        for comparison in metric.comparisons:
            absolute = comparison.absolute.sequential
            if side(metric, comparison) != "bad" or not isinstance(absolute, Estimate):
                continue
            harms.append(
                Harm(
                    metric=metric.metric,
                    variant=comparison.variant,
                    direction=metric.direction,
                    type=metric.type,
                    absolute=absolute,
                    relative=comparison.relative.sequential,
                    control=by_variant.get(results.control),
                    treatment=by_variant.get(comparison.variant),
                )
            )
    failing = tuple(c for c in results.health if not c.ok)
    return Observation(
        experiment=results.experiment,
        phase=results.phase,
        as_of=results.as_of,
        has_data=results.exposed > 0 or any(c.check == EXPOSURES_ARRIVE for c in failing),
        decision=results.decision,
        headline=results.headline,
        failing=failing,
        harms=tuple(harms),
        units=results.units,
        sample_ratio=results.sample_ratio,
    )


def step(previous: Watched | None, seen: Observation) -> tuple[Watched, tuple[Notice, ...]]:
    """The state after `seen`, and the notifications of its changes since `previous` (None: never watched).

    A change counts once two looks in a row agree on it (a check fails on both, or passes on both): one look
    can read a phase's exposures and its events on either side of a commit, and fail a check for that
    instant; confirmed, such a blip is neither notified nor taken for a recovery."""
    if previous is None or previous.phase != seen.phase:
        previous = Watched(seen.phase)
    if not seen.has_data:
        return previous, ()
    decision = seen.decision
    now = Look(
        action=decision.action,
        variant=decision.variant,
        failed=frozenset(c.check for c in seen.failing),
        harmed=frozenset(h.key for h in seen.harms),
    )
    last, told = previous.last, previous.notified
    agreed = (now.action, now.variant) == (last.action, last.variant)
    notified = Look(
        action=now.action if agreed else told.action,
        variant=now.variant if agreed else told.variant,
        failed=_agreed(told.failed, now.failed, last.failed),
        harmed=_agreed(told.harmed, now.harmed, last.harmed),
    )
    notices = [
        Notice("experiment.health_failed", _payload(seen, _check_change(seen, check)))
        for check in seen.failing
        if check.check in notified.failed - told.failed
    ]
    notices += [
        Notice("experiment.guardrail_harmed", _payload(seen, _harm_change(harm)))
        for harm in seen.harms
        if harm.key in notified.harmed - told.harmed
    ]
    if (notified.action, notified.variant) != (told.action, told.variant):
        change = {
            "from": {"action": told.action, "variant": told.variant},
            "to": {"action": notified.action, "variant": notified.variant},
        }
        notices.append(Notice("experiment.decision_changed", _payload(seen, change)))
    return Watched(seen.phase, notified, now), tuple(notices)


def _agreed(told: frozenset[T], now: frozenset[T], last: frozenset[T]) -> frozenset[T]:
    """What was notified, with what the last two looks both saw and without what neither saw."""
    return frozenset(x for x in told if x in now or x in last) | (now & last)


def page_path(experiment: str) -> str:
    """The results page of an experiment (flagd.web.pages)."""
    return f"/experiments/{experiment}"


def _payload(seen: Observation, change: dict[str, Any]) -> dict[str, Any]:
    """A notification's body: the experiment, what changed, and the results that caused it."""
    return {
        "experiment": seen.experiment,
        "phase": seen.phase,
        "change": change,
        "headline": seen.headline,
        "decision": to_wire(seen.decision),
        "units": {u.variant: u.units for u in seen.units},
        "asOf": seen.as_of.isoformat(),
        "link": page_path(seen.experiment),
        "results": f"/v1/experiments/{seen.experiment}/results?phase={seen.phase}",
    }


def _check_change(seen: Observation, check: Check) -> dict[str, Any]:
    change: dict[str, Any] = {"check": check.check, "found": check.found, "todo": check.todo}
    if check.check == SAMPLE_RATIO and isinstance(seen.sample_ratio, SampleRatio):
        change["sampleRatio"] = to_wire(seen.sample_ratio)
    return change


def _harm_change(harm: Harm) -> dict[str, Any]:
    return {
        "metric": harm.metric,
        "variant": harm.variant,
        "direction": harm.direction,
        "type": harm.type,
        "absolute": to_wire(harm.absolute),
        "relative": to_wire(harm.relative),
        "control": to_wire(harm.control),
        "treatment": to_wire(harm.treatment),
    }
