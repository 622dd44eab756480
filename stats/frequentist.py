"""Fixed-horizon Welch t-tests for absolute and relative lift (one analysis, at a planned end).

Two-sided: p = 2 (1 - F_t(|t|; df)); one-sided alternatives use the one tail (Welch 1947;
the conventions of GrowthBook's gbstats for the absolute lift). A relative lift is tested
as the same null on the absolute scale, and its interval is Fieller's with the same t
quantile (stats.estimate explains both), so p < alpha exactly when the interval excludes
the null value.
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import special

from stats.estimate import DataProblem, Problem, estimate, welch_dof
from stats.guard import analysis_usable, guarded
from stats.results import AnalysisResult
from stats.sufficient import Statistic
from stats.validation import check_probability, finite

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES = ("two-sided", "greater", "less")


def _t_quantile(q: float, dof: float) -> float:
    # scipy.special's ufuncs: the same distribution as scipy.stats.t, without its per-call overhead.
    return float(special.stdtrit(dof, q)) if math.isfinite(dof) else float(special.ndtri(q))


def _t_sf(t: float, dof: float) -> float:
    return float(special.stdtr(dof, -t)) if math.isfinite(dof) else float(special.ndtr(-t))


def check_test_parameters(alpha: float, test_value: float) -> DataProblem | None:
    problem = check_probability("alpha", alpha)
    if problem is None and not finite(test_value):
        problem = f"test_value must be a finite number, got {test_value!r}"
    return DataProblem(Problem.INVALID_PARAMETER, problem) if problem is not None else None


@guarded(AnalysisResult.failed, analysis_usable)
def fixed_horizon(
    control: Statistic,
    treatment: Statistic,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test_value: float = 0.0,
) -> AnalysisResult:
    invalid = check_test_parameters(alpha, test_value)
    if invalid is None and alternative not in _ALTERNATIVES:
        invalid = DataProblem(
            Problem.INVALID_PARAMETER,
            f"alternative must be one of {', '.join(_ALTERNATIVES)}, got {alternative!r}",
        )
    if invalid is not None:
        return AnalysisResult.failed(invalid)
    est = estimate(control, treatment, relative=relative)
    if isinstance(est, DataProblem):
        return AnalysisResult.failed(est)
    value, variance = est.null_contrast(test_value)
    if not variance > 0:
        return AnalysisResult.failed(
            DataProblem(Problem.ZERO_VARIANCE, "the contrast under the null has no variance to test against")
        )
    rho = est.null_rho(test_value)
    dof = welch_dof(
        est.treatment.variance / est.treatment.n,
        est.treatment.n,
        rho**2 * est.control.variance / est.control.n,
        est.control.n,
    )
    t = value / math.sqrt(variance)
    if alternative == "two-sided":
        p_value = 2 * _t_sf(abs(t), dof)
        critical = _t_quantile(1 - alpha / 2, est.dof)
        low, high = est.interval(critical, critical)
    elif alternative == "greater":
        p_value = _t_sf(t, dof)
        low, high = est.interval(_t_quantile(1 - alpha, est.dof), math.inf)
    else:
        p_value = _t_sf(-t, dof)
        low, high = est.interval(math.inf, _t_quantile(1 - alpha, est.dof))
    return AnalysisResult(
        effect=est.effect,
        ci_low=low,
        ci_high=high,
        p_value=min(max(p_value, 0.0), 1.0),
        std_error=est.std_error,
    )
