"""One experiment phase's results from its typed data: pure, no I/O.

`analyse_phase` puts the parts together: every metric analysed and its p-values adjusted across
metrics x treatments, the projected impact, the primary metric's progress, the sample-ratio test
and the health checks, the guardrail verdicts and the decision, and (when asked) the breakdown by
one exposure attribute, bounded to MAX_SEGMENT_COMPARISONS comparisons.
"""

from __future__ import annotations

from dataclasses import replace

from flagd.experiments.catalog import ExperimentPlan
from flagd.experiments.model import BASIS_POINTS
from flagd.results import narrative
from flagd.results.analysis import (
    Method,
    Options,
    adjust,
    analyse_metric,
    impact,
    progress,
    srm,
    units_per_day,
)
from flagd.results.decision import decide, guardrail_verdicts
from flagd.results.funnels import funnel_steps
from flagd.results.judgments import health_checks
from flagd.results.model import (
    DesignInForce,
    ExperimentResults,
    MetricResult,
    PhaseData,
    Progress,
    Reduction,
    SegmentData,
    Segments,
    SegmentValue,
    VariantUnits,
)
from flagd.results.words import unit_noun

MAX_SEGMENT_COMPARISONS = 2_000
"""A breakdown lists whole segment values, largest first, while their comparisons (metrics x treatments
each) fit in this many; the others are counted as omitted. It bounds the answer (and its work) whatever
the number of variants and segment values."""


def planned(options: Options, plan: ExperimentPlan) -> Options:
    """The options with the experiment's own plan: the sequential design's units, the MDE, and its alpha
    unless the request chose one; and the planned-horizon design's reach when it is the method in use
    (by default for an experiment whose definition sets expected_units)."""
    experiment = plan.experiment
    method = method_of(options, plan)
    return replace(
        options,
        design_units=experiment.expected_units,
        mde=experiment.mde,
        alpha=options.alpha if options.alpha_given else experiment.alpha,
        method=method,
        planned_units=experiment.expected_units if method == "planned" else None,
    )


def method_of(options: Options, plan: ExperimentPlan) -> Method:
    """The method asked for, else planned when the experiment has a planned reach."""
    if options.method is not None:
        return options.method
    return "planned" if plan.experiment.planned else "mixture"


def design_in_force(options: Options) -> DesignInForce:
    """What the results' always-valid numbers come from (options as `planned` and the phase set them)."""
    fraction = options.units / options.design_units
    design = options.planned_design
    if design is None:
        return DesignInForce("mixture", options.design_units, fraction)
    boundary = design.critical_value(options.alpha)
    return DesignInForce(
        "planned",
        options.design_units,
        fraction,
        looks=len(design.looks),
        boundary=boundary if design.in_force == "planned" else None,
        past_plan=design.in_force == "mixture",
    )


def analyse_phase(plan: ExperimentPlan, data: PhaseData, options: Options) -> ExperimentResults:
    control, treatments = plan.control, plan.treatments
    tally = data.tally
    per_day = units_per_day(tally, data.started_at, data.ended_at, data.now)
    exposed = sum(tally.units.get(v, 0) for v in plan.variant_names)
    options = replace(planned(options, plan), units=exposed)
    share = plan.experiment.allocation_bp / BASIS_POINTS
    analysed = []
    primary_progress: Progress | None = None
    for role in plan.metrics:
        metric = role.metric
        reduction = data.reductions.get(metric.key, Reduction(metric.key, {}))
        result = analyse_metric(metric, role.role, reduction, control, treatments, options)
        control_sums = reduction.sums(control)
        result = replace(
            result,
            comparisons=tuple(
                replace(c, impact=impact(metric, c, per_day, share, control_sums)) for c in result.comparisons
            ),
            steps=funnel_steps(metric, role.role, reduction, control, treatments, options)
            if metric.steps
            else None,
        )
        if role.role == "primary" and primary_progress is None:
            maturing = sum((reduction.maturing or {}).get(v, 0) for v in plan.variant_names)
            primary_progress = progress(
                metric, control_sums, plan.weights, exposed, per_day, options, maturing
            )
        analysed.append(result)
    metrics = adjust(analysed, options.correction)
    sample_ratio = srm(tally.units, plan.weights)
    checks = health_checks(data, sample_ratio, plan.weights, unit_noun(plan.experiment.unit))
    results = ExperimentResults(
        experiment=plan.key,
        phase=data.phase,
        state=plan.experiment.state,
        as_of=data.now,
        freshness=data.freshness,
        control=control,
        alpha=options.alpha,
        correction=options.correction,
        units=tuple(VariantUnits(v, tally.units.get(v, 0)) for v in plan.variant_names),
        units_in_several_variants=tally.multiple,
        sample_ratio=sample_ratio,
        decision=decide(metrics, checks, primary_progress),
        health=checks,
        guardrails=guardrail_verdicts(metrics),
        progress=primary_progress,
        units_per_day=per_day,
        metrics=metrics,
        segments=None if data.segments is None else segments(plan, data.segments, options),
        refused_exposures=data.refused,
        design=design_in_force(options),
    )
    return replace(results, headline=narrative.headline(results, narrative.names_of(plan)))


def segments(plan: ExperimentPlan, data: SegmentData, options: Options) -> Segments:
    """Every metric broken down by one exposure attribute, p-values adjusted across all the segments."""
    control, treatments = plan.control, plan.treatments
    per_value = max(len(plan.metrics) * len(treatments), 1)
    ordered = sorted(data.population.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    kept = ordered[: MAX_SEGMENT_COMPARISONS // per_value]
    broken_down: dict[str, list[MetricResult]] = {}
    for value, _ in kept:
        for role in plan.metrics:
            metric = role.metric
            reduction = data.reductions.get(metric.key, {}).get(value, Reduction(metric.key, {}))
            broken_down.setdefault(value, []).append(
                analyse_metric(metric, role.role, reduction, control, treatments, options)
            )
    adjusted = iter(adjust([r for results in broken_down.values() for r in results], options.correction))
    values = tuple(
        SegmentValue(
            value,
            sum(v.units for v in results[0].variants) if results else 0,
            tuple(next(adjusted) for _ in results),
        )
        for value, results in broken_down.items()
    )
    omitted = len(ordered) - len(kept)
    comparisons = len(values) * len(plan.metrics) * len(treatments)
    warning = (
        f"{len(values)} segments x {len(plan.metrics)} metrics x {len(treatments)} variants are "
        f"{comparisons} comparisons: some will look significant by chance. The adjusted p-values "
        f"({options.correction}) account for all of them; a segment result is a question to test, not a finding."
    )
    if omitted:
        warning += (
            f" {omitted} smaller segment value(s) are left out: a breakdown holds at most "
            f"{MAX_SEGMENT_COMPARISONS} comparisons."
        )
    return Segments(data.attribute, warning, values, omitted)
