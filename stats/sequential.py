"""Sequential testing that stays valid however often it is looked at.

The normal-mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis
and Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations
Research 70(3), 2022; arXiv:1512.04922), in the form of the asymptotic confidence
sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, "Time-uniform central limit
theory and asymptotic confidence sequences" (2023, arXiv:2103.06476v7), as GrowthBook uses it.

For an estimate d of the effect with estimator variance V, and a normal mixing
distribution N(0, tau^2) on the effect (Johari et al., section 4):

    Lambda = sqrt(V / (V + tau^2)) exp( tau^2 d^2 / (2 V (V + tau^2)) ),   p = min(1, 1 / Lambda)

and the interval of effects d0 with Lambda(d - d0) < 1/alpha has the half-width
sqrt( V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)) ).
Writing tau^2 = N V rho^2 with N the units in both arms (N V is the per-unit variance, so
rho^2 is tau^2 on the standardised scale) gives Waudby-Smith et al.'s eq. 9 and 155.

A design fixes either tau^2 on the effect scale (`from_mixing_variance`, Johari's
parameter) or rho^2 on the standardised scale (`from_standardized_mixing_variance`,
and `from_expected_sample_size`, which picks the rho^2 that makes the boundary tightest
at N* units: rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / N*, eq. 161).

Relative lift: the p-value is the mSPRT's for the same null on the absolute scale, and the
interval is Fieller's set of ratios the confidence sequence does not exclude (see
stats.estimate). For a tau^2 design the contrast's variance at the estimate fixes rho^2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol, cast

from stats.estimate import DataProblem, Problem, estimate
from stats.frequentist import check_test_parameters
from stats.guard import analysis_usable, guarded
from stats.results import AnalysisResult
from stats.sufficient import Statistic
from stats.validation import check_positive


@dataclass(frozen=True, slots=True)
class SequentialDesign:
    """The mixing variance of the test: rho^2 on the standardised scale, or tau^2 on the effect's.

    Constructing a design never raises; a design with an unusable parameter makes every
    analysis with it return a problem that says so.
    """

    rho_squared: float | None = None
    tau_squared: float | None = None

    def problem(self) -> DataProblem | None:
        given = [v for v in (self.rho_squared, self.tau_squared) if v is not None]
        if len(given) != 1:
            return DataProblem(
                Problem.INVALID_PARAMETER, "a design needs exactly one of rho_squared and tau_squared"
            )
        invalid = check_positive("the mixing variance", given[0])
        return DataProblem(Problem.INVALID_PARAMETER, invalid) if invalid is not None else None

    @classmethod
    def from_mixing_variance(cls, tau_squared: float) -> SequentialDesign:
        """Johari et al.'s tau^2: the variance of the normal mixture over the effect, on the effect's scale."""
        return cls(tau_squared=tau_squared)

    @classmethod
    def from_standardized_mixing_variance(cls, rho_squared: float) -> SequentialDesign:
        """rho^2 = tau^2 / (N V): the mixing variance of the standardised effect (Waudby-Smith et al.)."""
        return cls(rho_squared=rho_squared)

    @classmethod
    def from_expected_sample_size(cls, total_units: float, alpha: float = 0.05) -> SequentialDesign:
        """Tightest at `total_units` (both arms together): Waudby-Smith et al. eq. 161."""
        if check_positive("total_units", total_units) is not None or not 0 < alpha < 1:
            return cls(rho_squared=math.nan)  # reported by problem() when the design is used
        log_alpha = -2 * math.log(alpha)
        return cls(rho_squared=(log_alpha + math.log(log_alpha + 1)) / total_units)

    def n_rho_squared(self, n_total: float, estimator_variance: float) -> float:
        """N rho^2 = tau^2 / V: how much the mixture has learnt, at N units with estimator variance V."""
        if self.rho_squared is not None:
            return n_total * self.rho_squared
        assert self.tau_squared is not None
        return self.tau_squared / estimator_variance

    def radius(self, n_total: float, estimator_variance: float, alpha: float) -> float:
        """The half-width in standard errors: half-width = radius x sqrt(V) (eq. 9)."""
        n_rho2 = self.n_rho_squared(n_total, estimator_variance)
        return math.sqrt(2 * (n_rho2 + 1) / n_rho2 * math.log(math.sqrt(n_rho2 + 1) / alpha))

    def half_width(self, n_total: float, estimator_variance: float, alpha: float) -> float:
        return self.radius(n_total, estimator_variance, alpha) * math.sqrt(estimator_variance)

    def p_value(self, n_total: float, effect: float, estimator_variance: float) -> float:
        """min(1, 1 / Lambda) for the estimate `effect` against 0 (eq. 155; Johari et al. section 4)."""
        n_rho2 = self.n_rho_squared(n_total, estimator_variance)
        log_e = n_rho2 * effect**2 / (2 * estimator_variance * (n_rho2 + 1)) - 0.5 * math.log(n_rho2 + 1)
        return 1.0 if log_e <= 0 else math.exp(-log_e)


class Design(Protocol):
    def problem(self) -> DataProblem | None: ...


def check_design(alpha: float, test_value: float, design: object, kind: type[Design]) -> DataProblem | None:
    """The test's parameters, and a design of the kind the test takes that says it is usable."""
    invalid = check_test_parameters(alpha, test_value)
    if invalid is None and not isinstance(design, kind):
        return DataProblem(
            Problem.INVALID_PARAMETER, f"design must be a {kind.__name__}, got {type(design).__name__}"
        )
    return invalid if invalid is not None else cast(Design, design).problem()


