"""The difference between two arms, absolute or relative, with its variance: the input of every test.

Every test here is a test of one contrast on the absolute scale. With A the treatment's
mean and B the control's mean (CUPED: A = adjusted treatment mean + theta x control's
pre-period mean, B = control's raw mean, so that A - B is the CUPED difference),

    absolute lift      A - B
    relative lift      (A - B) / |B| = sign(B) (A / B - 1)

and the null "relative lift = r0" is the linear null A - rho0 B = 0 with
rho0 = 1 + sign(B) r0. The contrast A - rho B has the variance

    V(rho) = Var(A) - 2 rho Cov(A, B) + rho^2 Var(B)

(arms independent; Cov(A, B) = theta Cov_c(Y, X) / n_c comes from CUPED's use of the
control's pre-period mean). So a relative p-value is the p-value of the same null on the
absolute scale, and the relative interval is the set of rho that test does not reject,
Fieller's interval (Fieller 1954, "Some problems in interval estimation", JRSS B 16:175;
for ratios of means, e.g. Franz 2007, arXiv:0710.2024, eq. 5): the rho with

    (A - rho B)^2 <= c^2 V(rho)

for the critical value c of the test (a t or z quantile, or a confidence sequence's
radius). It needs no variance at the estimate, so it keeps its coverage at low counts
where the delta method's variance shrinks with the treatment mean (the defect of
gbstats 0.8.0 that this replaces); when B is not clearly away from 0 the set is
unbounded and the interval is the whole line. The reported standard error of a relative
lift is the delta method's, V(A/B) / B^2 (Deng, Knoblich and Lu 2018, "Applying the
delta method in metric analytics", KDD, section 3.2), which for CUPED carries the
control pre-period term theta / mu_c, not theta mu_t / mu_c^2.

Problems with the data (too few units, no variance, a zero control mean, an impossible
or non-finite statistic) are returned as values that say which and why, never raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from stats.sufficient import RatioStatistic, RegressionAdjustedStatistic, Statistic, pooled_theta
from stats.validation import check_statistic


class Problem(StrEnum):
    TOO_FEW_UNITS = "too_few_units"
    ZERO_VARIANCE = "zero_variance"
    ZERO_CONTROL_MEAN = "zero_control_mean"
    MIXED_STATISTICS = "mixed_statistics"
    INVALID_STATISTIC = "invalid_statistic"
    """A statistic that no data could produce: non-finite, negative counts, conversions above n."""
    INVALID_PARAMETER = "invalid_parameter"
    """A parameter out of its range: alpha outside (0, 1), a non-positive variance or sample size."""
    EMPTY_INTERVAL = "empty_interval"
    """Intervals that must overlap do not: the model's assumptions are violated."""


@dataclass(frozen=True, slots=True)
class DataProblem:
    problem: Problem
    message: str


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm reduced to what the tests use: units, (adjusted) mean, the raw mean, per-unit variance."""

    n: int
    mean: float
    unadjusted_mean: float
    variance: float


@dataclass(frozen=True, slots=True)
class Contrast:
    """A (treatment side) and B (control side) with the pieces of V(rho) = Var(A - rho B)."""

    a: float
    b: float
    var_a: float
    var_b: float
    cov_ab: float

    def variance(self, rho: float) -> float:
        return max(self.var_a - 2 * rho * self.cov_ab + rho**2 * self.var_b, 0.0)

    def ratio_interval(self, critical: float) -> tuple[float, float]:
        """Fieller's set {rho : (A - rho B)^2 <= critical^2 V(rho)}, or (-inf, inf) when unbounded."""
        c2 = critical**2
        quadratic = self.b**2 - c2 * self.var_b
        if not quadratic > 0:
            return -math.inf, math.inf
        linear = self.a * self.b - c2 * self.cov_ab
        constant = self.a**2 - c2 * self.var_a
        discriminant = max(linear**2 - quadratic * constant, 0.0)
        root = math.sqrt(discriminant)
        return (linear - root) / quadratic, (linear + root) / quadratic


