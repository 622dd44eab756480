"""Sequential testing that stays valid however often it is looked at.

The asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences" (2023,
arXiv:2103.06476v7), which is the normal-mixture (mixture SPRT) boundary of Johari et
al. (2017) written for asymptotically normal estimates; as GrowthBook uses it.

With N units in both arms, the estimator variance V (so N V is the per-unit variance)
and the mixing parameter rho:

    half-width  = sqrt(N V) sqrt( 2 (N rho^2 + 1) / (N^2 rho^2) * log( sqrt(N rho^2 + 1) / alpha ) )   (eq. 9)
    e-value     = exp( rho^2 S^2 / (2 (N rho^2 + 1)) ) / sqrt(N rho^2 + 1),  S^2 = N effect^2 / V   (eq. 155)
    p-value     = min(1, 1 / e-value)

rho^2 is the mixing variance on the scale of the standardised effect (tau^2 of the
mixture SPRT). Chosen from the total sample size N* at which a decision is expected, it
is the value that makes the boundary tightest at N* (eq. 161):
rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / N*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from stats.estimate import DataProblem, estimate
from stats.results import AnalysisResult
from stats.sufficient import Statistic


@dataclass(frozen=True, slots=True)
class SequentialDesign:
    rho_squared: float

    def __post_init__(self) -> None:
        if not self.rho_squared > 0:
            raise ValueError(f"the mixing variance must be positive, got {self.rho_squared}")

    @classmethod
    def from_mixing_variance(cls, tau_squared: float) -> SequentialDesign:
        return cls(rho_squared=tau_squared)

    @classmethod
    def from_expected_sample_size(cls, total_units: float, alpha: float = 0.05) -> SequentialDesign:
        """Tightest at `total_units` (both arms together): Waudby-Smith et al. eq. 161."""
        if not total_units > 0:
            raise ValueError(f"the expected sample size must be positive, got {total_units}")
        log_alpha = -2 * math.log(alpha)
        return cls(rho_squared=(log_alpha + math.log(log_alpha + 1)) / total_units)

    def half_width(self, n_total: float, estimator_variance: float, alpha: float) -> float:
        n_rho2 = n_total * self.rho_squared
        factor = 2 * (n_rho2 + 1) / (n_total * n_rho2) * math.log(math.sqrt(n_rho2 + 1) / alpha)
        return math.sqrt(n_total * estimator_variance) * math.sqrt(factor)

    def p_value(self, n_total: float, effect: float, estimator_variance: float) -> float:
        n_rho2 = n_total * self.rho_squared
        s2 = n_total * effect**2 / estimator_variance
        log_e = self.rho_squared * s2 / (2 * (n_rho2 + 1)) - 0.5 * math.log(n_rho2 + 1)
        return 1.0 if log_e <= 0 else math.exp(-log_e)


def sequential(
    control: Statistic,
    treatment: Statistic,
    design: SequentialDesign,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    test_value: float = 0.0,
) -> AnalysisResult:
    """An always-valid two-sided p-value and confidence interval at the data seen so far."""
    est = estimate(control, treatment, relative=relative)
    if isinstance(est, DataProblem):
        return AnalysisResult.failed(est)
    width = design.half_width(est.n, est.variance, alpha)
    return AnalysisResult(
        effect=est.effect,
        ci_low=est.effect - width,
        ci_high=est.effect + width,
        p_value=design.p_value(est.n, est.effect - test_value, est.variance),
        std_error=est.std_error,
    )


def accumulate_looks(looks: Iterable[AnalysisResult]) -> list[AnalysisResult]:
    """Carry the running minimum p-value and the running intersection of intervals over a series of looks.

    Both stay valid under continuous monitoring (the sequence holds at all times at once),
    and make the reported result monotone: it never becomes less certain with more data.
    """
    carried: list[AnalysisResult] = []
    running: AnalysisResult | None = None
    for look in looks:
        if look.problem is None:
            if running is not None:
                look = replace(
                    look,
                    p_value=min(running.p_value, look.p_value),
                    ci_low=max(running.ci_low, look.ci_low),
                    ci_high=min(running.ci_high, look.ci_high),
                )
            running = look
        carried.append(look)  # a look with a data problem is reported as it is and carries nothing
    return carried
