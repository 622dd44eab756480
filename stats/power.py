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

Every function returns a `Solved` value with a `problem` instead of raising: inputs out of
range (alpha outside (0, 1), a variance or sample size that is not positive, an MDE of 0,
a target power outside (alpha, 1)), or a target no sample size up to 10^12 reaches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scipy import optimize
from scipy import stats as scipy_stats

from stats.estimate import DataProblem, Problem
from stats.guard import finite_fields, guarded
from stats.sequential import SequentialDesign
from stats.validation import MAX_MAGNITUDE, bounded, check_positive, check_probability, finite

_NORMAL = scipy_stats.norm()
_MAX_N = 1e12


@dataclass(frozen=True, slots=True)
class Solved:
    """A power, a sample size (units per arm) or an MDE; NaN with a problem when it cannot be had."""

    value: float
    problem: DataProblem | None = None


def _failed(message: str, problem: Problem = Problem.INVALID_PARAMETER) -> Solved:
    return Solved(math.nan, DataProblem(problem, message))


def _check(
    inputs: Any, *, mde: Any = None, n: Any = None, target: Any = None, relative: bool = False
) -> str | None:
    if not isinstance(inputs, PowerInputs):
        return "inputs must be PowerInputs"
    message = (
        check_probability("alpha", inputs.alpha)
        or check_positive("the control variance", inputs.control_variance)
        or (
            check_positive("the treatment variance", inputs.treatment_variance)
            if inputs.treatment_variance is not None
            else None
        )
    )
    if message is None and not bounded(inputs.control_mean):
        message = (
            f"the control mean must be finite and within {MAX_MAGNITUDE:.0e}, got {inputs.control_mean!r}"
        )
    if message is None and not all(
        bounded(v) for v in (inputs.control_variance, inputs.treatment_variance or 0.0, mde or 0.0, n or 0.0)
    ):
        message = f"variances, the MDE and units per arm must lie within {MAX_MAGNITUDE:.0e}"
    if message is None and relative and inputs.control_mean == 0:
        message = "a relative MDE needs a control mean other than 0"
    if message is None and mde is not None and (not finite(mde) or mde == 0):
        message = f"the MDE must be a finite number other than 0, got {mde!r}"
    if message is None and n is not None:
        message = check_positive("units per arm", n)
    if message is None and target is not None:
        message = check_probability("the target power", target)
        if message is None and target <= inputs.alpha:
            message = f"the target power must exceed alpha ({inputs.alpha}), got {target!r}"
    return message


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


def _design_problem(design: Any) -> str | None:
    if not isinstance(design, SequentialDesign):
        return "design must be a SequentialDesign"
    problem = design.problem()
    return problem.message if problem is not None else None


def _power(inputs: PowerInputs, mde: float, n_per_arm: float, relative: bool) -> float:
    delta = inputs.absolute(mde, relative)
    se = inputs.se(n_per_arm)
    z = float(_NORMAL.ppf(1 - inputs.alpha / 2))
    return float(_NORMAL.cdf(delta / se - z) + _NORMAL.cdf(-delta / se - z))


def _sequential_power(
    inputs: PowerInputs, design: SequentialDesign, mde: float, n_per_arm: float, relative: bool
) -> float:
    delta = inputs.absolute(mde, relative)
    se = inputs.se(n_per_arm)
    h = design.half_width(2 * n_per_arm, se**2, inputs.alpha)
    return float(_NORMAL.cdf((delta - h) / se) + _NORMAL.cdf((-delta - h) / se))


@guarded(lambda problem: Solved(math.nan, problem), finite_fields("value"))
def power(inputs: PowerInputs, mde: float, n_per_arm: float, *, relative: bool = False) -> Solved:
    invalid = _check(inputs, mde=mde, n=n_per_arm, relative=relative)
    return _failed(invalid) if invalid is not None else Solved(_power(inputs, mde, n_per_arm, relative))


