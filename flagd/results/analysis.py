"""Sufficient statistics per variant to the numbers a product manager reads: pure, no I/O.

For each metric and each treatment variant against control (the first variant of the split):
the means, the absolute and relative lift with fixed-horizon and always-valid (sequential)
intervals and p-values, the p-values adjusted across the experiment's metrics x variants (Holm
by default), and the chance to beat control. CUPED uses each unit's same metric before its
exposure where the metric has one (conversion, count, sum); ratio-like metrics are analysed
with the delta method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from flagd.experiments.model import Metric
from flagd.results.reduce import RATIO_TYPES, Reduction, VariantSums
from stats import (
    AnalysisResult,
    BetaPrior,
    PowerInputs,
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    accumulate_looks,
    benjamini_hochberg,
    beta_binomial,
    fixed_horizon,
    gaussian_effect,
    holm,
    sample_ratio_mismatch,
    sequential,
    sequential_sample_size,
)

Correction = Literal["holm", "bh", "none"]
Statistic = ProportionStatistic | SampleMeanStatistic | RatioStatistic | RegressionAdjustedStatistic

DESIGN_UNITS = 100_000
"""The default of an experiment's `expected_units`: its sequential test is tightest there (fixed in advance)."""


@dataclass(frozen=True, slots=True)
class Options:
    alpha: float = 0.05
    cuped: bool = True
    correction: Correction = "holm"
    design_units: int = DESIGN_UNITS
    mde: float = 0.05
    """The relative change the primary metric should be able to detect (for progress)."""
    alpha_given: bool = False
    """Whether the request chose alpha (else the experiment's own is used)."""


def statistic(metric: Metric, sums: VariantSums, *, cuped: bool) -> Statistic:
    """The stats/ statistic of one variant of `metric`."""
    if metric.type in RATIO_TYPES:
        return RatioStatistic(
            SampleMeanStatistic(sums.n, sums.y, sums.y2),
            SampleMeanStatistic(sums.n, sums.d, sums.d2),
            sums.yd,
        )
    post: ProportionStatistic | SampleMeanStatistic
    pre: ProportionStatistic | SampleMeanStatistic
    if metric.type == "conversion":
        post, pre = ProportionStatistic(sums.n, sums.y), ProportionStatistic(sums.n, sums.x)
    else:
        post, pre = SampleMeanStatistic(sums.n, sums.y, sums.y2), SampleMeanStatistic(sums.n, sums.x, sums.x2)
    if cuped:
        return RegressionAdjustedStatistic(post, pre, sums.xy)
    return post


