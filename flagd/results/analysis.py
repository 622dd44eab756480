"""Sufficient statistics per variant to the numbers a product manager reads: pure, no I/O.

For each metric and each treatment variant against control (the first variant of the split):
the means, the absolute and relative lift with fixed-horizon and always-valid (sequential)
intervals and p-values, the p-values adjusted across the experiment's metrics x variants (Holm
by default), and the chance to beat control. CUPED uses each unit's same metric before its
exposure where the metric has one (conversion, count, sum); ratio-like metrics are analysed
with the delta method. What each type means is in `flagd.results.metric_types`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from flagd.experiments.model import Metric, Role
from flagd.results.metric_types import kind
from flagd.results.model import (
    Comparison,
    Correction,
    Estimate,
    ExposureTally,
    Impact,
    MetricResult,
    NoEstimate,
    Progress,
    Projection,
    QuantileSums,
    Reduction,
    SampleRatio,
    Scale,
    SeriesComparison,
    SeriesPoint,
    StatisticProblem,
    TestResult,
    VariantSummary,
    VariantSums,
)
from stats import (
    AnalysisResult,
    BetaPrior,
    PowerInputs,
    ProportionStatistic,
    QuantileSample,
    QuantileStatistic,
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
    quantile_statistic,
    sample_ratio_mismatch,
    sequential,
    sequential_sample_size,
)
from stats.planned import PlannedDesign, planned
from stats.sufficient import Statistic

DESIGN_UNITS = 100_000
"""The default of an experiment's `expected_units`: its sequential test is tightest there (fixed in advance)."""


Method = Literal["planned", "mixture"]


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
    method: Method | None = None
    """The always-valid test asked for (None: planned for an experiment with a planned reach)."""
    planned_units: int | None = None
    """The planned reach when the planned design is in use (flagd.results.report.planned sets it)."""
    earlier_looks: tuple[float, ...] = ()
    """The information fractions of the looks taken before this one (flagd.results.looks)."""
    units: int = 0
    """The phase's exposed units: this look's information fraction is units / planned_units."""

    @property
    def design(self) -> SequentialDesign:
        return SequentialDesign.from_expected_sample_size(self.design_units, self.alpha)

    @property
    def planned_design(self) -> PlannedDesign | None:
        """The planned-horizon design at this look, or None when the mixture test is used."""
        if self.planned_units is None or self.units <= 0:
            return None
        return PlannedDesign.at(self.planned_units, self.earlier_looks, self.units)


def always_valid(base: Statistic, other: Statistic, options: Options, *, relative: bool) -> AnalysisResult:
    """The always-valid test in use: the planned design's up to its reach (stats.planned), else the mixture."""
    design = options.planned_design
    if design is not None:
        return planned(base, other, design, relative=relative, alpha=options.alpha)
    return sequential(base, other, options.design, relative=relative, alpha=options.alpha)


def statistic(metric: Metric, sums: VariantSums, *, cuped: bool) -> Statistic:
    """The stats/ statistic of one variant of `metric`."""
    if kind(metric.type).ratio:
        k = kind(metric.type).scale
        return RatioStatistic(
            SampleMeanStatistic(sums.n, sums.y * k, sums.y2 * k * k),
            SampleMeanStatistic(sums.n, sums.d, sums.d2),
            sums.yd * k,
        )
    post: ProportionStatistic | SampleMeanStatistic
    pre: ProportionStatistic | SampleMeanStatistic
    if kind(metric.type).proportion:
        post, pre = ProportionStatistic(sums.n, sums.y), ProportionStatistic(sums.n, sums.x)
    else:
        post, pre = SampleMeanStatistic(sums.n, sums.y, sums.y2), SampleMeanStatistic(sums.n, sums.x, sums.x2)
    if cuped:
        return RegressionAdjustedStatistic(post, pre, sums.xy)
    return post


