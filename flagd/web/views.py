"""What the experiment page shows, built from the typed results: every number already in words.

The template only lays these out. Numbers go through `flagd.results.words` and sentences through
`flagd.results.narrative`, so the page says what the decision says, in the metric's unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from flagd.experiments.catalog import ExperimentPlan
from flagd.experiments.model import MetricType
from flagd.results import narrative
from flagd.results.metric_types import kind
from flagd.results.model import (
    Comparison,
    Estimate,
    ExperimentResults,
    MetricResult,
    NoEstimate,
    TestResult,
    Timeseries,
)
from flagd.results.narrative import Names
from flagd.results.words import MINUS, Change, count, number, percent

MIN_CHART_DAYS = 2
"""A chart over fewer days is a dot: the page says when it will appear instead."""

_VALUE_MEANS: dict[MetricType, str] = {
    "conversion": "share of {many} with the event",
    "count": "events per {one}",
    "sum": "value per {one}",
    "mean": "value per event",
    "ratio": "the ratio",
    "nps": "NPS, from {minus}100 to 100",
    "csat": "share of answers satisfied",
    "ces": "average effort score",
    "quantile": "the p{p} of the {level}",
    "retention": "share of {many} active in the metric's days after exposure, of those whose days are over",
    "funnel": "share of {many} completing the funnel's deciding step",
}


def value(metric_type: MetricType, mean: float | None) -> str:
    """A variant's value of the metric: a share as a percentage, anything else as a number."""
    if mean is None or not math.isfinite(mean):
        return "no data"
    return percent(mean) if kind(metric_type).percent_points else number(mean)


@dataclass(frozen=True, slots=True)
class Row:
    """One variant of one metric, as the metrics table shows it."""

    variant: str
    control: bool
    units: str
    value: str
    maturing: str = ""
    """Retention: the units exposed too recently to count yet ("+ 120 maturing")."""
    change: str = ""
    interval: str = ""
    verdict: str = ""
    chance: str = ""
    impact: str = ""
    impact_interval: str = ""
    impact_year: str = ""


@dataclass(frozen=True, slots=True)
class Technical:
    """One comparison's statistics for the technical details."""

    metric: str
    variant: str
    cuped: bool
    difference: str
    p_value: str
    p_adjusted: str
    fixed_horizon: str
    fixed_p: str


@dataclass(frozen=True, slots=True)
class MetricView:
    key: str
    name: str
    role: str
    means: str
    cuped: bool
    rows: tuple[Row, ...]


def check_title(check: str, words: Names) -> str:
    """A health check's name as a heading: "volume: exposures" → "Exposures a day"."""
    if check.startswith("volume: "):
        what = check.removeprefix("volume: ")
        return "Exposures a day" if what == "exposures" else f"“{what.removesuffix(' events')}” events a day"
    return {
        "sample ratio": "Split between variants",
        "units in several variants": f"{words.many.capitalize()} in several variants",
    }.get(check, check.capitalize())


@dataclass(frozen=True, slots=True)
class Page:
    headline: str
    next_step: str
    names: Names
    control: str
    metrics: tuple[MetricView, ...]
    technical: tuple[Technical, ...]
    series_metric: str
    chart_days: int
    chart_data: str
    design: str = ""
    """The always-valid test in force, in a sentence."""

    @property
    def charts(self) -> bool:
        return self.chart_days >= MIN_CHART_DAYS

    def segment(self, metric: MetricResult) -> MetricView:
        """A metric of one segment, in the same words as the whole."""
        return metric_view(metric, self.control, self.names)

    def check(self, name: str) -> str:
        return check_title(name, self.names)


def _p(result: TestResult) -> str:
    if not isinstance(result, Estimate):
        return "—"
    return "under 0.001" if result.p_value < 0.001 else f"{result.p_value:.3f}"


def _p_adjusted(result: TestResult) -> str:
    if not isinstance(result, Estimate) or result.p_value_adjusted is None:
        return "—"
    return "under 0.001" if result.p_value_adjusted < 0.001 else f"{result.p_value_adjusted:.3f}"


def _interval(result: TestResult, metric_type: MetricType, relative: bool, noun: str) -> str:
    if isinstance(result, NoEstimate):
        return result.problem.message
    return Change(result.effect, result.ci_low, result.ci_high, relative, metric_type, noun).signed()