@dataclass(frozen=True, slots=True)
class Estimate:
    effect: float
    variance: float
    """Variance of the estimator (not per unit): the delta method's, for a relative lift."""
    dof: float
    """Welch-Satterthwaite degrees of freedom of the contrast."""
    n: int
    """Units in both arms."""
    control: Arm
    treatment: Arm
    contrast: Contrast
    relative: bool

    @property
    def std_error(self) -> float:
        return float(self.variance**0.5)

    @property
    def sign(self) -> float:
        return 1.0 if self.contrast.b >= 0 else -1.0

    def null_rho(self, test_value: float) -> float:
        """The rho of the null `effect = test_value` written as A - rho B = 0."""
        return 1 + self.sign * test_value if self.relative else 1.0

    def null_contrast(self, test_value: float) -> tuple[float, float]:
        """(value, variance) of the absolute-scale contrast whose zero is the null `effect = test_value`."""
        if not self.relative:
            return self.effect - test_value, self.variance
        rho = self.null_rho(test_value)
        return self.contrast.a - rho * self.contrast.b, self.contrast.variance(rho)

    def interval(self, lower_critical: float, upper_critical: float) -> tuple[float, float]:
        """The interval of the effect for the critical values of its lower and upper sides (inf: open)."""
        if not self.relative:
            se = self.std_error
            return self.effect - lower_critical * se, self.effect + upper_critical * se
        low = self._relative_bound(lower_critical, lower=True)
        high = self._relative_bound(upper_critical, lower=False)
        return min(low, self.effect), max(high, self.effect)

    def _relative_bound(self, critical: float, *, lower: bool) -> float:
        if math.isinf(critical):
            return -math.inf if lower else math.inf
        rho_low, rho_high = self.contrast.ratio_interval(critical)
        # lift = sign(B) (rho - 1): a negative control mean turns the interval around.
        if self.sign > 0:
            return rho_low - 1 if lower else rho_high - 1
        return -(rho_high - 1) if lower else -(rho_low - 1)


def arms(control: Statistic, treatment: Statistic) -> tuple[Arm, Arm, float] | DataProblem:
    """Both arms as Arm values, and CUPED's theta pooled over the two (Deng et al. 2013); 0 without CUPED."""
    if type(control) is not type(treatment):
        return DataProblem(
            Problem.MIXED_STATISTICS, "control and treatment must be the same kind of statistic"
        )
    for name, statistic in (("control", control), ("treatment", treatment)):
        invalid = check_statistic(statistic)
        if invalid is not None:
            return DataProblem(Problem.INVALID_STATISTIC, f"the {name} statistic is impossible: {invalid}")
    if isinstance(control, RegressionAdjustedStatistic) and isinstance(
        treatment, RegressionAdjustedStatistic
    ):
        theta = pooled_theta(control, treatment)
        return _adjusted(control, theta), _adjusted(treatment, theta), theta
    return _arm(control), _arm(treatment), 0.0


def _adjusted(statistic: RegressionAdjustedStatistic, theta: float) -> Arm:
    return Arm(
        statistic.n, statistic.adjusted_mean(theta), statistic.post.mean, statistic.adjusted_variance(theta)
    )


def _arm(statistic: Statistic) -> Arm:
    assert not isinstance(statistic, RegressionAdjustedStatistic)
    mean = statistic.mean
    return Arm(statistic.n, mean, mean, statistic.variance)


def _contrast(control: Statistic, a: Arm, b: Arm, theta: float) -> Contrast:
    if isinstance(control, RegressionAdjustedStatistic):
        n = control.n
        return Contrast(
            a=b.mean + theta * control.pre.mean,
            b=control.post.mean,
            var_a=b.variance / b.n + theta**2 * control.pre.variance / n,
            # The control's adjusted variance is Var(Y) + theta^2 Var(X) - 2 theta Cov; a floor raised it
            # (pooled_floor), and the raise is carried by the control-mean term.
            var_b=(control.post.variance + a.variance - control.adjusted_variance(theta)) / n,
            cov_ab=theta * control.covariance / n,
        )
    return Contrast(a=b.mean, b=a.mean, var_a=b.variance / b.n, var_b=a.variance / a.n, cov_ab=0.0)


def welch_dof(var_a: float, n_a: int, var_b: float, n_b: float) -> float:
    """Welch-Satterthwaite for two independent variance terms (of the estimator) from n_a and n_b units."""
    numerator = (var_a + var_b) ** 2
    denominator = var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1)
    return numerator / denominator if denominator > 0 else math.inf