def quantile_arm(metric: Metric, sums: QuantileSums | None) -> QuantileStatistic:
    """A variant's quantile and its standard error, from the order statistics read (stats.quantile); a
    variant without values has no units to test."""
    if sums is None or metric.quantile is None:
        return QuantileStatistic(0, 0.0, 0.0)
    sample = QuantileSample(
        metric.quantile,
        sums.units,
        sums.values,
        sums.below,
        sums.below_squares,
        sums.values_squares,
        sums.below_values,
    )
    return quantile_statistic(sample, sums.quantile, sums.low, sums.high)


def arm(metric: Metric, reduction: Reduction, variant: str, *, cuped: bool) -> Statistic:
    """The stats/ statistic of one variant of `metric` in `reduction`."""
    if metric.type == "quantile":
        return quantile_arm(metric, reduction.quantiles.get(variant))
    return statistic(metric, reduction.sums(variant), cuped=cuped)


def shown_value(metric: Metric, reduction: Reduction, variant: str) -> float | None:
    """The variant's value as shown: its quantile, its mean."""
    if metric.type == "quantile":
        found = reduction.quantiles.get(variant)
        return found.quantile if found is not None else None
    return mean(metric, reduction.sums(variant))


def test_result(result: AnalysisResult) -> TestResult:
    if result.problem is not None:
        return NoEstimate(StatisticProblem(result.problem.problem.value, result.problem.message))
    return Estimate(result.effect, result.ci_low, result.ci_high, result.p_value)


def mean(metric: Metric, sums: VariantSums) -> float | None:
    """The variant's value of the metric as shown: per unit, or sum(y) / sum(d) for ratio types."""
    if kind(metric.type).ratio:
        return sums.y * kind(metric.type).scale / sums.d if sums.d else None
    return sums.y / sums.n if sums.n else None


def _uses_cuped(metric: Metric, sums: Mapping[str, VariantSums], options: Options) -> bool:
    return options.cuped and kind(metric.type).cuped and any(s.x != 0 for s in sums.values())


def analyse_metric(
    metric: Metric,
    role: Role,
    reduction: Reduction,
    control: str,
    treatments: Sequence[str],
    options: Options,
) -> MetricResult:
    """One metric: each variant's units and mean, and each treatment's comparison with control."""
    sums = {v: reduction.sums(v) for v in (control, *treatments)}
    use_cuped = _uses_cuped(metric, sums, options)
    base = arm(metric, reduction, control, cuped=use_cuped)
    comparisons = []
    for treatment in treatments:
        other = arm(metric, reduction, treatment, cuped=use_cuped)
        scales = {
            relative: Scale(
                test_result(fixed_horizon(base, other, relative=relative, alpha=options.alpha)),
                test_result(always_valid(base, other, options, relative=relative)),
            )
            for relative in (False, True)
        }
        comparisons.append(
            Comparison(
                treatment,
                scales[False],
                scales[True],
                _chance(metric, sums[control], sums[treatment], base, other),
            )
        )
    maturing = reduction.maturing
    return MetricResult(
        metric=metric.key,
        role=role,
        type=metric.type,
        direction=metric.direction,
        cuped=use_cuped,
        cap=reduction.cap,
        variants=tuple(
            VariantSummary(
                v, s.n, shown_value(metric, reduction, v), None if maturing is None else maturing.get(v, 0)
            )
            for v, s in sums.items()
        ),
        comparisons=tuple(comparisons),
        quantile=metric.quantile,
        level=metric.level if metric.type == "quantile" else None,
    )


def _chance(
    metric: Metric, control: VariantSums, treatment: VariantSums, base: Statistic, other: Statistic
) -> float | None:
    """The posterior probability that the treatment's mean beats control's in the metric's direction."""
    if kind(metric.type).proportion:
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


