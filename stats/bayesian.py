"""Bayesian summaries: exact beta-binomial for conversion rates, and a Gaussian model of the effect.

Beta-binomial. With Beta(a, b) posteriors for both rates, the probability that B beats A
is exact for whole-number parameters (Evan Miller, "Formulas for Bayesian A/B testing", 2015):
    P(p_B > p_A) = sum_{i=0}^{a_B - 1} B(a_A + i, b_A + b_B) / ((b_B + i) B(1 + i, b_B) B(a_A, b_A))
and the expected loss of each choice follows from it (Chris Stucchio, "Bayesian A/B
Testing at VWO", 2015, eq. 4 with the same h):
    E[max(p_B - p_A, 0)] = mean_B h(a_A, b_A, a_B + 1, b_B) - mean_A h(a_A + 1, b_A, a_B, b_B).
The sum has a_B terms, so beyond EXACT_LIMIT (and for non-integer priors such as Jeffreys'
Beta(1/2, 1/2), where it does not apply) the same quantities are computed as one-dimensional
integrals over the quantiles of the narrower posterior, by Gauss-Legendre quadrature:
    P(Y > X) = E_Y[F_X(Y)],   E[max(Y - X, 0)] = E_Y[Y F_X(Y) - mean_X F_X+(Y)]
(X+ ~ Beta(a_X + 1, b_X), since the integral of x f_X up to y is mean_X F_X+(y)), which costs
the same at a hundred units or a billion, and agrees with the exact sum to 1e-7 where both run.

Gaussian effect model (as GrowthBook's EffectBayesianABTest): the estimated effect with
its delta-method variance as a normal likelihood, optionally combined with a proper
normal prior on the effect (precision-weighted mean). Chance to win is P(effect > 0);
the risk of a choice is the expected effect lost by it:
    E[max(X, 0)] = mu Phi(mu/s) + s phi(mu/s),   E[max(-X, 0)] = s phi(mu/s) - mu Phi(-mu/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from stats.estimate import DataProblem, Problem, estimate
from stats.frequentist import check_test_parameters
from stats.guard import finite_fields, guarded
from stats.sufficient import ProportionStatistic, Statistic
from stats.validation import check_positive, check_statistic, finite

EXACT_LIMIT = 2_000
"""Largest whole-number a-parameter for which the exact sum is used."""

_NODES, _WEIGHTS = special.roots_legendre(600)
_U, _W = (_NODES + 1) / 2, _WEIGHTS / 2  # Gauss-Legendre on (0, 1)


@dataclass(frozen=True, slots=True)
class BetaPrior:
    """Pseudo-counts of a Beta prior: Beta(1, 1) is uniform, Beta(0.5, 0.5) Jeffreys'."""

    successes: float = 1
    failures: float = 1


@dataclass(frozen=True, slots=True)
class BetaBinomialResult:
    chance_to_beat_control: float
    expected_loss_choosing_treatment: float
    expected_loss_choosing_control: float
    problem: DataProblem | None = None


def _whole(*values: float) -> bool:
    return all(float(v).is_integer() for v in values)


