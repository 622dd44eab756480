"""Bayesian summaries: exact beta-binomial for conversion rates, and a Gaussian model of the effect.

Beta-binomial. With Beta(a, b) posteriors for both rates, the probability that B beats A
is exact (Evan Miller, "Formulas for Bayesian A/B testing", 2015):
    P(p_B > p_A) = sum_{i=0}^{a_B - 1} B(a_A + i, b_A + b_B) / ((b_B + i) B(1 + i, b_B) B(a_A, b_A))
and the expected loss of each choice follows from it (Chris Stucchio, "Bayesian A/B
Testing at VWO", 2015, eq. 4 with the same h):
    E[max(p_B - p_A, 0)] = mean_B h(a_A, b_A, a_B + 1, b_B) - mean_A h(a_A + 1, b_A, a_B, b_B).

Gaussian effect model (as GrowthBook's EffectBayesianABTest): the estimated effect with
its delta-method variance as a normal likelihood, optionally combined with a proper
normal prior on the effect (precision-weighted mean). Chance to win is P(effect > 0);
the risk of a choice is the expected effect lost by it:
    E[max(X, 0)] = mu Phi(mu/s) + s phi(mu/s),   E[max(-X, 0)] = s phi(mu/s) - mu Phi(-mu/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from stats.estimate import DataProblem, Problem, estimate
from stats.sufficient import ProportionStatistic, Statistic


@dataclass(frozen=True, slots=True)
class BetaPrior:
    """Whole-number pseudo-counts (the exact formula needs them): Beta(1, 1) is uniform."""

    successes: int = 1
    failures: int = 1


@dataclass(frozen=True, slots=True)
class BetaBinomialResult:
    chance_to_beat_control: float
    expected_loss_choosing_treatment: float
    expected_loss_choosing_control: float
    problem: DataProblem | None = None


def _beats(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """P(X_B > X_A) for X ~ Beta; sums over the smaller of the two whole a-parameters."""
    if a_b > a_a:
        return 1.0 - _beats(a_b, b_b, a_a, b_a)
    i = np.arange(int(a_b))
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(min(1.0, max(0.0, np.exp(special.logsumexp(terms)))))


def beta_binomial(
    control: ProportionStatistic, treatment: ProportionStatistic, prior: BetaPrior = BetaPrior()
) -> BetaBinomialResult:
    for arm in (control, treatment):
        if arm.conversions != int(arm.conversions) or not 0 <= arm.conversions <= arm.n:
            nan = math.nan
            problem = DataProblem(Problem.TOO_FEW_UNITS, "conversions must be whole numbers between 0 and n")
            return BetaBinomialResult(nan, nan, nan, problem)
    a_a, b_a = prior.successes + control.conversions, prior.failures + control.n - control.conversions
    a_b, b_b = prior.successes + treatment.conversions, prior.failures + treatment.n - treatment.conversions
    mean_a, mean_b = a_a / (a_a + b_a), a_b / (a_b + b_b)
    # E[max(p_B - p_A, 0)] is what is lost by keeping control; E[max(p_A - p_B, 0)] by choosing treatment.
    loss_control = mean_b * _beats(a_a, b_a, a_b + 1, b_b) - mean_a * _beats(a_a + 1, b_a, a_b, b_b)
    loss_treatment = mean_a * _beats(a_b, b_b, a_a + 1, b_a) - mean_b * _beats(a_b + 1, b_b, a_a, b_a)
    return BetaBinomialResult(
        chance_to_beat_control=_beats(a_a, b_a, a_b, b_b),
        expected_loss_choosing_treatment=max(loss_treatment, 0.0),
        expected_loss_choosing_control=max(loss_control, 0.0),
    )


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


def gaussian_effect(
    control: Statistic,
    treatment: Statistic,
    *,
    relative: bool = False,
    prior: GaussianPrior | None = None,
    alpha: float = 0.05,
) -> EffectResult:
    est = estimate(control, treatment, relative=relative)
    if isinstance(est, DataProblem):
        nan = math.nan
        return EffectResult(nan, nan, nan, nan, nan, nan, nan, est)
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