@guarded(AnalysisResult.failed, analysis_usable)
def sequential(
    control: Statistic,
    treatment: Statistic,
    design: SequentialDesign,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    test_value: float = 0.0,
    conservative: bool = True,
) -> AnalysisResult:
    """An always-valid two-sided p-value and confidence interval at the data seen so far.

    `conservative` (the default) floors each arm's variance at the pooled one
    (stats.estimate.pooled_floor), which keeps the error rates at alpha when a small arm has
    few conversions or a skewed metric (bench/sequential_validity.py); `conservative=False`
    is the textbook test, and reproduces GrowthBook's numbers.
    """
    invalid = check_design(alpha, test_value, design, SequentialDesign)
    if invalid is not None:
        return AnalysisResult.failed(invalid)
    est = estimate(control, treatment, relative=relative, conservative=conservative)
    if isinstance(est, DataProblem):
        return AnalysisResult.failed(est)
    value, variance = est.null_contrast(test_value)
    if not variance > 0:
        return AnalysisResult.failed(
            DataProblem(Problem.ZERO_VARIANCE, "the contrast under the null has no variance to test against")
        )
    interval_variance = est.contrast.variance(est.contrast.a / est.contrast.b) if relative else est.variance
    critical = design.radius(est.n, max(interval_variance, variance * 1e-12), alpha)
    low, high = est.interval(critical, critical)
    return AnalysisResult(
        effect=est.effect,
        ci_low=low,
        ci_high=high,
        p_value=design.p_value(est.n, value, variance),
        std_error=est.std_error,
    )


def accumulate_looks(looks: Iterable[AnalysisResult]) -> list[AnalysisResult]:
    """Carry the running minimum p-value and the running intersection of intervals over a series of looks.

    Both stay valid under continuous monitoring (the sequence holds at all times at once),
    and make the reported result monotone: it never becomes less certain with more data.
    If the intersection becomes empty, the intervals cannot all hold: the model is violated
    (a changed design, a broken assumption), and that look and every later one report it.
    """
    carried: list[AnalysisResult] = []
    running: AnalysisResult | None = None
    broken: AnalysisResult | None = None
    for look in looks:
        if broken is not None:
            carried.append(broken)
            continue
        if look.problem is None:
            if running is not None:
                low, high = max(running.ci_low, look.ci_low), min(running.ci_high, look.ci_high)
                if low > high:
                    broken = AnalysisResult.failed(
                        DataProblem(
                            Problem.EMPTY_INTERVAL,
                            f"the confidence sequence is empty (intervals [{running.ci_low:.6g}, {running.ci_high:.6g}] "
                            f"and [{look.ci_low:.6g}, {look.ci_high:.6g}] do not overlap): the data contradict the "
                            "model; check for a changed split, a bug in assignment, or a shift in the metric",
                        )
                    )
                    carried.append(broken)
                    continue
                # The look's estimate, moved into the running interval if it lies outside: the interval
                # is what holds at every look at once.
                effect = min(max(look.effect, low), high)
                look = replace(
                    look, effect=effect, p_value=min(running.p_value, look.p_value), ci_low=low, ci_high=high
                )
            running = look
        carried.append(look)  # a look with a data problem is reported as it is and carries nothing
    return carried
