"""An experiment's results told in a product manager's words: pure, from the typed results.

    headline(results, names)   the one sentence at the top of the page: what changed, by how much, and what to do
    next_step(results, names)  the sentence under it: how far the experiment is, or what to check
    verdict(metric, c)         better / worse / no clear difference yet / not enough data
    chance(c, units, units)    the chance to beat control where it means something, else "not enough data"
    impact(metric, c)          ("+137 conversions a day", "between -228 and +502")

Only the always-valid (sequential) comparison speaks, as it is the one the decision reads
(`flagd.results.decision`); p-values stay in the page's technical details.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from flagd.experiments.catalog import ExperimentPlan
from flagd.results.decision import Side, side
from flagd.results.metric_types import kind
from flagd.results.model import Comparison, Estimate, ExperimentResults, MetricResult
from flagd.results.words import Change, clause, count, number, percent, plural, remaining, signed, unit_noun

MIN_UNITS_FOR_CHANCE = 100
"""Below this many units in either variant the chance to beat control swings with a few units: not shown."""

Verdict = Literal["better", "worse", "no clear difference yet", "not enough data"]


@dataclass(frozen=True, slots=True)
class Names:
    """What the page calls things: metric keys to their names, and what a unit is (singular, plural)."""

    metrics: Mapping[str, str]
    noun: tuple[str, str] = ("unit", "units")

    def metric(self, key: str) -> str:
        return self.metrics.get(key) or humane(key)

    @property
    def one(self) -> str:
        return self.noun[0]

    @property
    def many(self) -> str:
        return self.noun[1]


def names_of(plan: ExperimentPlan | None) -> Names:
    """The experiment's metric names (a metric without one reads from its key) and its unit noun."""
    if plan is None:
        return Names({})
    metrics = {m.metric.key: m.metric.name for m in plan.metrics if m.metric.name != m.metric.key}
    return Names(metrics, unit_noun(plan.experiment.unit))


def humane(key: str) -> str:
    """A key read as a name: "order-value" → "Order value"."""
    words = key.replace("-", " ").replace("_", " ").strip()
    if len(words) <= 3 and words.isalpha():  # nps, aov, ltv: an acronym
        return words.upper()
    return words[:1].upper() + words[1:]


def variant(name: str) -> str:
    """A variant as the page names it: its key with a capital first letter ("one-page" → "One-page")."""
    return name[:1].upper() + name[1:]


def _change(metric: MetricResult, comparison: Comparison, names: Names) -> Change | None:
    return Change.of(comparison, metric.type, names.one)


def _moved(change: Change) -> str:
    return "raised" if change.effect > 0 else "lowered"


def _primary(results: ExperimentResults) -> MetricResult | None:
    return next((m for m in results.metrics if m.role == "primary"), None)


def _comparison(metric: MetricResult, name: str | None) -> Comparison | None:
    return next((c for c in metric.comparisons if c.variant == name), None)


def headline(results: ExperimentResults, names: Names) -> str:
    """The decision in one or two sentences that name the variant, the metric, the change and its
    interval in words, and what to do."""
    decision = results.decision
    if results.exposed == 0:
        return f"No data yet: no {names.many} have been exposed to this experiment."
    if decision.action == "investigate":
        failed = next((c for c in results.health if not c.ok), None)
        what = clause(failed.found) if failed is not None else "a health check failed"
        first, *others = what.split("; ")  # a check that lists several days: the first, and how many more
        more = f", and on {plural(len(others), 'more day')}" if others else ""
        return f"Investigate before deciding: {first}{more}."
    if decision.action == "stop":
        for metric in results.metrics:
            harmed = _comparison(metric, decision.variant)
            if metric.role == "guardrail" and harmed is not None and side(metric, harmed) == "bad":
                who, what = variant(harmed.variant), names.metric(metric.metric)
                change = _change(metric, harmed, names)
                how = f": it {_moved(change)} it by {change.by()}" if change is not None else ""
                return f"{who} is hurting {what}{how}. Stop {who} and find out why."
    primary = _primary(results)
    if primary is None:
        return "There is no primary metric to decide on: give the experiment one."
    name = names.metric(primary.metric)
    found = _comparison(primary, decision.variant)
    if decision.action == "ship" and found is not None:
        change = _change(primary, found, names)
        who = variant(found.variant)
        if change is not None:
            return f"{who} {_moved(change)} {name} by {change.by()}. Ship {who}."
    control = variant(results.control)
    parts = []
    for comparison in primary.comparisons:
        who = variant(comparison.variant)
        change = _change(primary, comparison, names)
        if change is None:
            parts.append(f"too few {names.many} yet to compare {who} with {control}")
        elif side(primary, comparison) == "bad":
            parts.append(f"{who} {_moved(change)} it by {change.by()}, which is worse")
        else:
            parts.append(f"{who} is {change.span(control)}")
    return f"No clear difference yet in {name}: {'; '.join(parts)}. {_keep_running(results)}"


