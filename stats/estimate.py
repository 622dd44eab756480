"""The difference between two arms, absolute or relative, with its variance: the input of every test.

Problems with the data (too few units, no variance, a zero control mean for a relative
lift) are returned as values that say which and why, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stats.sufficient import RatioStatistic, RegressionAdjustedStatistic, Statistic, pooled_theta


class Problem(StrEnum):
    TOO_FEW_UNITS = "too_few_units"
    ZERO_VARIANCE = "zero_variance"
    ZERO_CONTROL_MEAN = "zero_control_mean"
    MIXED_STATISTICS = "mixed_statistics"


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
class Estimate:
    effect: float
    variance: float
    """Variance of the estimator (not per unit)."""
    dof: float
    """Welch-Satterthwaite degrees of freedom."""
    n: int
    """Units in both arms."""
    control: Arm
    treatment: Arm

    @property
    def std_error(self) -> float:
        return float(self.variance**0.5)


def arms(control: Statistic, treatment: Statistic) -> tuple[Arm, Arm] | DataProblem:
    """Both arms as Arm values; CUPED's theta is pooled over the two (Deng et al. 2013)."""
    if type(control) is not type(treatment):
        return DataProblem(
            Problem.MIXED_STATISTICS, "control and treatment must be the same kind of statistic"
        )
    if isinstance(control, RegressionAdjustedStatistic) and isinstance(
        treatment, RegressionAdjustedStatistic
    ):
        theta = pooled_theta(control, treatment)
        return _adjusted(control, theta), _adjusted(treatment, theta)
    return _arm(control), _arm(treatment)


def _adjusted(statistic: RegressionAdjustedStatistic, theta: float) -> Arm:
    return Arm(
        statistic.n, statistic.adjusted_mean(theta), statistic.post.mean, statistic.adjusted_variance(theta)
    )


def _arm(statistic: Statistic) -> Arm:
    assert not isinstance(statistic, RegressionAdjustedStatistic)
    mean = statistic.mean
    return Arm(statistic.n, mean, mean, statistic.variance)


def welch_dof(a: Arm, b: Arm) -> float:
    """Welch-Satterthwaite: (s_a^2/n_a + s_b^2/n_b)^2 / (s_a^4/(n_a^2 (n_a-1)) + s_b^4/(n_b^2 (n_b-1)))."""
    numerator = (a.variance / a.n + b.variance / b.n) ** 2
    denominator = a.variance**2 / (a.n**2 * (a.n - 1)) + b.variance**2 / (b.n**2 * (b.n - 1))
    return numerator / denominator if denominator > 0 else float("inf")


def estimate(control: Statistic, treatment: Statistic, *, relative: bool = False) -> Estimate | DataProblem:
    """Treatment minus control, or (treatment - control) / |control| when relative.

    The relative variance is the delta method's (e.g. Deng et al. 2018, section 3.2):
    Var_b / (mu_a^2 n_b) + mu_b^2 Var_a / (mu_a^4 n_a), with the unadjusted means.
    """
    if isinstance(control, RatioStatistic) != isinstance(treatment, RatioStatistic):
        return DataProblem(
            Problem.MIXED_STATISTICS, "control and treatment must be the same kind of statistic"
        )
    both = arms(control, treatment)
    if isinstance(both, DataProblem):
        return both
    a, b = both
    if a.n < 2 or b.n < 2:
        return DataProblem(Problem.TOO_FEW_UNITS, f"each arm needs at least 2 units; got {a.n} and {b.n}")
    if relative:
        if a.unadjusted_mean == 0:
            return DataProblem(
                Problem.ZERO_CONTROL_MEAN, "the control mean is 0, so a relative lift is undefined"
            )
        effect = (b.mean - a.mean) / abs(a.unadjusted_mean)
        variance = b.variance / (a.unadjusted_mean**2 * b.n) + a.variance * b.unadjusted_mean**2 / (
            a.unadjusted_mean**4 * a.n
        )
    else:
        effect = b.mean - a.mean
        variance = b.variance / b.n + a.variance / a.n
    if not variance > 0:
        return DataProblem(
            Problem.ZERO_VARIANCE, "neither arm varies, so there is no uncertainty to test against"
        )
    return Estimate(
        effect=effect, variance=variance, dof=welch_dof(a, b), n=a.n + b.n, control=a, treatment=b
    )
