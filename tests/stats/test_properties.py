"""Invariants the statistics must keep whatever the data (Hypothesis)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from stats import (
    AnalysisResult,
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    fixed_horizon,
    sequential,
)

# Whole-number sums add exactly in floating point, so associativity can be checked with ==.
counts = st.integers(min_value=0, max_value=10**6)


@st.composite
def sample_means(draw: st.DrawFn, min_n: int = 0) -> SampleMeanStatistic:
    n = draw(st.integers(min_value=min_n, max_value=10**5))
    return SampleMeanStatistic(n, draw(st.integers(-(10**9), 10**9)), draw(st.integers(0, 10**12)))


@st.composite
def proportions(draw: st.DrawFn, min_n: int = 0) -> ProportionStatistic:
    n = draw(st.integers(min_value=min_n, max_value=10**6))
    return ProportionStatistic(n, draw(st.integers(0, n)))


@given(sample_means(), sample_means(), sample_means())
def test_sample_means_add_associatively_and_commutatively(
    a: SampleMeanStatistic, b: SampleMeanStatistic, c: SampleMeanStatistic
) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a


@given(proportions(), proportions(), proportions())
def test_proportions_add_associatively(
    a: ProportionStatistic, b: ProportionStatistic, c: ProportionStatistic
) -> None:
    assert (a + b) + c == a + (b + c)


@given(sample_means(), sample_means(), sample_means(), counts, counts, counts)
def test_ratio_and_regression_statistics_add_associatively(
    a: SampleMeanStatistic, b: SampleMeanStatistic, c: SampleMeanStatistic, x: int, y: int, z: int
) -> None:
    ra, rb, rc = RatioStatistic(a, a, x), RatioStatistic(b, b, y), RatioStatistic(c, c, z)
    assert (ra + rb) + rc == ra + (rb + rc)
    ca, cb, cc = (
        RegressionAdjustedStatistic(a, a, x),
        RegressionAdjustedStatistic(b, b, y),
        RegressionAdjustedStatistic(c, c, z),
    )
    assert (ca + cb) + cc == ca + (cb + cc)


@settings(max_examples=50)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=2, max_value=400),
    st.integers(min_value=2, max_value=400),
)
def test_merged_days_equal_the_statistic_of_all_units(seed: int, n1: int, n2: int) -> None:
    rng = np.random.default_rng(seed)
    day1, day2 = rng.normal(3, 2, n1), rng.normal(3.5, 1, n2)

    def of(values: NDArray[np.float64]) -> SampleMeanStatistic:
        return SampleMeanStatistic(len(values), float(values.sum()), float((values**2).sum()))

    merged, whole = of(day1) + of(day2), np.concatenate([day1, day2])
    assert math.isclose(merged.mean, float(whole.mean()), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(merged.variance, float(whole.var(ddof=1)), rel_tol=1e-7, abs_tol=1e-9)


@given(proportions(min_n=10), proportions(min_n=10), st.floats(min_value=0.001, max_value=0.5), st.booleans())
def test_p_values_lie_between_zero_and_one(
    a: ProportionStatistic, b: ProportionStatistic, alpha: float, relative: bool
) -> None:
    design = SequentialDesign.from_expected_sample_size(a.n + b.n)
    for result in (
        fixed_horizon(a, b, alpha=alpha, relative=relative),
        fixed_horizon(a, b, alpha=alpha, alternative="greater"),
        fixed_horizon(a, b, alpha=alpha, alternative="less"),
        sequential(a, b, design, alpha=alpha, relative=relative),
    ):
        if result.ok:
            assert 0.0 <= result.p_value <= 1.0


@given(
    proportions(min_n=10),
    proportions(min_n=10),
    st.floats(min_value=0.001, max_value=0.4),
    st.floats(min_value=0.001, max_value=0.4),
    st.booleans(),
)
def test_intervals_widen_as_alpha_shrinks(
    a: ProportionStatistic, b: ProportionStatistic, alpha1: float, alpha2: float, relative: bool
) -> None:
    small, large = sorted((alpha1, alpha2))
    design = SequentialDesign.from_expected_sample_size(2 * (a.n + b.n))

    def fixed(alpha: float) -> AnalysisResult:
        return fixed_horizon(a, b, alpha=alpha, relative=relative)

    def always_valid(alpha: float) -> AnalysisResult:
        return sequential(a, b, design, alpha=alpha, relative=relative)

    for test in (fixed, always_valid):
        strict, loose = test(small), test(large)
        if strict.ok:
            assert strict.ci_low <= loose.ci_low + 1e-12
            assert strict.ci_high >= loose.ci_high - 1e-12


@given(
    proportions(min_n=10),
    proportions(min_n=10),
    st.sampled_from([0.01, 0.05, 0.1, 0.2]),
    st.floats(min_value=0.05, max_value=20.0),
    st.booleans(),
)
def test_sequential_interval_contains_the_fixed_horizon_interval(
    a: ProportionStatistic, b: ProportionStatistic, alpha: float, horizon: float, relative: bool
) -> None:
    design = SequentialDesign.from_expected_sample_size(horizon * (a.n + b.n), alpha)
    fixed = fixed_horizon(a, b, alpha=alpha, relative=relative)
    always_valid = sequential(a, b, design, alpha=alpha, relative=relative)
    assume(fixed.ok)
    assert always_valid.ci_low <= fixed.ci_low
    assert always_valid.ci_high >= fixed.ci_high
    # Each test rejects exactly when its interval excludes 0, so containment means: whenever the
    # sequential test rejects, the fixed-horizon test does too. (Their p-values need not be ordered:
    # at a handful of units the t-test's heavy tails can make its p-value the larger one.)
    if always_valid.p_value < alpha:
        assert fixed.p_value < alpha
