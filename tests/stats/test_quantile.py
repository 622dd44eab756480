"""Quantiles (stats.quantile) against numpy on raw arrays: the rank, the delta method, the interval."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from stats import (
    QuantileSample,
    QuantileStatistic,
    SequentialDesign,
    fixed_horizon,
    quantile_rank,
    quantile_statistic,
    sequential,
)
from stats.quantile import STANDARD_ERROR_Z

Floats = npt.NDArray[np.float64]


def sample_of(values_by_unit: list[Floats], p: float) -> tuple[QuantileSample, float]:
    pooled = np.sort(np.concatenate(values_by_unit))
    q = float(pooled[quantile_rank(p, pooled.size) - 1])
    a = np.array([float(np.sum(v <= q)) for v in values_by_unit])
    n_i = np.array([float(v.size) for v in values_by_unit])
    sample = QuantileSample(
        p, len(values_by_unit), int(n_i.sum()), a.sum(), (a * a).sum(), (n_i * n_i).sum(), (a * n_i).sum()
    )
    return sample, q


def statistic_of(values_by_unit: list[Floats], p: float) -> QuantileStatistic:
    """Deng et al.'s quantile statistic, every sum and order statistic taken with numpy over the units' values."""
    sample, q = sample_of(values_by_unit, p)
    pooled = np.sort(np.concatenate(values_by_unit))
    r1, r2 = sample.interval_ranks()
    return quantile_statistic(sample, q, float(pooled[r1 - 1]), float(pooled[r2 - 1]))


def test_should_take_the_inverse_of_the_empirical_cdf_as_numpy_does() -> None:
    rng = np.random.default_rng(1)
    for size in (1, 2, 7, 10, 100, 1001):
        x = rng.lognormal(size=size)
        for p in (0.01, 0.1, 0.5, 0.9, 0.99):
            ours = np.sort(x)[quantile_rank(p, size) - 1]
            assert ours == np.quantile(x, p, method="inverted_cdf")


def test_should_give_the_iid_fraction_variance_at_the_unit_level() -> None:
    rng = np.random.default_rng(2)
    units = [np.array([v]) for v in rng.lognormal(size=5000)]
    sample, q = sample_of(units, 0.9)
    indicator = np.array([float(u[0] <= q) for u in units])
    assert sample.fraction_variance == pytest.approx(np.var(indicator, ddof=1) / 5000, rel=1e-12)


def test_should_give_the_delta_method_variance_of_the_clustered_fraction() -> None:
    rng = np.random.default_rng(3)
    units = [rng.lognormal(mean=rng.normal(), size=rng.integers(1, 20)) for _ in range(2000)]
    sample, q = sample_of(units, 0.5)
    a = np.array([np.sum(u <= q) for u in units], dtype=float)
    n_i = np.array([u.size for u in units], dtype=float)
    # Deng et al. eq. 2 on (a_i, N_i) with numpy's covariance matrix.
    cov = np.cov(np.vstack([a, n_i]), ddof=1)
    mu_a, mu_n = a.mean(), n_i.mean()
    per_unit = cov[0, 0] / mu_n**2 - 2 * mu_a * cov[0, 1] / mu_n**3 + mu_a**2 * cov[1, 1] / mu_n**4
    assert sample.fraction_variance == pytest.approx(per_unit / a.size, rel=1e-9)
    # Clustering widens the interval beyond what the pooled values would give if they were independent.
    assert sample.fraction_variance > 0.5 * 0.5 / n_i.sum()


def test_should_read_the_standard_error_off_the_order_statistics_at_the_rank_interval() -> None:
    rng = np.random.default_rng(4)
    x = np.sort(rng.normal(size=10_000))
    statistic = statistic_of([np.array([v]) for v in x], 0.9)
    s = math.sqrt(0.9 * 0.1 / 9_999)  # the sample variance of the indicator over n
    r1, r2 = (
        math.floor(10_000 * (0.9 - STANDARD_ERROR_Z * s)),
        math.ceil(10_000 * (0.9 + STANDARD_ERROR_Z * s)),
    )
    assert statistic.value == x[8999]
    assert statistic.std_error == pytest.approx((x[r2 - 1] - x[r1 - 1]) / (2 * STANDARD_ERROR_Z), rel=1e-12)
    # The asymptotic standard error of the normal's 0.9-quantile: sqrt(p (1 - p) / n) / phi(z_0.9).
    density = math.exp(-(1.2815515655446004**2) / 2) / math.sqrt(2 * math.pi)
    assert statistic.std_error == pytest.approx(math.sqrt(0.09 / 10_000) / density, rel=0.15)


def test_should_clip_the_ranks_to_the_values() -> None:
    sample = QuantileSample(0.99, 3, 3, 3.0, 3.0, 3.0, 3.0)
    assert sample.interval_ranks() == (2, 3)  # floor(2.97), and never beyond the third value
    assert QuantileSample(0.5, 1, 1, 1.0, 1.0, 1.0, 1.0).interval_ranks() == (1, 1)


def test_should_test_a_difference_of_quantiles_as_a_difference_of_means_with_that_variance() -> None:
    rng = np.random.default_rng(5)
    control = statistic_of([np.array([v]) for v in rng.lognormal(size=4000)], 0.5)
    treatment = statistic_of([np.array([v]) for v in rng.lognormal(size=4000) * 1.2], 0.5)
    result = fixed_horizon(control, treatment)
    se = math.hypot(control.std_error, treatment.std_error)
    assert result.effect == pytest.approx(treatment.value - control.value, rel=1e-12)
    assert result.std_error == pytest.approx(se, rel=1e-12)
    assert result.p_value < 0.05
    assert result.ci_low > 0
    relative = fixed_horizon(control, treatment, relative=True)
    assert relative.effect == pytest.approx(treatment.value / control.value - 1, rel=1e-12)
    always = sequential(control, treatment, SequentialDesign.from_expected_sample_size(8000))
    assert always.ci_low < result.ci_low
    assert always.ci_high > result.ci_high


def test_should_report_a_quantile_without_spread_as_a_problem() -> None:
    zeros = QuantileStatistic(100, 0.0, 0.0)
    result = fixed_horizon(zeros, zeros)
    assert result.problem is not None
    assert result.problem.problem.value == "zero_variance"
    assert fixed_horizon(QuantileStatistic(10, math.nan, 1.0), zeros).problem is not None
