"""Power and minimum detectable effect, for the fixed-horizon and the sequential test.

Fixed horizon, two-sided z approximation with equal arms of n units and per-unit
variances s_a^2, s_b^2: se(n) = sqrt((s_a^2 + s_b^2) / n) and
    power(delta, n) = Phi(delta/se - z_{1-alpha/2}) + Phi(-delta/se - z_{1-alpha/2})
(both tails, as statsmodels' NormalIndPower). Sample size and MDE solve it for n or delta.

Sequential (Waudby-Smith et al. 2023, eq. 9): the test rejects once |estimate| exceeds the
confidence-sequence half-width h(N); at the final look with N = 2n units,
    power(delta, n) ~= Phi((delta - h)/se) + Phi((-delta - h)/se).
Earlier looks can only add rejections, so this is a lower bound on the true power.
A relative MDE is converted with the control mean: delta = mde * |mean_a|.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as scipy_stats

from stats.sequential import SequentialDesign

_NORMAL = scipy_stats.norm()


@dataclass(frozen=True, slots=True)
class PowerInputs:
    control_mean: float
    control_variance: float
    """Per-unit variance in control."""
    treatment_variance: float | None = None
    """Per-unit variance in treatment; the control's when not given."""
    alpha: float = 0.05

    def se(self, n_per_arm: float) -> float:
        var_b = self.control_variance if self.treatment_variance is None else self.treatment_variance
        return math.sqrt((self.control_variance + var_b) / n_per_arm)

    def absolute(self, mde: float, relative: bool) -> float:
        return abs(mde * self.control_mean) if relative else abs(mde)


def power(inputs: PowerInputs, mde: float, n_per_arm: float, *, relative: bool = False) -> float:
    delta = inputs.absolute(mde, relative)
    se = inputs.se(n_per_arm)
    z = float(_NORMAL.ppf(1 - inputs.alpha / 2))
    return float(_NORMAL.cdf(delta / se - z) + _NORMAL.cdf(-delta / se - z))


def sample_size(
    inputs: PowerInputs, mde: float, *, target_power: float = 0.8, relative: bool = False
) -> float:
    """Units per arm for the fixed-horizon test to reach `target_power` at `mde`."""
    return _solve_n(lambda n: power(inputs, mde, n, relative=relative), target_power)


def minimum_detectable_effect(
    inputs: PowerInputs, n_per_arm: float, *, target_power: float = 0.8, relative: bool = False
) -> float:
    delta = _solve_delta(lambda d: power(inputs, d, n_per_arm), target_power, inputs.se(n_per_arm))
    return delta / abs(inputs.control_mean) if relative else delta


def sequential_power(
    inputs: PowerInputs, design: SequentialDesign, mde: float, n_per_arm: float, *, relative: bool = False
) -> float:
    delta = inputs.absolute(mde, relative)
    se = inputs.se(n_per_arm)
    h = design.half_width(2 * n_per_arm, se**2, inputs.alpha)
    return float(_NORMAL.cdf((delta - h) / se) + _NORMAL.cdf((-delta - h) / se))


def sequential_sample_size(
    inputs: PowerInputs,
    design: SequentialDesign,
    mde: float,
    *,
    target_power: float = 0.8,
    relative: bool = False,
) -> float:
    return _solve_n(lambda n: sequential_power(inputs, design, mde, n, relative=relative), target_power)


def sequential_minimum_detectable_effect(
    inputs: PowerInputs,
    design: SequentialDesign,
    n_per_arm: float,
    *,
    target_power: float = 0.8,
    relative: bool = False,
) -> float:
    delta = _solve_delta(
        lambda d: sequential_power(inputs, design, d, n_per_arm), target_power, inputs.se(n_per_arm)
    )
    return delta / abs(inputs.control_mean) if relative else delta


def _solve_n(power_at: Callable[[float], float], target: float) -> float:
    def gap(log_n: float) -> float:
        return power_at(math.exp(log_n)) - target

    return math.exp(optimize.brentq(gap, math.log(2.0), math.log(1e12), xtol=1e-12, rtol=1e-14))


def _solve_delta(power_at: Callable[[float], float], target: float, se: float) -> float:
    def gap(delta: float) -> float:
        return power_at(delta) - target

    return float(optimize.brentq(gap, 0.0, 100 * se, xtol=1e-14, rtol=1e-14))
