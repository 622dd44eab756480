"""The decision in plain language, from the analysed metrics and the health checks: pure.

    investigate  a health check failed: no winner is shown, the numbers cannot be trusted yet
    stop         a guardrail is harmed by a variant (its always-valid interval is on the harmful side)
    ship         the primary metric wins for a variant (always-valid interval on the good side) and no
                 guardrail is harmed
    keep running otherwise, with roughly how many more days at the current traffic

Only always-valid (sequential) intervals decide, so looking every day does not inflate errors.
"Chance to beat control" is shown beside, never used as if it were 1 - p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from flagd.results.metric_types import kind
from flagd.results.model import Check, Comparison, Decision, Estimate, MetricResult, Progress, Scale, Verdict

Side = Literal["good", "bad", "unclear"]


def _interval(scale: Scale) -> tuple[float, float] | None:
    result = scale.sequential
    return (result.ci_low, result.ci_high) if isinstance(result, Estimate) else None


def side(metric: MetricResult, comparison: Comparison) -> Side:
    """Where the metric's always-valid interval of the difference lies, for the metric's direction.

    The absolute difference decides (its interval is always bounded; the relative one is unbounded
    while the control mean is not clearly away from zero, and has the same sign when it is not)."""
    interval = _interval(comparison.absolute)
    if interval is None:
        return "unclear"
    low, high = interval
    up = metric.direction == "increase"
    if low > 0:
        return "good" if up else "bad"
    if high < 0:
        return "bad" if up else "good"
    return "unclear"


def _percent(interval: tuple[float, float]) -> str:
    low, high = (f"{v:+.1%}" if math.isfinite(v) else ("-inf" if v < 0 else "+inf") for v in interval)
    return f"[{low}, {high}]"


def guardrail_verdicts(metrics: Sequence[MetricResult]) -> tuple[Verdict, ...]:
    """harmed / not harmed / inconclusive, per guardrail and variant."""
    return tuple(
        Verdict(metric.metric, comparison.variant, _VERDICTS[side(metric, comparison)])
        for metric in metrics
        if metric.role == "guardrail"
        for comparison in metric.comparisons
    )


_VERDICTS: dict[Side, Literal["harmed", "not harmed", "inconclusive"]] = {
    "bad": "harmed",
    "good": "not harmed",
    "unclear": "inconclusive",
}


def decide(metrics: Sequence[MetricResult], checks: Sequence[Check], progress: Progress | None) -> Decision:
    failed = [c for c in checks if not c.ok]
    if failed:
        return Decision(
            "investigate",
            f"{failed[0].check} check failed: {failed[0].found}. {failed[0].todo}.".replace("..", "."),
            failed_checks=tuple(c.check for c in failed),
        )
    harmed = [v for v in guardrail_verdicts(metrics) if v.verdict == "harmed"]
    if harmed:
        first = harmed[0]
        return Decision(
            "stop",
            f"variant {first.variant} harms guardrail {first.metric}; stop the experiment (or the variant) "
            "and look at why",
            variant=first.variant,
        )
    primary = next((m for m in metrics if m.role == "primary"), None)
    if primary is not None:
        winners = [c for c in primary.comparisons if side(primary, c) == "good"]
        if winners:
            best = max(winners, key=lambda c: abs(_effect(c.absolute)))
            relative = _interval(best.relative)
            if relative is not None and all(math.isfinite(v) for v in relative):
                change = f"{_effect(best.relative):+.1%} (always-valid interval {_percent(relative)})"
            else:  # the relative interval is unbounded (control's mean near zero): the absolute one decides
                change = _absolute(primary, best.absolute)
            return Decision(
                "ship",
                f"variant {best.variant} changes {primary.metric} by {change} and harms no guardrail",
                variant=best.variant,
            )
    days = None if progress is None else progress.days_remaining
    more = (
        f"about {math.ceil(days)} more days at the current traffic"
        if days is not None and math.isfinite(days) and days > 0
        else "more data"
    )
    return Decision(
        "keep running",
        f"no variant is a clear winner on the primary metric yet and no guardrail is harmed; it needs {more}",
    )


def _absolute(metric: MetricResult, scale: Scale) -> str:
    """An absolute difference with its always-valid interval, in the metric's own unit."""
    result = scale.sequential
    assert isinstance(result, Estimate), "only estimated comparisons are quoted"
    what = kind(metric.type)
    factor, digits = (100.0, ".2f") if what.percent_points else (1.0, ".4g")
    effect, low, high = (f"{v * factor:+{digits}}" for v in (result.effect, result.ci_low, result.ci_high))
    return f"{effect} {what.unit} (always-valid interval [{low}, {high}])"


def _effect(scale: Scale) -> float:
    result = scale.sequential
    assert isinstance(result, Estimate), "only estimated comparisons are ranked"
    return result.effect