@guarded(lambda problem: Solved(math.nan, problem), finite_fields("value"))
def sample_size(
    inputs: PowerInputs, mde: float, *, target_power: float = 0.8, relative: bool = False
) -> Solved:
    """Units per arm for the fixed-horizon test to reach `target_power` at `mde`."""
    invalid = _check(inputs, mde=mde, target=target_power, relative=relative)
    if invalid is not None:
        return _failed(invalid)
    return _solve_n(lambda n: _power(inputs, mde, n, relative), target_power)


@guarded(lambda problem: Solved(math.nan, problem), finite_fields("value"))
def minimum_detectable_effect(
    inputs: PowerInputs, n_per_arm: float, *, target_power: float = 0.8, relative: bool = False
) -> Solved:
    invalid = _check(inputs, n=n_per_arm, target=target_power, relative=relative)
    if invalid is not None:
        return _failed(invalid)
    delta = _solve_delta(lambda d: _power(inputs, d, n_per_arm, False), target_power, inputs.se(n_per_arm))
    return Solved(delta / abs(inputs.control_mean) if relative else delta)


@guarded(lambda problem: Solved(math.nan, problem), finite_fields("value"))
def sequential_power(
    inputs: PowerInputs, design: SequentialDesign, mde: float, n_per_arm: float, *, relative: bool = False
) -> Solved:
    invalid = _check(inputs, mde=mde, n=n_per_arm, relative=relative) or _design_problem(design)
    if invalid is not None:
        return _failed(invalid)
    return Solved(_sequential_power(inputs, design, mde, n_per_arm, relative))


@guarded(lambda problem: Solved(math.nan, problem), finite_fields("value"))
def sequential_sample_size(
    inputs: PowerInputs,
    design: SequentialDesign,
    mde: float,
    *,
    target_power: float = 0.8,
    relative: bool = False,
) -> Solved:
    invalid = _check(inputs, mde=mde, target=target_power, relative=relative) or _design_problem(design)
    if invalid is not None:
        return _failed(invalid)
    return _solve_n(lambda n: _sequential_power(inputs, design, mde, n, relative), target_power)


@guarded(lambda problem: Solved(math.nan, problem), finite_fields("value"))
def sequential_minimum_detectable_effect(
    inputs: PowerInputs,
    design: SequentialDesign,
    n_per_arm: float,
    *,
    target_power: float = 0.8,
    relative: bool = False,
) -> Solved:
    invalid = _check(inputs, n=n_per_arm, target=target_power, relative=relative) or _design_problem(design)
    if invalid is not None:
        return _failed(invalid)
    delta = _solve_delta(
        lambda d: _sequential_power(inputs, design, d, n_per_arm, False), target_power, inputs.se(n_per_arm)
    )
    return Solved(delta / abs(inputs.control_mean) if relative else delta)


def _solve_n(power_at: Callable[[float], float], target: float) -> Solved:
    def gap(log_n: float) -> float:
        return power_at(math.exp(log_n)) - target

    low, high = math.log(2.0), math.log(_MAX_N)
    if gap(high) < 0:
        return _failed(
            f"no sample size up to {_MAX_N:.0e} units per arm reaches power {target}", Problem.TOO_FEW_UNITS
        )
    if gap(low) >= 0:
        return Solved(2.0)
    return Solved(math.exp(optimize.brentq(gap, low, high, xtol=1e-12, rtol=1e-14)))


def _solve_delta(power_at: Callable[[float], float], target: float, se: float) -> float:
    """The effect at which `power_at` reaches `target`; ArithmeticError (a guarded problem) if none does."""

    def gap(delta: float) -> float:
        return power_at(delta) - target

    high = 100 * se
    for _ in range(40):  # power rises to 1 with the effect, so a bracket exists unless floats run out
        if gap(high) >= 0:
            return float(optimize.brentq(gap, 0.0, high, xtol=1e-14, rtol=1e-14))
        high *= 10
    raise ArithmeticError("no effect size reaches the target power")
