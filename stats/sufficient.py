"""Sufficient statistics: everything a test needs, in sums that add across days and strata.

`a + b` merges two disjoint sets of units (two days, two strata) exactly, because every
field is a count or a sum. Variances follow gbstats' definitions: the unbiased sample
variance (n - 1) for means, p(1 - p) for proportions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProportionStatistic:
    """n units of which `conversions` converted (a 0/1 metric)."""

    n: int
    conversions: float

    def __add__(self, other: ProportionStatistic) -> ProportionStatistic:
        return ProportionStatistic(self.n + other.n, self.conversions + other.conversions)

    @property
    def sum(self) -> float:
        return self.conversions

    @property
    def sum_squares(self) -> float:
        return self.conversions  # x^2 = x for 0/1 values

    @property
    def mean(self) -> float:
        return self.conversions / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        return self.mean * (1 - self.mean)


@dataclass(frozen=True, slots=True)
class SampleMeanStatistic:
    """n units with values summing to `sum`, their squares to `sum_squares`."""

    n: int
    sum: float
    sum_squares: float

    def __add__(self, other: SampleMeanStatistic) -> SampleMeanStatistic:
        return SampleMeanStatistic(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_squares - self.sum**2 / self.n) / (self.n - 1)


MeanLike = ProportionStatistic | SampleMeanStatistic


def _joined(a: MeanLike, b: MeanLike) -> MeanLike:
    if isinstance(a, ProportionStatistic) and isinstance(b, ProportionStatistic):
        return a + b
    if isinstance(a, SampleMeanStatistic) and isinstance(b, SampleMeanStatistic):
        return a + b
    raise TypeError("statistics of one metric must all be proportions or all be sample means")


def _covariance(n: int, sum_x: float, sum_y: float, sum_xy: float) -> float:
    if n <= 1:
        return 0.0
    return (sum_xy - sum_x * sum_y / n) / (n - 1)


@dataclass(frozen=True, slots=True)
class RatioStatistic:
    """A ratio metric (e.g. revenue per session) over n units: numerator and denominator per unit."""

    numerator: MeanLike
    denominator: MeanLike
    sum_of_products: float
    """Sum over units of numerator x denominator."""

    def __add__(self, other: RatioStatistic) -> RatioStatistic:
        return RatioStatistic(
            _joined(self.numerator, other.numerator),
            _joined(self.denominator, other.denominator),
            self.sum_of_products + other.sum_of_products,
        )

    @property
    def n(self) -> int:
        return self.numerator.n

    @property
    def mean(self) -> float:
        return self.numerator.sum / self.denominator.sum if self.denominator.sum else 0.0

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.numerator.sum, self.denominator.sum, self.sum_of_products)

    @property
    def variance(self) -> float:
        """Per-unit variance of the ratio by the delta method (Deng et al. 2018, "Applying the Delta
        Method in Metric Analytics", eq. 2): Var(M)/mu_D^2 - 2 mu_M Cov(M,D)/mu_D^3 + mu_M^2 Var(D)/mu_D^4."""
        mu_m, mu_d = self.numerator.mean, self.denominator.mean
        if mu_d == 0 or self.n <= 1:
            return 0.0
        return (
            self.numerator.variance / mu_d**2
            - 2 * self.covariance * mu_m / mu_d**3
            + mu_m**2 * self.denominator.variance / mu_d**4
        )


@dataclass(frozen=True, slots=True)
class RegressionAdjustedStatistic:
    """A metric with its pre-experiment value per unit, for CUPED (Deng et al. 2013)."""

    post: MeanLike
    pre: MeanLike
    sum_of_products: float
    """Sum over units of post x pre."""

    def __add__(self, other: RegressionAdjustedStatistic) -> RegressionAdjustedStatistic:
        return RegressionAdjustedStatistic(
            _joined(self.post, other.post),
            _joined(self.pre, other.pre),
            self.sum_of_products + other.sum_of_products,
        )

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.post.sum, self.pre.sum, self.sum_of_products)

    def adjusted_mean(self, theta: float) -> float:
        """Deng et al. 2013, eq. 3: Y_cv = mean(Y) - theta mean(X)."""
        return self.post.mean - theta * self.pre.mean

    def adjusted_variance(self, theta: float) -> float:
        """Per-unit variance of Y - theta X: Var(Y) + theta^2 Var(X) - 2 theta Cov(Y, X)."""
        if self.n <= 1:
            return 0.0
        return self.post.variance + theta**2 * self.pre.variance - 2 * theta * self.covariance


def pooled_theta(a: RegressionAdjustedStatistic, b: RegressionAdjustedStatistic) -> float:
    """CUPED's theta = Cov(Y, X) / Var(X), pooled over both arms (Deng et al. 2013, section 3.3).

    0 (no adjustment) when the pre-period or the metric has no variance, or when the statistics
    cannot give a finite theta (the analyses validate them first and report why).
    """
    try:
        joint = a + b
        if not (joint.pre.variance > 0 and joint.post.variance > 0):
            return 0.0
        theta = float(joint.covariance / joint.pre.variance)
    except (ArithmeticError, TypeError):
        return 0.0
    return theta if math.isfinite(theta) else 0.0


@dataclass(frozen=True, slots=True)
class QuantileStatistic:
    """An arm's sample quantile over n units and its estimator's standard error (stats.quantile).

    Everything a test needs of a quantile, but not additive like the others: two days' quantiles are
    recomputed from their values, not summed."""

    n: int
    value: float
    std_error: float

    @property
    def mean(self) -> float:
        """The quantile: what the tests compare between arms (named as the other statistics name it)."""
        return self.value

    @property
    def variance(self) -> float:
        """n SE^2: the estimator's variance on the per-unit scale, as the tests divide it by n."""
        return self.n * self.std_error**2


Statistic = (
    ProportionStatistic
    | SampleMeanStatistic
    | RatioStatistic
    | RegressionAdjustedStatistic
    | QuantileStatistic
)