def pooled_floor(a: Arm, b: Arm, shares: tuple[float, float] = (1.0, 1.0)) -> tuple[Arm, Arm]:
    """Both arms with their per-unit variance raised to at least the pooled within-arm variance
    (times `shares`, per arm: 1 the whole pooled variance, 0 no floor).

    For the always-valid test, whose guarantee is asymptotic: a small arm's variance estimate
    is the least stable (a 10% arm with no conversion yet, or a handful of purchases of a
    skewed amount, looks certain), and an underestimate there makes the confidence sequence
    too narrow exactly when it is read most. The pooled variance (the df-weighted mean of the
    two, Welch's denominator's companion) is estimated from both arms; raising each arm to it
    is conservative (never narrower than Welch), changes nothing when the arms' variances are
    equal, and keeps Welch's variance for an arm that truly varies more.
    """
    pooled = ((a.n - 1) * a.variance + (b.n - 1) * b.variance) / (a.n + b.n - 2)
    return (
        Arm(a.n, a.mean, a.unadjusted_mean, max(a.variance, shares[0] * pooled)),
        Arm(b.n, b.mean, b.unadjusted_mean, max(b.variance, shares[1] * pooled)),
    )


Floor = bool | tuple[float, float]
"""Whether to floor the arms' variances at the pooled one (both), or, per arm (control, treatment), the share
of the pooled variance each is floored at (True or 1: all of it; False or 0: none)."""


def estimate(
    control: Statistic, treatment: Statistic, *, relative: bool = False, conservative: Floor = False
) -> Estimate | DataProblem:
    """Treatment minus control, or (treatment - control) / |control| when relative.

    `conservative` floors each arm's variance at the pooled one (`pooled_floor`), or, given as a
    pair, each arm at its share of the pooled one.
    """
    try:
        return _estimate(control, treatment, relative=relative, conservative=conservative)
    except ArithmeticError:
        return DataProblem(
            Problem.INVALID_STATISTIC, "the statistics are too extreme to combine in floating point"
        )


def _estimate(
    control: Statistic, treatment: Statistic, *, relative: bool, conservative: Floor
) -> Estimate | DataProblem:
    if isinstance(control, RatioStatistic) != isinstance(treatment, RatioStatistic):
        return DataProblem(
            Problem.MIXED_STATISTICS, "control and treatment must be the same kind of statistic"
        )
    both = arms(control, treatment)
    if isinstance(both, DataProblem):
        return both
    a, b, theta = both
    if a.n < 2 or b.n < 2:
        return DataProblem(Problem.TOO_FEW_UNITS, f"each arm needs at least 2 units; got {a.n} and {b.n}")
    if not (a.variance > 0 or b.variance > 0):
        return DataProblem(
            Problem.ZERO_VARIANCE, "neither arm varies, so there is no uncertainty to test against"
        )
    shares = conservative if isinstance(conservative, tuple) else (conservative, conservative)
    if shares[0] > 0 or shares[1] > 0:
        a, b = pooled_floor(a, b, (float(shares[0]), float(shares[1])))
    contrast = _contrast(control, a, b, theta)
    if relative:
        if contrast.b == 0:
            return DataProblem(
                Problem.ZERO_CONTROL_MEAN, "the control mean is 0, so a relative lift is undefined"
            )
        effect = (contrast.a - contrast.b) / abs(contrast.b)
        rho = contrast.a / contrast.b
        variance = contrast.variance(rho) / contrast.b**2
        dof = welch_dof(b.variance / b.n, b.n, rho**2 * a.variance / a.n, a.n)
    else:
        effect = b.mean - a.mean
        variance = b.variance / b.n + a.variance / a.n
        dof = welch_dof(b.variance / b.n, b.n, a.variance / a.n, a.n)
    if not (math.isfinite(effect) and math.isfinite(variance)):
        return DataProblem(
            Problem.INVALID_STATISTIC, "the statistics are too large to combine into a finite estimate"
        )
    return Estimate(
        effect=effect,
        variance=variance,
        dof=dof,
        n=a.n + b.n,
        control=a,
        treatment=b,
        contrast=contrast,
        relative=relative,
    )
