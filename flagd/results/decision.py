"""The recommendation, in plain language, from the analysed metrics and the health checks: pure.

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
from typing import Any

from flagd.results.health import Check


def _interval(comparison: dict[str, Any], scale: str = "absolute") -> tuple[float, float] | None:
    result = comparison[scale]["sequential"]
    if "effect" not in result:
        return None
    low = result["ciLow"] if result["ciLow"] is not None else -math.inf
    high = result["ciHigh"] if result["ciHigh"] is not None else math.inf
    return low, high


def _side(metric: dict[str, Any], comparison: dict[str, Any]) -> str:
    """'good', 'bad' or 'unclear': where the metric's always-valid interval of the difference lies.

    The absolute difference decides (its interval is always bounded; the relative one is unbounded
    while the control mean is not clearly away from zero, and has the same sign when it is not)."""
    interval = _interval(comparison)
    if interval is None:
        return "unclear"
    low, high = interval
    up = metric["direction"] == "increase"
    if low > 0:
        return "good" if up else "bad"
    if high < 0:
        return "bad" if up else "good"
    return "unclear"


def _percent(interval: tuple[float, float]) -> str:
    low, high = (f"{v:+.1%}" if math.isfinite(v) else ("-inf" if v < 0 else "+inf") for v in interval)
    return f"[{low}, {high}]"


def guardrail_verdicts(metrics: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """harmed / not harmed / inconclusive, per guardrail and variant."""
    verdicts = []
    for metric in metrics:
        if metric["role"] != "guardrail":
            continue
        for comparison in metric["comparisons"]:
            side = _side(metric, comparison)
            verdict = {"bad": "harmed", "good": "not harmed"}.get(side, "inconclusive")
            verdicts.append(
                {"metric": metric["metric"], "variant": comparison["variant"], "verdict": verdict}
            )
    return verdicts


def decide(
    metrics: Sequence[dict[str, Any]], checks: Sequence[Check], progress: dict[str, Any] | None
) -> dict[str, Any]:
    failed = [c for c in checks if not c.ok]
    if failed:
        return {
            "action": "investigate",
            "reason": f"{failed[0].name} check failed: {failed[0].found}. {failed[0].todo}.".replace(
                "..", "."
            ),
            "failedChecks": [c.name for c in failed],
        }
    harmed = [v for v in guardrail_verdicts(metrics) if v["verdict"] == "harmed"]
    if harmed:
        first = harmed[0]
        return {
            "action": "stop",
            "reason": f"variant {first['variant']} harms guardrail {first['metric']}; stop the experiment (or the "
            "variant) and look at why",
            "variant": first["variant"],
        }
    primary = next((m for m in metrics if m["role"] == "primary"), None)
    if primary is not None:
        winners = [c for c in primary["comparisons"] if _side(primary, c) == "good"]
        if winners:
            best = max(winners, key=lambda c: abs(c["absolute"]["sequential"]["effect"]))
            relative = _interval(best, "relative")
            change = (
                f"{best['relative']['sequential']['effect']:+.1%} (always-valid interval {_percent(relative)})"
                if relative is not None
                else f"{best['absolute']['sequential']['effect']:+.4g} per unit"
            )
            return {
                "action": "ship",
                "reason": f"variant {best['variant']} changes {primary['metric']} by {change} and harms no guardrail",
                "variant": best["variant"],
            }
    days = None if progress is None else progress.get("daysRemaining")
    more = (
        f"about {math.ceil(days)} more days at the current traffic"
        if isinstance(days, int | float) and math.isfinite(days) and days > 0
        else "more data"
    )
    return {
        "action": "keep running",
        "reason": f"no variant is a clear winner on the primary metric yet and no guardrail is harmed; it needs {more}",
    }