def adjust(metrics: Sequence[MetricResult], correction: Correction) -> tuple[MetricResult, ...]:
    """The metrics with each relative estimate's p-value adjusted across every metric x treatment."""
    places = [
        (test, m_index, c_index)
        for test in ("fixed_horizon", "sequential")
        for m_index, m in enumerate(metrics)
        for c_index, c in enumerate(m.comparisons)
        if isinstance(getattr(c.relative, test), Estimate)
    ]
    adjusted: dict[tuple[str, int, int], float | None] = {}
    for test in ("fixed_horizon", "sequential"):
        mine = [place for place in places if place[0] == test]
        p_values = [getattr(metrics[m].comparisons[c].relative, test).p_value for _, m, c in mine]
        if correction == "none" or not p_values:
            values = p_values
        else:
            result = holm(p_values) if correction == "holm" else benjamini_hochberg(p_values)
            values = list(result.p_values) if result.problem is None else [math.nan] * len(p_values)
        adjusted.update(
            {place: v if math.isfinite(v) else None for place, v in zip(mine, values, strict=True)}
        )
    out = []
    for m_index, m in enumerate(metrics):
        comparisons = []
        for c_index, c in enumerate(m.comparisons):
            relative = c.relative
            for test in ("fixed_horizon", "sequential"):
                key = (test, m_index, c_index)
                if key in adjusted:
                    estimate = getattr(relative, test)
                    relative = replace(relative, **{test: replace(estimate, p_value_adjusted=adjusted[key])})
            comparisons.append(replace(c, relative=relative))
        out.append(replace(m, comparisons=tuple(comparisons)))
    return tuple(out)


def srm(counts: Mapping[str, int], weights: Mapping[str, int]) -> SampleRatio | NoEstimate:
    """Sample-ratio mismatch of the exposed units against the designed weights."""
    names = list(weights)
    result = sample_ratio_mismatch([counts.get(n, 0) for n in names], [float(weights[n]) for n in names])
    if result.problem is not None:
        return NoEstimate(StatisticProblem(result.problem.problem.value, result.problem.message))
    return SampleRatio(result.p_value, result.mismatch, result.chi_squared)


MIN_ELAPSED_DAYS = 1 / 24
"""Traffic is estimated over at least an hour of the phase, so its first minutes do not project wildly."""


def units_per_day(
    tally: ExposureTally, started: datetime | None, ended: datetime | None, now: datetime
) -> float | None:
    """New units a day: those first exposed since the phase started over the time it has run. Units with a
    backdated first exposure count in the analysis but not in the traffic (they did not arrive in the phase).
    A phase whose start was not recorded: over its complete days (today's partial one left out unless it is
    all there is)."""
    if started is not None:
        end = min(now, ended) if ended is not None else now
        days = max((end - started).total_seconds() / 86_400, MIN_ELAPSED_DAYS)
        return tally.since_start / days if tally.since_start else None
    today = now.date()
    complete = [n for day, n in tally.daily.items() if day < today]
    if complete:
        return sum(complete) / len(complete)
    return float(sum(tally.daily.values())) if tally.daily else None


def progress(
    metric: Metric,
    control: VariantSums,
    weights: Mapping[str, int],
    units: int,
    per_day: float | None,
    options: Options,
    maturing: int = 0,
) -> Progress:
    """Units needed for the primary metric to detect a relative change of `options.mde` with 80% power.

    `units` are the units exposed, `maturing` those of them a retention metric does not count yet. Its
    progress counts the matured ones, and at a steady `per_day` the unit that completes the sample is
    the `needed`-th exposed, which matures `to_day` days after its exposure: `to_day + (needed - units) /
    per_day` days from now (a negative number of days: it was exposed long enough ago)."""
    counted = units - maturing
    unknown = Progress(options.mde, None, counted, None)
    if options.planned_units is not None:
        # The planned design decides by its planned reach: that is how many units the phase needs.
        return _progress(options, options.planned_units, units, counted, per_day, metric)
    if not kind(metric.type).progress or control.n < 2:
        return unknown
    moments = statistic(metric, control, cuped=False)
    assert isinstance(moments, ProportionStatistic | SampleMeanStatistic)
    solved = sequential_sample_size(
        PowerInputs(moments.mean, moments.variance, alpha=options.alpha),
        options.design,
        options.mde,
        relative=True,
    )
    if solved.problem is not None or not math.isfinite(solved.value):
        return unknown
    smallest_share = min(weights.values()) / sum(weights.values())
    return _progress(options, math.ceil(solved.value / smallest_share), units, counted, per_day, metric)


