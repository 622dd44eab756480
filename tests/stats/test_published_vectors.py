"""The published reference values of issue 5, to 1e-6."""

from __future__ import annotations

import pytest

from stats import ProportionStatistic, SequentialDesign, fixed_horizon, holm, sequential

CONTROL = ProportionStatistic(10_000, 500)
TREATMENT = ProportionStatistic(10_000, 560)


def test_absolute_lift() -> None:
    result = fixed_horizon(CONTROL, TREATMENT)
    assert result.effect == pytest.approx(0.006, abs=1e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.00020960, 0.01220960), abs=1e-6)
    assert result.p_value == pytest.approx(0.0582497, abs=1e-6)


def test_relative_lift() -> None:
    # The published delta-method values (CI [-0.0114560, 0.2514560], p 0.0735868) are gbstats 0.8.0's;
    # ours are the same null on the absolute scale (the absolute p) and Fieller's interval, here solved
    # by hand: (0.056 - 0.05 rho)^2 = t^2 (0.056 * 0.944 / 10^4 + rho^2 0.05 * 0.95 / 10^4).
    result = fixed_horizon(CONTROL, TREATMENT, relative=True)
    assert result.std_error == pytest.approx(0.0670665, abs=1e-6)  # the delta method's, unchanged
    assert result.p_value == pytest.approx(0.0582497, abs=1e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.0039595, 0.2604309), abs=1e-6)


def test_sequential_with_an_expected_total_of_20000_units() -> None:
    # GrowthBook's published values are the textbook test's; the default floors each arm's variance.
    result = sequential(
        CONTROL, TREATMENT, SequentialDesign.from_expected_sample_size(20_000), conservative=False
    )
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.00361563, 0.01561563), abs=1e-6)
    assert result.p_value == pytest.approx(0.6079147, abs=1e-6)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005, 0.55, 0.6]).p_values == pytest.approx(
        [0.05, 0.12, 0.12, 0.03, 1, 1], abs=1e-12
    )