def _result(result: AnalysisResult) -> dict[str, Any]:
    if result.problem is not None:
        return {"problem": {"code": result.problem.problem.value, "message": result.problem.message}}
    return {
        "effect": result.effect,
        "ciLow": _finite(result.ci_low),
        "ciHigh": _finite(result.ci_high),
        "pValue": result.p_value,
    }


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded end of an interval is null."""
    return value if math.isfinite(value) else None


def _mean(metric: Metric, sums: VariantSums) -> float | None:
    if metric.type in RATIO_TYPES:
        value = sums.y / sums.d if sums.d else None
        return None if value is None else value * (100.0 if metric.type == "nps" else 1.0)
    return sums.y / sums.n if sums.n else None


def analyse_metric(
    metric: Metric, reduction: Reduction, control: str, treatments: Sequence[str], options: Options
) -> dict[str, Any]:
    """One metric: each variant's units and mean, and each treatment's comparison with control."""
    sums = {
        v: reduction.variants.get(v) or VariantSums(v, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        for v in (control, *treatments)
    }
    use_cuped = options.cuped and metric.type not in RATIO_TYPES and any(s.x != 0 for s in sums.values())
    design = SequentialDesign.from_expected_sample_size(options.design_units, options.alpha)
    variants = [{"variant": v, "units": s.n, "mean": _mean(metric, s)} for v, s in sums.items()]
    comparisons = []
    base = statistic(metric, sums[control], cuped=use_cuped)
    for treatment in treatments:
        other = statistic(metric, sums[treatment], cuped=use_cuped)
        comparison: dict[str, Any] = {"variant": treatment}
        for scale, relative in (("absolute", False), ("relative", True)):
            comparison[scale] = {
                "fixedHorizon": _result(fixed_horizon(base, other, relative=relative, alpha=options.alpha)),
                "sequential": _result(
                    sequential(base, other, design, relative=relative, alpha=options.alpha)
                ),
            }
        comparison["chanceToBeatControl"] = _chance(metric, sums[control], sums[treatment], base, other)
        comparisons.append(comparison)
    return {
        "metric": metric.key,
        "type": metric.type,
        "direction": metric.direction,
        "cuped": use_cuped,
        "cap": reduction.cap,
        "variants": variants,
        "comparisons": comparisons,
    }


def _chance(
    metric: Metric, control: VariantSums, treatment: VariantSums, base: Statistic, other: Statistic
) -> float | None:
    """The posterior probability that the treatment's mean beats control's in the metric's direction."""
    if metric.type == "conversion":
        result = beta_binomial(
            ProportionStatistic(control.n, control.y),
            ProportionStatistic(treatment.n, treatment.y),
            BetaPrior(),
        )
        chance = result.chance_to_beat_control if result.problem is None else math.nan
    else:
        effect = gaussian_effect(base, other)
        chance = effect.chance_to_win if effect.problem is None else math.nan
    if not math.isfinite(chance):
        return None
    return chance if metric.direction == "increase" else 1.0 - chance


def adjust(metrics: list[dict[str, Any]], correction: Correction) -> None:
    """Add each comparison's p-values adjusted across every metric x treatment, in place."""
    for test in ("fixedHorizon", "sequential"):
        places = [
            c["relative"][test] for m in metrics for c in m["comparisons"] if "pValue" in c["relative"][test]
        ]
        p_values = [place["pValue"] for place in places]
        if correction == "none" or not p_values:
            adjusted = p_values
        else:
            result = holm(p_values) if correction == "holm" else benjamini_hochberg(p_values)
            adjusted = list(result.p_values) if result.problem is None else [math.nan] * len(p_values)
        for place, value in zip(places, adjusted, strict=True):
            place["pValueAdjusted"] = value if math.isfinite(value) else None


def srm(counts: Mapping[str, int], weights: Mapping[str, int]) -> dict[str, Any]:
    """Sample-ratio mismatch of the exposed units against the designed weights."""
    names = list(weights)
    result = sample_ratio_mismatch([counts.get(n, 0) for n in names], [float(weights[n]) for n in names])
    if result.problem is not None:
        return {"problem": {"code": result.problem.problem.value, "message": result.problem.message}}
    return {"pValue": result.p_value, "mismatch": result.mismatch, "chiSquared": result.chi_squared}


def units_per_day(daily: Mapping[date, int], today: date) -> float | None:
    """New units a day over the phase's complete days (today's partial day left out unless it is all there is)."""
    complete = [n for day, n in daily.items() if day < today]
    if complete:
        return sum(complete) / len(complete)
    return float(sum(daily.values())) if daily else None


def progress(
    metric: Metric,
    control: VariantSums,
    weights: Mapping[str, int],
    units: int,
    per_day: float | None,
    options: Options,
) -> dict[str, Any]:
    """Units needed for the primary metric to detect a relative change of `options.mde` with 80% power."""
    if metric.type in RATIO_TYPES or control.n < 2:
        return {"mde": options.mde, "neededUnits": None, "units": units, "daysRemaining": None}
    if metric.type == "conversion":
        mean = control.y / control.n
        variance = mean * (1 - mean)
    else:
        mean = control.y / control.n
        variance = (control.y2 - control.y**2 / control.n) / (control.n - 1)
    design = SequentialDesign.from_expected_sample_size(options.design_units, options.alpha)
    solved = sequential_sample_size(
        PowerInputs(mean, variance, alpha=options.alpha), design, options.mde, relative=True
    )
    if solved.problem is not None or not math.isfinite(solved.value):
        return {"mde": options.mde, "neededUnits": None, "units": units, "daysRemaining": None}
    smallest_share = min(weights.values()) / sum(weights.values())
    needed = math.ceil(solved.value / smallest_share)
    remaining = max(needed - units, 0)
    days = remaining / per_day if per_day else None
    return {"mde": options.mde, "neededUnits": needed, "units": units, "daysRemaining": days}


