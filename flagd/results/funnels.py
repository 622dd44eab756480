"""A funnel's steps analysed from the units reaching each one: pure, no I/O.

From n units of a variant of which N_k completed step k (N_0 = n), every step's two conversions have
sufficient statistics that need nothing else, since each unit's y and d are 0 or 1 and reaching step k
implies reaching step k - 1:

    from exposure   y = reached k                    n, Σy = Σy² = N_k                  a share of units
    from previous   y = reached k, d = reached k-1   Σy = Σy² = Σyd = N_k, Σd = Σd² = N_{k-1}
                                                     a ratio, by the delta method (conditional conversion)

Each is analysed by `analysis.analyse_metric` like any metric, and the p-values are adjusted across
the funnel's comparisons (2K - 1 per treatment) with the experiment's correction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from flagd.experiments.model import Metric, Role
from flagd.results.analysis import Options, adjust, analyse_metric
from flagd.results.model import FunnelStepResult, MetricResult, Reduction, VariantSums, VariantUnits


def step_sums(n: int, reached: int, previous: int, *, conditional: bool) -> VariantSums:
    """A variant's sums of one step's conversion from exposure, or (conditional) from the previous step."""
    if conditional:
        return VariantSums(n, reached, reached, previous, previous, reached)
    return VariantSums(n, reached, reached, n, n, reached)


def _reached(reduction: Reduction, variant: str, steps: int) -> tuple[int, ...]:
    counts = (reduction.reached or {}).get(variant)
    return counts if counts is not None and len(counts) == steps else (0,) * steps


def funnel_steps(
    metric: Metric,
    role: Role,
    reduction: Reduction,
    control: str,
    treatments: Sequence[str],
    options: Options,
) -> tuple[FunnelStepResult, ...]:
    """Every step of the funnel: units reaching it, its conversion from exposure and from the previous
    step, for each treatment against control."""
    names = (control, *treatments)
    count = len(metric.steps)
    n = {v: reduction.sums(v).n for v in names}
    reached = {v: _reached(reduction, v, count) for v in names}
    results: list[MetricResult] = []
    for k in range(1, count + 1):
        for conditional in (False, True) if k > 1 else (False,):
            step = Metric(
                key=f"{metric.key}:step-{k}" + ("-from-previous" if conditional else ""),
                name=f"{metric.name}, step {k}",
                type="ratio" if conditional else "conversion",
                direction=metric.direction,
            )
            variants = {
                v: step_sums(
                    n[v], reached[v][k - 1], reached[v][k - 2] if k > 1 else n[v], conditional=conditional
                )
                for v in names
            }
            results.append(
                analyse_metric(step, role, Reduction(step.key, variants), control, treatments, options)
            )
    adjusted = iter(adjust(results, options.correction))
    out = []
    for k, definition in enumerate(metric.steps, 1):
        from_exposure = next(adjusted)
        from_previous = next(adjusted) if k > 1 else None
        out.append(
            FunnelStepResult(
                step=k,
                event=definition.event,
                reached=tuple(VariantUnits(v, reached[v][k - 1]) for v in names),
                from_exposure=replace(from_exposure, cuped=False),
                from_previous=from_previous,
            )
        )
    return tuple(out)
