"""Quantiles of a per-unit or an event-level value, with the delta method's standard error.

Deng, Knoblich and Lu (2018), "Applying the Delta Method in Metric Analytics: A Practical Guide
with Novel Ideas" (KDD 2018, arXiv:1803.06336), the section on quantile metrics. For values
Y_ij, events j of unit i (one value per unit at the unit level), N = sum_i N_i of them in n units,
the sample p-quantile is the order statistic

    Q_p = Y_(k),   k = ceil(p N)                    (the inverse of the empirical CDF)

and the fraction of values at or below it, sum_i a_i / sum_i N_i with a_i = #{j : Y_ij <= Q_p},
is a ratio of per-unit sums: its variance s^2 is the delta method's for a ratio (Deng et al. eq. 2;
the i.i.d. case, N_i = 1, is p(1 - p) / n). Because P(Y <= Q) is what the order statistics
estimate, the interval of the quantile is read off the ranks of that fraction's interval
(Deng et al.'s interval for a quantile):

    [Y_(r1), Y_(r2)],   r1 = floor(N (p - z s)),   r2 = ceil(N (p + z s))

and the standard error of the quantile is that interval's width over 2 z: Deng et al.'s way of
avoiding a density estimate. The quantile then enters every test as an arm whose estimator has
that variance (`QuantileStatistic`): the difference of two arms' quantiles, their relative
difference (Fieller, stats.estimate), fixed-horizon and always-valid alike.

Computing a sample's statistic takes two looks at its values (a database does both): the
quantile and the per-unit counts at or below it (a `QuantileSample`), then the two order
statistics at `interval_ranks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stats.sufficient import QuantileStatistic, RatioStatistic, SampleMeanStatistic

STANDARD_ERROR_Z = 1.959963984540054
"""z of the rank interval whose width gives the standard error: the 95% one (Deng et al.'s example).

Any z gives the same standard error where the density is smooth; a wider interval averages the
density over more values (steadier where values are discrete), a narrower one is more local."""


def quantile_rank(p: float, count: int) -> int:
    """k = ceil(p N), from 1 to N: the rank of the sample p-quantile among N sorted values.

    Floating point as PostgreSQL's percentile_disc computes it, so the database and this agree."""
    return min(max(math.ceil(p * count), 1), count)


@dataclass(frozen=True, slots=True)
class QuantileSample:
    """One arm's values seen at its sample p-quantile Q_p: what the interval's ranks need.

    a_i = how many of unit i's values are at or below Q_p, N_i = how many values it has."""

    p: float
    units: int
    """n: units (clusters), every exposed unit of the arm."""
    values: int
    """N = sum N_i: values (events; units, at the unit level)."""
    below: float
    """sum a_i."""
    below_squares: float
    """sum a_i^2."""
    values_squares: float
    """sum N_i^2."""
    below_values: float
    """sum a_i N_i."""

    @property
    def fraction_variance(self) -> float:
        """s^2: the variance of the fraction at or below Q_p, sum a_i / sum N_i, by the delta method
        for a ratio over units (Deng et al. eq. 2, divided by n)."""
        if self.units < 2 or self.values == 0:
            return 0.0
        ratio = RatioStatistic(
            SampleMeanStatistic(self.units, self.below, self.below_squares),
            SampleMeanStatistic(self.units, float(self.values), self.values_squares),
            self.below_values,
        )
        return max(ratio.variance, 0.0) / self.units

    def interval_ranks(self, z: float = STANDARD_ERROR_Z) -> tuple[int, int]:
        """(r1, r2): the ranks, 1 to N, of the order statistics that bound the quantile's interval."""
        half = z * math.sqrt(self.fraction_variance)
        low = math.floor(self.values * (self.p - half))
        high = math.ceil(self.values * (self.p + half))
        return min(max(low, 1), self.values), min(max(high, 1), self.values)


def quantile_statistic(
    sample: QuantileSample, value: float, low: float, high: float, z: float = STANDARD_ERROR_Z
) -> QuantileStatistic:
    """The arm's statistic from its quantile `value` and the order statistics at `sample.interval_ranks(z)`."""
    return QuantileStatistic(sample.units, value, max(high - low, 0.0) / (2 * z))