def _exact_beats(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """P(X_B > X_A) for X ~ Beta, whole-number a-parameters: sums over the smaller one."""
    if a_b > a_a:
        return 1.0 - _exact_beats(a_b, b_b, a_a, b_a)
    i = np.arange(int(a_b))
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(min(1.0, max(0.0, np.exp(special.logsumexp(terms)))))


def _spread(a: float, b: float) -> float:
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def _beats(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(Y > X) for X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y)."""
    if _whole(a_x, a_y) and min(a_x, a_y) <= EXACT_LIMIT:
        return _exact_beats(a_x, b_x, a_y, b_y)
    return _quadrature_beats(a_x, b_x, a_y, b_y)


def _quadrature_beats(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    if _spread(a_y, b_y) <= _spread(a_x, b_x):
        y = special.betaincinv(a_y, b_y, _U)
        probability = float(np.dot(_W, special.betainc(a_x, b_x, y)))
    else:
        x = special.betaincinv(a_x, b_x, _U)
        probability = 1.0 - float(np.dot(_W, special.betainc(a_y, b_y, x)))
    return min(1.0, max(0.0, probability))


def _excess(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """E[max(Y - X, 0)] for X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y)."""
    mean_x, mean_y = a_x / (a_x + b_x), a_y / (a_y + b_y)
    if _whole(a_x, a_y) and min(a_x, a_y) + 1 <= EXACT_LIMIT:
        excess = mean_y * _exact_beats(a_x, b_x, a_y + 1, b_y) - mean_x * _exact_beats(a_x + 1, b_x, a_y, b_y)
    elif _spread(a_y, b_y) <= _spread(a_x, b_x):
        y = special.betaincinv(a_y, b_y, _U)
        inner = y * special.betainc(a_x, b_x, y) - mean_x * special.betainc(a_x + 1, b_x, y)
        excess = float(np.dot(_W, inner))
    else:
        x = special.betaincinv(a_x, b_x, _U)
        inner = mean_y * special.betaincc(a_y + 1, b_y, x) - x * special.betaincc(a_y, b_y, x)
        excess = float(np.dot(_W, inner))
    return max(excess, 0.0)


@guarded(
    lambda problem: BetaBinomialResult(math.nan, math.nan, math.nan, problem),
    finite_fields(
        "chance_to_beat_control", "expected_loss_choosing_treatment", "expected_loss_choosing_control"
    ),
)
def beta_binomial(
    control: ProportionStatistic, treatment: ProportionStatistic, prior: BetaPrior = BetaPrior()
) -> BetaBinomialResult:
    problem = _beta_binomial_problem(control, treatment, prior)
    if problem is not None:
        nan = math.nan
        return BetaBinomialResult(nan, nan, nan, problem)
    a_a, b_a = prior.successes + control.conversions, prior.failures + control.n - control.conversions
    a_b, b_b = prior.successes + treatment.conversions, prior.failures + treatment.n - treatment.conversions
    if not min(a_a, b_a, a_b, b_b) > 0:  # a pseudo-count below floating-point resolution vanished in the sum
        problem = DataProblem(
            Problem.INVALID_PARAMETER,
            "the prior's pseudo-counts are too small to change the posterior; use at least 1e-6",
        )
        return BetaBinomialResult(math.nan, math.nan, math.nan, problem)
    with np.errstate(all="ignore"):  # extreme parameters give inf/nan, which the guard reports as a problem
        return BetaBinomialResult(
            chance_to_beat_control=_beats(a_a, b_a, a_b, b_b),
            # What is lost by choosing treatment is E[max(p_A - p_B, 0)]; by keeping control, E[max(p_B - p_A, 0)].
            expected_loss_choosing_treatment=_excess(a_b, b_b, a_a, b_a),
            expected_loss_choosing_control=_excess(a_a, b_a, a_b, b_b),
        )


def _beta_binomial_problem(control: Any, treatment: Any, prior: Any) -> DataProblem | None:
    for name, arm in (("control", control), ("treatment", treatment)):
        if not isinstance(arm, ProportionStatistic):
            return DataProblem(Problem.INVALID_STATISTIC, f"the {name} must be a ProportionStatistic")
        invalid = check_statistic(arm)
        if invalid is not None:
            return DataProblem(Problem.INVALID_STATISTIC, f"the {name} statistic is impossible: {invalid}")
    if not isinstance(prior, BetaPrior):
        return DataProblem(Problem.INVALID_PARAMETER, "prior must be a BetaPrior")
    invalid = check_positive("the prior's successes", prior.successes) or check_positive(
        "the prior's failures", prior.failures
    )
    return DataProblem(Problem.INVALID_PARAMETER, invalid) if invalid is not None else None


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """A proper normal prior on the effect, on the scale of the effect (absolute or relative)."""

    mean: float = 0.0
    variance: float = 1.0


@dataclass(frozen=True, slots=True)
class EffectResult:
    mean: float
    std: float
    ci_low: float
    ci_high: float
    chance_to_win: float
    risk_control: float
    """Expected effect lost by keeping control."""
    risk_treatment: float
    """Expected effect lost by choosing treatment."""
    problem: DataProblem | None = None


@guarded(
    lambda problem: EffectResult(
        math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, problem
    ),
    finite_fields("mean", "std", "chance_to_win", "risk_control", "risk_treatment"),
)
def gaussian_effect(
    control: Statistic,
    treatment: Statistic,
    *,
    relative: bool = False,
    prior: GaussianPrior | None = None,
    alpha: float = 0.05,
) -> EffectResult:
    nan = math.nan
    invalid = check_test_parameters(alpha, 0.0)
    given: Any = prior
    if invalid is None and given is not None:
        if not isinstance(given, GaussianPrior):
            invalid = DataProblem(Problem.INVALID_PARAMETER, "prior must be a GaussianPrior or None")
        else:
            message = check_positive("the prior variance", given.variance)
            if message is None and not finite(given.mean):
                message = f"the prior mean must be finite, got {given.mean!r}"
            invalid = DataProblem(Problem.INVALID_PARAMETER, message) if message is not None else None
    if invalid is not None:
        return EffectResult(nan, nan, nan, nan, nan, nan, nan, invalid)
    est = estimate(control, treatment, relative=relative)
    if isinstance(est, DataProblem):
        return EffectResult(nan, nan, nan, nan, nan, nan, nan, est)
    if not est.variance > 0:
        problem = DataProblem(Problem.ZERO_VARIANCE, "the estimate has no variance, so no posterior spread")
        return EffectResult(nan, nan, nan, nan, nan, nan, nan, problem)
    precision = 1 / est.variance + (1 / prior.variance if prior is not None else 0.0)
    mean = (
        est.effect if prior is None else (est.effect / est.variance + prior.mean / prior.variance) / precision
    )
    std = math.sqrt(1 / precision)
    normal = scipy_stats.norm(mean, std)
    z = mean / std
    pdf, cdf, sf = (
        float(scipy_stats.norm.pdf(z)),
        float(scipy_stats.norm.cdf(z)),
        float(scipy_stats.norm.sf(z)),
    )
    return EffectResult(
        mean=mean,
        std=std,
        ci_low=float(normal.ppf(alpha / 2)),
        ci_high=float(normal.ppf(1 - alpha / 2)),
        chance_to_win=float(normal.sf(0.0)),
        risk_control=mean * cdf + std * pdf,
        risk_treatment=std * pdf - mean * sf,
    )
