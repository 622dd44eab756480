"""A quantile metric on the results page: what its values are, in words, and its rows."""

from __future__ import annotations

from flagd.experiments.model import QuantileLevel
from flagd.results.model import Comparison, Estimate, MetricResult, Scale, VariantSummary
from flagd.results.narrative import Names
from flagd.web.views import metric_view


def quantile_result(level: QuantileLevel) -> MetricResult:
    estimate = Estimate(120.0, 40.0, 200.0, 0.01)
    return MetricResult(
        metric="load-p90",
        role="guardrail",
        type="quantile",
        direction="decrease",
        cuped=False,
        cap=None,
        variants=(VariantSummary("control", 1000, 800.0), VariantSummary("slow", 1000, 920.0)),
        comparisons=(
            Comparison(
                "slow", Scale(estimate, estimate), Scale(Estimate(0.15, 0.05, 0.25, 0.01), estimate), 0.01
            ),
        ),
        quantile=0.9,
        level=level,
    )


def test_should_say_which_quantile_of_what_a_quantile_metric_shows() -> None:
    names = Names({"load-p90": "Page load, p90"}, ("user", "users"))
    event = metric_view(quantile_result("event"), "control", names)
    assert event.means == "the p90 of the events' values"
    assert event.name == "Page load, p90"
    assert len(event.rows) == 2
    assert metric_view(quantile_result("unit"), "control", names).means == "the p90 of the value per user"
