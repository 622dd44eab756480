"""Every public function of `stats`, driven by Hypothesis with arbitrary finite and non-finite inputs:
no exception escapes, and every result either carries a problem or is a usable answer (a finite
p-value in [0, 1], ci_low <= effect <= ci_high)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stats import (
    AnalysisResult,
    BetaPrior,
    GaussianPrior,
    PowerInputs,
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    accumulate_looks,
    benjamini_hochberg,
    beta_binomial,
    estimate,
    fixed_horizon,
    gaussian_effect,
    holm,
    minimum_detectable_effect,
    pooled_theta,
    power,
    sample_ratio_mismatch,
    sample_size,
    sequential,
    sequential_minimum_detectable_effect,
    sequential_power,
    sequential_sample_size,
)

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e6, 1e6)
COUNTS = st.integers(-3, 10**12) | st.integers(0, 5000)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def proportions(draw: Any) -> ProportionStatistic:
    n = draw(COUNTS)
    conversions = draw(ANY_FLOAT | st.floats(0, 1).map(lambda share: share * max(n, 0)))
    return ProportionStatistic(n, conversions)


@st.composite
def sample_means(draw: Any) -> SampleMeanStatistic:
    n = draw(COUNTS)
    total = draw(ANY_FLOAT)
    if math.isfinite(total) and abs(total) < 1e100:
        squares = draw(ANY_FLOAT | st.floats(0, 1e6).map(lambda extra: total * total / max(n, 1) + extra))
    else:
        squares = draw(ANY_FLOAT)
    return SampleMeanStatistic(n, total, squares)


MEAN_LIKE = proportions() | sample_means()
RATIOS = st.builds(RatioStatistic, MEAN_LIKE, MEAN_LIKE, ANY_FLOAT)
ADJUSTED = st.builds(RegressionAdjustedStatistic, MEAN_LIKE, MEAN_LIKE, ANY_FLOAT)
PAIRS = (
    st.tuples(proportions(), proportions())
    | st.tuples(sample_means(), sample_means())
    | st.tuples(RATIOS, RATIOS)
    | st.tuples(ADJUSTED, ADJUSTED)
    | st.tuples(MEAN_LIKE | RATIOS | ADJUSTED, MEAN_LIKE | RATIOS | ADJUSTED)
)
DESIGNS = (
    st.builds(SequentialDesign.from_expected_sample_size, ANY_FLOAT)
    | st.builds(SequentialDesign.from_mixing_variance, ANY_FLOAT)
    | st.builds(SequentialDesign.from_standardized_mixing_variance, ANY_FLOAT)
)
ALPHAS = ANY_FLOAT | st.floats(0.001, 0.5)


def usable(result: AnalysisResult) -> None:
    if result.problem is not None:
        assert result.problem.message
        return
    assert math.isfinite(result.p_value)
    assert 0 <= result.p_value <= 1
    assert math.isfinite(result.effect)
    assert result.ci_low <= result.effect <= result.ci_high


@SETTINGS
@given(
    PAIRS, st.booleans(), ALPHAS, ANY_FLOAT | st.just(0.0), st.sampled_from(["two-sided", "greater", "less"])
)
def test_fixed_horizon_on_any_input(
    pair: Any, relative: bool, alpha: float, test_value: float, alternative: Any
) -> None:
    usable(
        fixed_horizon(*pair, relative=relative, alpha=alpha, test_value=test_value, alternative=alternative)
    )
    estimate(*pair, relative=relative)


@SETTINGS
@given(PAIRS, DESIGNS, st.booleans(), ALPHAS, st.booleans())
def test_sequential_and_its_looks_on_any_input(
    pair: Any, design: SequentialDesign, relative: bool, alpha: float, conservative: bool
) -> None:
    control, treatment = pair
    result = sequential(control, treatment, design, relative=relative, alpha=alpha, conservative=conservative)
    usable(result)
    for look in accumulate_looks([result, result, fixed_horizon(*pair, relative=relative)]):
        usable(look)


@SETTINGS
@given(PAIRS, st.booleans(), st.none() | st.builds(GaussianPrior, ANY_FLOAT, ANY_FLOAT), ALPHAS)
def test_gaussian_effect_on_any_input(pair: Any, relative: bool, prior: Any, alpha: float) -> None:
    result = gaussian_effect(*pair, relative=relative, prior=prior, alpha=alpha)
    if result.problem is None:
        assert 0 <= result.chance_to_win <= 1
        assert result.ci_low <= result.mean <= result.ci_high


@SETTINGS
@given(proportions(), proportions(), st.builds(BetaPrior, ANY_FLOAT, ANY_FLOAT) | st.just(BetaPrior()))
def test_beta_binomial_on_any_input(control: Any, treatment: Any, prior: Any) -> None:
    result = beta_binomial(control, treatment, prior)
    if result.problem is None:
        assert 0 <= result.chance_to_beat_control <= 1
        assert result.expected_loss_choosing_treatment >= 0
        assert result.expected_loss_choosing_control >= 0


@SETTINGS
@given(
    st.lists(st.integers(-5, 10**9), max_size=5),
    st.lists(ANY_FLOAT, max_size=5),
    ALPHAS,
)
def test_sample_ratio_mismatch_on_any_input(
    counts: list[int], weights: list[float], threshold: float
) -> None:
    result = sample_ratio_mismatch(counts, weights, threshold=threshold)
    if result.problem is None:
        assert 0 <= result.p_value <= 1
    else:
        assert not result.mismatch or result.unexpected_units > 0


@SETTINGS
@given(st.lists(ANY_FLOAT | st.floats(0, 1), max_size=8))
def test_corrections_on_any_input(p_values: list[float]) -> None:
    for adjusted in (holm(p_values), benjamini_hochberg(p_values)):
        if adjusted.problem is None:
            assert all(0 <= p <= 1 for p in adjusted.p_values)


@SETTINGS
@given(
    st.builds(PowerInputs, ANY_FLOAT, ANY_FLOAT, st.none() | ANY_FLOAT, ALPHAS),
    ANY_FLOAT,
    ANY_FLOAT,
    ANY_FLOAT | st.floats(0.5, 0.99),
    DESIGNS,
    st.booleans(),
)
def test_power_functions_on_any_input(
    inputs: PowerInputs, mde: float, n: float, target: float, design: SequentialDesign, relative: bool
) -> None:
    for solved in (
        power(inputs, mde, n, relative=relative),
        sample_size(inputs, mde, target_power=target, relative=relative),
        minimum_detectable_effect(inputs, n, target_power=target, relative=relative),
        sequential_power(inputs, design, mde, n, relative=relative),
        sequential_sample_size(inputs, design, mde, target_power=target, relative=relative),
        sequential_minimum_detectable_effect(inputs, design, n, target_power=target, relative=relative),
    ):
        if solved.problem is None:
            assert math.isfinite(solved.value)
            assert solved.value >= 0


@SETTINGS
@given(st.tuples(ADJUSTED, ADJUSTED))
def test_pooled_theta_on_any_input(pair: Any) -> None:
    theta = pooled_theta(*pair)
    assert isinstance(theta, float)