def _progress(
    options: Options, needed: int, units: int, counted: int, per_day: float | None, metric: Metric
) -> Progress:
    lag = metric.to_day if metric.type == "retention" else 0
    if counted >= needed:
        return Progress(options.mde, needed, counted, 0.0)
    days = max(lag + (needed - units) / per_day, 0.0) if per_day else None
    return Progress(options.mde, needed, counted, days)


def impact(
    metric: Metric,
    comparison: Comparison,
    per_day: float | None,
    allocation_share: float,
    control: VariantSums,
) -> Impact | None:
    """The projected change per day and per year if the variant shipped to every eligible unit, with its interval.

    The always-valid absolute effect times the eligible units a day (new units a day in the
    experiment, divided by its share of traffic): for conversion, count and sum metrics the effect is
    per unit; for a mean metric it is per event, so it is also multiplied by the control's events per
    unit (what a mean is taken over). Other ratios and surveys have no total to project.
    """
    result = comparison.absolute.sequential
    projects = kind(metric.type).impact
    if projects is None or not isinstance(result, Estimate) or not per_day:
        return None
    eligible = per_day / allocation_share
    per_unit = 1.0
    if projects == "per event":
        if not control.n or not control.d:
            return None
        per_unit = control.d / control.n

    def projected(factor: float) -> Projection:
        scale = eligible * per_unit * factor
        low, high = (v * scale if math.isfinite(v) else None for v in (result.ci_low, result.ci_high))
        return Projection(result.effect * scale, low, high)

    return Impact(eligible, per_unit if projects == "per event" else None, projected(1.0), projected(365.0))


def series(
    metric: Metric,
    days: Sequence[tuple[date, Reduction]],
    control: str,
    treatments: Sequence[str],
    options: Options,
) -> tuple[SeriesPoint, ...]:
    """Per day, each treatment's cumulative estimate with its always-valid interval, carried over the looks.

    The intervals are intersected from day to day (`stats.accumulate_looks`): each stays valid at every
    look, so the band only narrows, and looking daily does not inflate the error rate.
    """
    names = (control, *treatments)
    looks: dict[tuple[str, bool], list[AnalysisResult]] = {}
    daily: list[float] = []
    for _, reduction in days:
        sums = {v: reduction.sums(v) for v in names}
        use_cuped = _uses_cuped(metric, sums, options)
        base = arm(metric, reduction, control, cuped=use_cuped)
        day = options
        if options.planned_units is not None:
            # Each day is a look of the planned design, after the days before it (and the stored looks).
            units = sum(s.n for s in sums.values())
            day = replace(options, units=units, earlier_looks=(*options.earlier_looks, *daily))
            if units > 0:
                daily.append(units / options.planned_units)
        for treatment in treatments:
            other = arm(metric, reduction, treatment, cuped=use_cuped)
            for relative in (False, True):
                result = always_valid(base, other, day, relative=relative)
                looks.setdefault((treatment, relative), []).append(result)
    carried = {key: accumulate_looks(results) for key, results in looks.items()}
    return tuple(
        SeriesPoint(
            day,
            {v: reduction.sums(v).n for v in names},
            tuple(
                SeriesComparison(
                    t, test_result(carried[(t, False)][index]), test_result(carried[(t, True)][index])
                )
                for t in treatments
            ),
        )
        for index, (day, reduction) in enumerate(days)
    )
