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

from flagd.results.model import Check, Comparison, Decision, Estimate, MetricResult, Progress, Scale, Verdict
from flagd.results.words import Change, clause, remaining, sentence

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
        first = failed[0]
        return Decision(
            "investigate",
            f"Investigate before deciding: {clause(first.found)}. {sentence(first.todo)}".strip(),
            failed_checks=tuple(c.check for c in failed),
        )
    harmed = [(m, c) for m in metrics if m.role == "guardrail" for c in m.comparisons if side(m, c) == "bad"]
    if harmed:
        metric, comparison = harmed[0]
        change = Change.of(comparison, metric.type)
        how = f", which it {_moved(change)} by {change.by()}" if change is not None else ""
        return Decision(
            "stop",
            f"Stop variant {comparison.variant}: it harms the guardrail {metric.metric}{how}. "
            "Stop the experiment (or the variant) and find out why.",
            variant=comparison.variant,
        )
    primary = next((m for m in metrics if m.role == "primary"), None)
    if primary is not None:
        winners = [c for c in primary.comparisons if side(primary, c) == "good"]
        if winners:
            best = max(winners, key=lambda c: abs(_effect(c.absolute)))
            change = Change.of(best, primary.type)
            assert change is not None, "a winner has an always-valid interval"
            return Decision(
                "ship",
                f"Ship variant {best.variant}: it {_moved(change)} {primary.metric} by {change.by()} "
                "and harms no guardrail.",
                variant=best.variant,
            )
    days = None if progress is None else progress.days_remaining
    more = (
        f"keep running for {remaining(days)} at the current traffic"
        if days is not None and math.isfinite(days) and days > 0
        else "keep running to collect more data"
    )
    on = f" on {primary.metric}" if primary is not None else ""
    return Decision(
        "keep running", f"No variant is a clear winner{on} yet and no guardrail is harmed: {more}."
    )


def _moved(change: Change) -> str:
    return "raises" if change.effect > 0 else "lowers"


def _effect(scale: Scale) -> float:
    result = scale.sequential
    assert isinstance(result, Estimate), "only estimated comparisons are ranked"
    return result.effect