def impact(
    metric: Metric,
    comparison: Mapping[str, Any],
    per_day: float | None,
    allocation_share: float,
    control: VariantSums | None = None,
) -> dict[str, Any] | None:
    """The projected change per day and per year if the variant shipped to every eligible unit, with its interval.

    The always-valid absolute effect times the eligible units a day (new units a day in the
    experiment, divided by its share of traffic): for conversion, count and sum metrics the effect is
    per unit; for a mean metric it is per event, so it is also multiplied by the control's events per
    unit (what a mean is taken over). Other ratios and surveys have no total to project.
    """
    result = comparison["absolute"]["sequential"]
    if metric.type not in ("conversion", "count", "sum", "mean") or "effect" not in result or not per_day:
        return None
    eligible = per_day / allocation_share
    per_unit = 1.0
    if metric.type == "mean":
        if control is None or not control.n or not control.d:
            return None
        per_unit = control.d / control.n

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * eligible * per_unit * factor

    return {
        "eligibleUnitsPerDay": eligible,
        "eventsPerUnit": per_unit if metric.type == "mean" else None,
        "perDay": {
            k: scaled(result[v], 1.0) for k, v in (("effect", "effect"), ("low", "ciLow"), ("high", "ciHigh"))
        },
        "perYear": {
            k: scaled(result[v], 365.0)
            for k, v in (("effect", "effect"), ("low", "ciLow"), ("high", "ciHigh"))
        },
    }


def series(
    metric: Metric,
    days: Sequence[tuple[date, Reduction]],
    control: str,
    treatments: Sequence[str],
    options: Options,
) -> list[dict[str, Any]]:
    """Per day, each treatment's cumulative estimate with its always-valid interval, carried over the looks.

    The intervals are intersected from day to day (`stats.accumulate_looks`): each stays valid at every
    look, so the band only narrows, and looking daily does not inflate the error rate.
    """
    design = SequentialDesign.from_expected_sample_size(options.design_units, options.alpha)
    empty = {v: VariantSums(v, 0, 0, 0, 0, 0, 0, 0, 0, 0) for v in (control, *treatments)}
    looks: dict[tuple[str, bool], list[AnalysisResult]] = {}
    for _, reduction in days:
        sums = {v: reduction.variants.get(v) or empty[v] for v in empty}
        use_cuped = options.cuped and metric.type not in RATIO_TYPES and any(s.x != 0 for s in sums.values())
        base = statistic(metric, sums[control], cuped=use_cuped)
        for treatment in treatments:
            other = statistic(metric, sums[treatment], cuped=use_cuped)
            for relative in (False, True):
                result = sequential(base, other, design, relative=relative, alpha=options.alpha)
                looks.setdefault((treatment, relative), []).append(result)
    carried = {key: accumulate_looks(results) for key, results in looks.items()}
    points = []
    for index, (day, reduction) in enumerate(days):
        point: dict[str, Any] = {
            "day": day.isoformat(),
            "units": {v: (reduction.variants.get(v) or empty[v]).n for v in empty},
            "comparisons": [
                {
                    "variant": t,
                    "absolute": _result(carried[(t, False)][index]),
                    "relative": _result(carried[(t, True)][index]),
                }
                for t in treatments
            ],
        }
        points.append(point)
    return points
