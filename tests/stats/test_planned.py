"""The planned-horizon design (stats.spending, stats.boundaries, stats.planned): published boundaries,
the error rate of irregular looks on simulated Brownian paths, and the interval agreeing with the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stats import ProportionStatistic, SampleMeanStatistic, SequentialDesign, sequential
from stats.boundaries import boundaries
from stats.estimate import Problem
from stats.planned import MIN_GAP, PARTIAL_FLOOR, PlannedDesign, planned, schedule
from stats.spending import obrien_fleming


def test_should_reproduce_the_published_obrien_fleming_spending_boundaries() -> None:
    # Lan-DeMets O'Brien-Fleming-type spending, two-sided alpha = 0.05, K equally spaced looks
    # (Jennison and Turnbull 2000, table 7.6 region; gsDesign sfLDOF gives the same to 3 decimals).
    assert boundaries((0.5, 1.0), 0.05) == pytest.approx((2.963, 1.969), abs=1e-3)
    five = boundaries((0.2, 0.4, 0.6, 0.8, 1.0), 0.05)
    assert five == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=1e-3)
    assert boundaries((1.0,), 0.05) == pytest.approx((1.959964,), abs=1e-6)  # one look: the fixed horizon
    assert obrien_fleming(1.0, 0.05) == 0.05
    assert obrien_fleming(0.0, 0.05) == 0.0


def test_should_keep_the_error_rate_at_alpha_with_irregular_looks_and_a_burst() -> None:
    # Brownian paths under the null, looked at at random fractions and a burst of close looks: the share
    # that ever crosses is alpha (within 3 SE of 100,000 paths), so the recursion spends what it says.
    rng = np.random.default_rng(7)
    fractions = (0.013, 0.1, 0.27, 0.3, 0.3015, 0.303, 0.3045, 0.306, 0.55, 0.61, 0.9, 1.0)
    critical = np.array(boundaries(fractions, 0.05))
    steps = np.diff((0.0, *fractions))
    paths = np.cumsum(rng.standard_normal((100_000, len(fractions))) * np.sqrt(steps), axis=1)
    crossed = (np.abs(paths / np.sqrt(fractions)) >= critical).any(axis=1).mean()
    assert abs(crossed - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 100_000)
    assert (np.diff(critical[:4]) < 0).all()  # O'Brien-Fleming: falling


def test_should_merge_looks_closer_than_the_gap_and_keep_only_earlier_ones() -> None:
    assert schedule((0.5, 0.2, 0.2 + MIN_GAP / 2, 0.9), 0.6) == (0.2, 0.5, 0.6)
    assert schedule((0.3, 0.6 - MIN_GAP / 2), 0.6) == (0.3, 0.6)  # a burst merges into this look
    assert schedule((0.7,), 0.6) == (0.6,)  # a later look (a view with fewer units) is left out


def test_should_answer_with_the_mixture_test_past_the_planned_reach() -> None:
    control, treatment = ProportionStatistic(6_000, 300), ProportionStatistic(6_000, 350)
    design = PlannedDesign.at(10_000, (0.5, 0.9), 12_000)
    assert design.in_force == "mixture"
    mixture = sequential(control, treatment, SequentialDesign.from_expected_sample_size(10_000))
    assert planned(control, treatment, design, small_arm="conservative") == mixture


def test_should_not_reject_on_a_small_arm_without_conversions() -> None:
    # A 10% arm with no conversion yet has no variance of its own: the floor lends it the pooled one.
    result = planned(
        ProportionStatistic(400, 0), ProportionStatistic(3_600, 40), PlannedDesign.at(40_000, (), 4_000)
    )
    assert result.problem is None
    assert result.ci_low < 0 < result.ci_high
    assert result.p_value == 1.0


def test_should_floor_an_arm_with_many_events_at_a_share_of_the_pooled_variance() -> None:
    # A skewed amount: a small arm that missed its largest values has a low mean and a low variance at once,
    # so its own variance would make the test too sure exactly then. Its variance is raised to
    # PARTIAL_FLOOR x the pooled one; an arm whose variance is above that keeps its own.
    design = PlannedDesign.at(200_000, (0.5,), 100_000)
    low = SampleMeanStatistic(n=10_000, sum=9_000.0, sum_squares=9_000.0 * 20 + 10_000 * 0.9**2)
    high = SampleMeanStatistic(n=90_000, sum=90_000.0, sum_squares=90_000.0 * 40 + 90_000 * 1.0**2)
    pooled = ((low.n - 1) * low.variance + (high.n - 1) * high.variance) / (low.n + high.n - 2)
    assert low.variance < PARTIAL_FLOOR * pooled < high.variance
    result = planned(low, high, design)
    floored = math.sqrt(PARTIAL_FLOOR * pooled / low.n + high.variance / high.n)
    assert result.std_error == pytest.approx(floored, rel=1e-9)
    none = planned(low, high, design, small_arm="none")
    assert none.std_error == pytest.approx(math.sqrt(low.variance / low.n + high.variance / high.n), rel=1e-9)
    assert none.std_error < result.std_error


def test_should_report_an_unusable_design() -> None:
    control, treatment = ProportionStatistic(100, 5), ProportionStatistic(100, 8)
    for design in (PlannedDesign(0, (0.5,)), PlannedDesign(100, ()), PlannedDesign(100, (0.5, 0.4))):
        result = planned(control, treatment, design)
        assert result.problem is not None
        assert result.problem.problem == Problem.INVALID_PARAMETER


@settings(max_examples=60, deadline=None)
@given(
    n_a=st.integers(50, 50_000),
    n_b=st.integers(50, 50_000),
    mean_a=st.floats(0.5, 50),
    lift=st.floats(-0.5, 0.5),
    spread=st.floats(0.1, 20),
    earlier=st.lists(st.floats(0.001, 0.99), max_size=8),
    relative=st.booleans(),
)
def test_should_exclude_zero_exactly_when_it_rejects(
    n_a: int, n_b: int, mean_a: float, lift: float, spread: float, earlier: list[float], relative: bool
) -> None:
    variance = spread**2

    def arm(n: int, mean: float) -> SampleMeanStatistic:
        return SampleMeanStatistic(n, mean * n, (variance + mean**2) * n)

    design = PlannedDesign.at(60_000, earlier, n_a + n_b)
    result = planned(arm(n_a, mean_a), arm(n_b, mean_a * (1 + lift)), design, relative=relative)
    assert result.problem is None
    assert 0 <= result.p_value <= 1
    if design.in_force == "planned" and abs(result.p_value - 0.05) > 1e-9:
        assert (result.ci_low > 0 or result.ci_high < 0) == (result.p_value < 0.05)
    wider = planned(arm(n_a, mean_a), arm(n_b, mean_a * (1 + lift)), design, relative=relative, alpha=0.01)
    assert wider.ci_low <= result.ci_low  # nested as alpha shrinks
    assert result.ci_high <= wider.ci_high