def _keep_running(results: ExperimentResults) -> str:
    progress = results.progress
    if progress is None or progress.days_remaining is None or not math.isfinite(progress.days_remaining):
        return "Keep running to collect more data."
    if progress.days_remaining > 365:
        return "Keep running, but at current traffic it would take more than a year to be sure."
    if progress.days_remaining <= 0:
        return "Keep running a little longer."
    return f"Keep running for {remaining(progress.days_remaining)}."


def next_step(results: ExperimentResults, names: Names) -> str:
    """What to do next, or how far the experiment is: the line under the headline."""
    decision = results.decision
    if decision.action == "investigate":
        failed = next((c for c in results.health if not c.ok), None)
        return failed.todo if failed is not None and failed.todo else "See the health checks below."
    if decision.action == "stop":
        return "A guardrail is a metric the experiment must not make worse; this one got worse."
    if decision.action == "ship":
        return "No guardrail got worse. Launching it (flagd experiments launch) makes it the flag's default for everyone."
    progress, primary = results.progress, _primary(results)
    if progress is None or not progress.needed_units or primary is None:
        return f"{plural(results.exposed, names.one, names.many)} so far."
    time = (
        ""
        if progress.days_remaining is None
        else f": {remaining(progress.days_remaining)} at current traffic"
        if progress.days_remaining > 0
        else ": enough already"
    )
    return (
        f"{count(progress.units)} of the {count(progress.needed_units)} {names.many} needed to detect a "
        f"{percent(progress.mde)} change in {names.metric(primary.metric)}{time}."
    )


def verdict(metric: MetricResult, comparison: Comparison) -> Verdict:
    """The variant against control on this metric, in the metric's direction, from the always-valid interval."""
    if not isinstance(comparison.absolute.sequential, Estimate):
        return "not enough data"
    return _VERDICTS[side(metric, comparison)]


_VERDICTS: dict[Side, Verdict] = {"good": "better", "bad": "worse", "unclear": "no clear difference yet"}


def chance(comparison: Comparison, control_units: int, variant_units: int) -> str:
    """The chance to beat control, where enough units make it mean something."""
    value = comparison.chance_to_beat_control
    if value is None or min(control_units, variant_units) < MIN_UNITS_FOR_CHANCE:
        return "not enough data"
    if value > 0.99:
        return "over 99%"
    if value < 0.01:
        return "under 1%"
    return f"{value:.0%}"


_IMPACT_WORDS = {
    "conversion": ("conversion", "conversions"),
    "funnel": ("conversion", "conversions"),
    "count": ("event", "events"),
}


def impact(
    metric: MetricResult, comparison: Comparison, per: Literal["day", "year"] = "day"
) -> tuple[str, str] | None:
    """The projected change a day (or year) if the variant went to every eligible unit, in the metric's
    unit: conversions, events, or value (no currency is known)."""
    if comparison.impact is None or kind(metric.type).impact is None:
        return None
    projection = comparison.impact.per_day if per == "day" else comparison.impact.per_year
    if projection.effect is None:
        return None
    one, many = _IMPACT_WORDS.get(metric.type, ("in value", "in value"))
    what = one if number(abs(projection.effect)) == "1" else many

    def amount(value: float | None) -> str:
        return "unbounded" if value is None else signed(number(value))

    return (
        f"{amount(projection.effect)} {what} a {per}",
        f"between {amount(projection.low)} and {amount(projection.high)}",
    )
