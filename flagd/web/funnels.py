"""A funnel metric as the results page draws it: per step, each variant's share of its units that
reached it, the drop-off from the previous step, and each treatment's step-to-step change."""

from __future__ import annotations

from dataclasses import dataclass, replace

from flagd.experiments.catalog import ExperimentPlan
from flagd.results import narrative
from flagd.results.model import ExperimentResults, MetricResult
from flagd.results.narrative import Names
from flagd.results.words import count, percent
from flagd.web.views import MetricView, metric_view


@dataclass(frozen=True, slots=True)
class FunnelBar:
    variant: str
    share: float
    """Of the variant's units, the share that reached the step (the meter's value, 0 to 1)."""
    reached: str
    """"4,210 (42.1%)": units and share, in words."""
    drop: str
    """"38% dropped since step 1": the drop-off from the previous step (empty for the first)."""


@dataclass(frozen=True, slots=True)
class FunnelStepView:
    step: int
    event: str
    bars: tuple[FunnelBar, ...]
    from_previous: MetricView | None
    """Each treatment's change of the conversion from the previous step, with its verdict."""


@dataclass(frozen=True, slots=True)
class FunnelView:
    key: str
    name: str
    steps: tuple[FunnelStepView, ...]


def funnel_view(metric: MetricResult, control: str, words: Names) -> FunnelView | None:
    """The funnel of a funnel metric (None for other metrics)."""
    if not metric.steps:
        return None
    exposed = {v.variant: v.units for v in metric.variants}
    steps = []
    previous: dict[str, int] = dict(exposed)
    for step in metric.steps:
        bars = []
        for reached in step.reached:
            n, before = exposed.get(reached.variant, 0), previous.get(reached.variant, 0)
            share = reached.units / n if n else 0.0
            drop = ""
            if step.step > 1:
                drop = (
                    f"{percent(1 - reached.units / before)} dropped since step {step.step - 1}"
                    if before
                    else f"none reached step {step.step - 1}"
                )
            bars.append(
                FunnelBar(
                    narrative.variant(reached.variant),
                    share,
                    f"{count(reached.units)} ({percent(share)})" if n else count(reached.units),
                    drop,
                )
            )
        previous = {r.variant: r.units for r in step.reached}
        conditional = step.from_previous
        steps.append(
            FunnelStepView(
                step.step,
                step.event,
                tuple(bars),
                # A conditional conversion is a share too: its changes read in percentage points.
                None
                if conditional is None
                else metric_view(replace(conditional, type="conversion"), control, words),
            )
        )
    return FunnelView(metric.metric, words.metric(metric.metric), tuple(steps))


def funnels(results: ExperimentResults, plan: ExperimentPlan | None) -> tuple[FunnelView, ...]:
    """The experiment's funnels, in the order of its metrics."""
    words = narrative.names_of(plan)
    views = (funnel_view(m, results.control, words) for m in results.metrics)
    return tuple(v for v in views if v is not None)
