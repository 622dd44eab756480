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
    result = fixed_horizon(CONTROL, TREATMENT, relative=True)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.0114560, 0.2514560), abs=1e-6)
    assert result.p_value == pytest.approx(0.0735868, abs=1e-6)


def test_sequential_with_an_expected_total_of_20000_units() -> None:
    result = sequential(CONTROL, TREATMENT, SequentialDesign.from_expected_sample_size(20_000))
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.00361563, 0.01561563), abs=1e-6)
    assert result.p_value == pytest.approx(0.6079147, abs=1e-6)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005, 0.55, 0.6]) == pytest.approx(
        [0.05, 0.12, 0.12, 0.03, 1, 1], abs=1e-12
    )
