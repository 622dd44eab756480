"""Fixed-horizon Welch t-tests for absolute and relative lift (one analysis, at a planned end).

Two-sided: p = 2 (1 - F_t(|t|; df)), CI = effect -/+ t_{1-alpha/2; df} se; one-sided
alternatives use the one tail (Welch 1947; the same conventions as GrowthBook's gbstats).
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import stats as scipy_stats

from stats.estimate import DataProblem, estimate
from stats.results import AnalysisResult
from stats.sufficient import Statistic

Alternative = Literal["two-sided", "greater", "less"]


def fixed_horizon(
    control: Statistic,
    treatment: Statistic,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test_value: float = 0.0,
) -> AnalysisResult:
    est = estimate(control, treatment, relative=relative)
    if isinstance(est, DataProblem):
        return AnalysisResult.failed(est)
    se = est.std_error
    t = (est.effect - test_value) / se
    dof = est.dof
    student = (
        scipy_stats.t
    )  # called with df each time: building a frozen distribution costs more than the test
    if alternative == "two-sided":
        width = float(student.ppf(1 - alpha / 2, dof)) * se
        p_value = 2 * float(student.sf(abs(t), dof))
        low, high = est.effect - width, est.effect + width
    elif alternative == "greater":
        p_value = float(student.sf(t, dof))
        low, high = est.effect - float(student.ppf(1 - alpha, dof)) * se, math.inf
    else:
        p_value = float(student.cdf(t, dof))
        low, high = -math.inf, est.effect + float(student.ppf(1 - alpha, dof)) * se
    return AnalysisResult(
        effect=est.effect, ci_low=low, ci_high=high, p_value=min(p_value, 1.0), std_error=se
    )
