"""Data problems come back as values; looks accumulate; designs and power stay consistent."""

from __future__ import annotations

import math

import pytest

from stats import (
    PowerInputs,
    Problem,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    accumulate_looks,
    fixed_horizon,
    gaussian_effect,
    holm,
    sample_ratio_mismatch,
    sequential,
    sequential_minimum_detectable_effect,
    sequential_power,
    sequential_sample_size,
)
from stats.power import minimum_detectable_effect, sample_size
from stats.results import AnalysisResult
from stats.sufficient import Statistic


@pytest.mark.parametrize(
    ("control", "treatment", "relative", "problem"),
    [
        (SampleMeanStatistic(1, 5, 25), SampleMeanStatistic(10, 50, 260), False, Problem.TOO_FEW_UNITS),
        (SampleMeanStatistic(10, 50, 250), SampleMeanStatistic(10, 60, 360), False, Problem.ZERO_VARIANCE),
        (ProportionStatistic(100, 0), ProportionStatistic(100, 5), True, Problem.ZERO_CONTROL_MEAN),
        (ProportionStatistic(100, 3), SampleMeanStatistic(100, 3, 3), False, Problem.MIXED_STATISTICS),
    ],
)
def test_should_return_data_problems_as_values(
    control: Statistic, treatment: Statistic, relative: bool, problem: Problem
) -> None:
    for result in (
        fixed_horizon(control, treatment, relative=relative),
        sequential(control, treatment, SequentialDesign(0.001), relative=relative),
    ):
        assert not result.ok
        assert result.problem is not None
        assert result.problem.problem is problem
        assert result.problem.message
        assert math.isnan(result.p_value)
    effect = gaussian_effect(control, treatment, relative=relative)
    assert effect.problem is not None


def test_should_test_against_a_zero_control_mean_in_absolute_terms() -> None:
    result = fixed_horizon(ProportionStatistic(100, 0), ProportionStatistic(100, 5))
    assert result.ok
    assert result.effect == pytest.approx(0.05)


def test_should_handle_a_ratio_with_no_denominator_as_zero_variance() -> None:
    empty = RatioStatistic(SampleMeanStatistic(10, 0, 0), SampleMeanStatistic(10, 0, 0), 0)
    assert fixed_horizon(empty, empty).problem is not None


def test_should_carry_the_minimum_p_value_and_the_intersection_of_intervals() -> None:
    looks = [
        AnalysisResult(effect=0.1, ci_low=-0.5, ci_high=0.7, p_value=0.4, std_error=0.1),
        AnalysisResult(effect=0.2, ci_low=-0.1, ci_high=0.9, p_value=0.2, std_error=0.1),
        fixed_horizon(SampleMeanStatistic(1, 1, 1), SampleMeanStatistic(1, 1, 1)),  # too few units
        AnalysisResult(effect=0.15, ci_low=-0.3, ci_high=0.6, p_value=0.3, std_error=0.1),
    ]
    carried = accumulate_looks(looks)
    assert [c.p_value for c in carried if c.ok] == [0.4, 0.2, 0.2]
    assert [(c.ci_low, c.ci_high) for c in carried if c.ok] == [(-0.5, 0.7), (-0.1, 0.7), (-0.1, 0.6)]
    assert not carried[2].ok
    assert carried[3].effect == 0.15


def test_should_report_impossible_designs_and_inputs_as_problems() -> None:
    a, b = ProportionStatistic(100, 10), ProportionStatistic(100, 12)
    for design in (SequentialDesign.from_expected_sample_size(0), SequentialDesign.from_mixing_variance(-1)):
        result = sequential(a, b, design)
        assert result.problem is not None
        assert result.problem.problem is Problem.INVALID_PARAMETER
    mismatch = sample_ratio_mismatch([1, 2], [1])
    assert mismatch.problem is not None
    assert "one weight per arm" in mismatch.problem.message
    adjusted = holm([0.5, 1.2])
    assert adjusted.problem is not None
    assert "between 0 and 1" in adjusted.problem.message


def test_sequential_design_is_tightest_near_its_expected_sample_size() -> None:
    variance_per_unit = 0.05
    design = SequentialDesign.from_expected_sample_size(20_000)
    widths = {
        n: design.half_width(n, variance_per_unit / n, 0.05) * math.sqrt(n) for n in (2_000, 20_000, 200_000)
    }
    assert widths[20_000] < widths[2_000]
    assert widths[20_000] < widths[200_000]


def test_power_solutions_are_consistent() -> None:
    inputs = PowerInputs(control_mean=0.1, control_variance=0.09)
    n = sample_size(inputs, 0.01).value
    assert minimum_detectable_effect(inputs, n).value == pytest.approx(0.01, rel=1e-9)
    design = SequentialDesign.from_expected_sample_size(2 * n)
    n_seq = sequential_sample_size(inputs, design, 0.01).value
    assert n_seq > n  # always-valid inference costs units
    assert sequential_power(inputs, design, 0.01, n_seq).value == pytest.approx(0.8, abs=1e-9)
    assert sequential_minimum_detectable_effect(inputs, design, n_seq).value == pytest.approx(0.01, rel=1e-9)
    assert sequential_minimum_detectable_effect(inputs, design, n_seq, relative=True).value == pytest.approx(
        0.1, rel=1e-9
    )