def _row(
    metric: MetricResult, comparison: Comparison, units: dict[str, int], control: str, words: Names
) -> Row:
    summary = next(v for v in metric.variants if v.variant == comparison.variant)
    change = Change.of(comparison, metric.type, words.one)
    effect, interval = ("not enough data", "") if change is None else change.signed_parts()
    impact, impact_interval = narrative.impact(metric, comparison) or ("", "")
    year = narrative.impact(metric, comparison, "year")
    return Row(
        variant=narrative.variant(comparison.variant),
        control=False,
        units=count(summary.units),
        value=value(metric.type, summary.mean),
        maturing=_maturing(summary.maturing),
        change=effect,
        interval=interval,
        verdict=narrative.verdict(metric, comparison),
        chance=narrative.chance(comparison, units.get(control, 0), units.get(comparison.variant, 0)),
        impact=impact,
        impact_interval=impact_interval,
        impact_year="" if year is None else f"{year[0]} ({year[1]})",
    )


def _maturing(units: int | None) -> str:
    return f"+ {count(units)} maturing" if units else ""


def metric_view(metric: MetricResult, control: str, words: Names) -> MetricView:
    units = {v.variant: v.units for v in metric.variants}
    rows = []
    for summary in metric.variants:
        comparison = next((c for c in metric.comparisons if c.variant == summary.variant), None)
        if comparison is None:
            rows.append(
                Row(
                    narrative.variant(summary.variant),
                    True,
                    count(summary.units),
                    value(metric.type, summary.mean),
                    _maturing(summary.maturing),
                )
            )
        else:
            rows.append(_row(metric, comparison, units, control, words))
    return MetricView(
        key=metric.metric,
        name=words.metric(metric.metric),
        role=metric.role,
        means=_VALUE_MEANS[metric.type].format(
            one=words.one,
            many=words.many,
            minus=MINUS,
            p=f"{(metric.quantile or 0) * 100:g}",
            level=f"value per {words.one}" if metric.level == "unit" else "events' values",
        ),
        cuped=metric.cuped,
        rows=tuple(rows),
    )


def technical(metric: MetricResult, words: Names) -> tuple[Technical, ...]:
    return tuple(
        Technical(
            metric=words.metric(metric.metric),
            variant=narrative.variant(c.variant),
            cuped=metric.cuped,
            difference=_interval(c.absolute.sequential, metric.type, False, words.one),
            p_value=_p(c.relative.sequential),
            p_adjusted=_p_adjusted(c.relative.sequential),
            fixed_horizon=_interval(c.relative.fixed_horizon, metric.type, True, words.one),
            fixed_p=_p(c.relative.fixed_horizon),
        )
        for c in metric.comparisons
    )


def page(results: ExperimentResults, series: Timeseries, plan: ExperimentPlan | None) -> Page:
    words = narrative.names_of(plan)
    return Page(
        headline=narrative.headline(results, words),
        next_step=narrative.next_step(results, words),
        names=words,
        control=results.control,
        metrics=tuple(metric_view(m, results.control, words) for m in results.metrics),
        technical=tuple(t for m in results.metrics for t in technical(m, words)),
        series_metric=words.metric(series.metric),
        chart_days=len(series.days),
        chart_data=chart_data(results, series),
        design=design_sentence(results, words),
    )


def design_sentence(results: ExperimentResults, words: Names) -> str:
    """Which always-valid test the ranges come from, and how far the planned reach is."""
    design = results.design
    if design is None:
        return ""
    reach = f"{count(design.planned_units)} {words.many}"
    if design.method == "mixture":
        return f"Test: always-valid mixture test, tightest at {reach}."
    if design.past_plan:
        return f"Test: planned for {reach}, now past them: the always-valid mixture test answers."
    return (
        f"Test: planned for {reach}, at {percent(design.information_fraction)} of them "
        f"(look {design.looks}); a change counts when it clears a boundary that spends the error rate over the plan."
    )


def chart_data(results: ExperimentResults, series: Timeseries) -> str:
    """The plots' data as JSON that is safe inside a <script> element: per day (UTC midnight), each
    treatment's cumulative relative lift in percent with its always-valid bounds, and units per variant."""
    variants = [u.variant for u in results.units]
    treatments = variants[1:]

    def column(treatment: str, field: str) -> list[float | None]:
        out: list[float | None] = []
        for day in series.days:
            found = next((c for c in day.comparisons if c.variant == treatment), None)
            value = (
                getattr(found.relative, field)
                if found is not None and isinstance(found.relative, Estimate)
                else None
            )
            out.append(None if value is None or not math.isfinite(value) else value * 100)
        return out

    data = {
        "control": narrative.variant(results.control),
        "x": [datetime(d.day.year, d.day.month, d.day.day, tzinfo=UTC).timestamp() for d in series.days],
        "lift": [
            {
                "variant": narrative.variant(t),
                "effect": column(t, "effect"),
                "low": column(t, "ci_low"),
                "high": column(t, "ci_high"),
            }
            for t in treatments
        ],
        "units": [
            {"variant": narrative.variant(v), "values": [d.units.get(v, 0) for d in series.days]}
            for v in variants
        ],
    }
    return orjson.dumps(data).decode().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
