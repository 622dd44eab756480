"""The page's rows in words: a retention metric shows its maturing units beside the units it counts."""

from __future__ import annotations

from flagd.results.model import Comparison, MetricResult, NoEstimate, Scale, StatisticProblem, VariantSummary
from flagd.results.narrative import Names
from flagd.web.views import metric_view


def _result(maturing: tuple[int | None, int | None]) -> MetricResult:
    none = NoEstimate(StatisticProblem("too_few_units", "too few units"))
    return MetricResult(
        metric="week-2",
        role="primary",
        type="retention",
        direction="increase",
        cuped=False,
        cap=None,
        variants=(
            VariantSummary("control", 1200, 0.25, maturing[0]),
            VariantSummary("treatment", 1180, 0.3, maturing[1]),
        ),
        comparisons=(Comparison("treatment", Scale(none, none), Scale(none, none), None),),
    )


def test_should_show_maturing_users_beside_the_counted_ones_and_nothing_without() -> None:
    view = metric_view(_result((340, 1_290)), "control", Names({}, ("user", "users")))
    assert [(r.units, r.maturing, r.value) for r in view.rows] == [
        ("1,200", "+ 340 maturing", "25%"),
        ("1,180", "+ 1,290 maturing", "30%"),
    ]
    assert view.means.startswith("share of users active in the metric's days after exposure")
    settled = metric_view(_result((0, None)), "control", Names({}, ("user", "users")))
    assert [r.maturing for r in settled.rows] == ["", ""]
