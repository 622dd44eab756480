"""What inputs can be: checks at the boundary of every public function, as sentences, never exceptions.

A statistic is checked for what no data could produce (non-finite sums, negative or
fractional unit counts, conversions outside [0, n], a sum of squares that implies a
negative variance, a covariance larger than the two variances allow); a parameter for
its range. Each check returns None when the value is fine, else what is wrong with it.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from stats.sufficient import (
    ProportionStatistic,
    QuantileStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)

# Rounding in sums of squares may put a true zero variance a hair below 0.
_RELATIVE_SLACK = 1e-9
MAX_MAGNITUDE = 1e100
"""Largest sum accepted: far beyond any metric, and small enough that its square is a float."""
MAX_UNITS = 10**15


def finite(value: Any) -> bool:
    return type(value) is not bool and isinstance(value, Real) and math.isfinite(float(value))


def check_probability(name: str, value: Any, *, open_interval: bool = True) -> str | None:
    if not finite(value) or not (0 < value < 1 if open_interval else 0 <= value <= 1):
        bounds = "strictly between 0 and 1" if open_interval else "between 0 and 1"
        return f"{name} must be {bounds}, got {value!r}"
    return None


def check_positive(name: str, value: Any) -> str | None:
    if not finite(value) or not value > 0:
        return f"{name} must be a positive finite number, got {value!r}"
    return None


def _check_count(name: str, n: Any) -> str | None:
    if isinstance(n, bool) or not isinstance(n, Integral) or not 0 <= int(n) <= MAX_UNITS:
        return f"{name} must be a whole number of units between 0 and {MAX_UNITS:.0e}, got {n!r}"
    return None


def bounded(value: Any) -> bool:
    return finite(value) and abs(value) <= MAX_MAGNITUDE


def _check_mean_like(statistic: Any, what: str) -> str | None:
    if isinstance(statistic, ProportionStatistic):
        return _check_count(f"{what} n", statistic.n) or _check_conversions(statistic, what)
    if isinstance(statistic, SampleMeanStatistic):
        return _check_count(f"{what} n", statistic.n) or _check_sums(statistic, what)
    return f"{what} must be a ProportionStatistic or SampleMeanStatistic, got {type(statistic).__name__}"


def _check_conversions(statistic: ProportionStatistic, what: str) -> str | None:
    conversions = statistic.conversions
    if not finite(conversions) or not 0 <= conversions <= statistic.n:
        return f"{what} conversions must lie between 0 and n = {statistic.n}, got {conversions!r}"
    return None


def _check_sums(statistic: SampleMeanStatistic, what: str) -> str | None:
    if not (bounded(statistic.sum) and bounded(statistic.sum_squares)):
        return (
            f"{what} sum and sum of squares must be finite and within {MAX_MAGNITUDE:.0e}, "
            f"got {statistic.sum!r} and {statistic.sum_squares!r}"
        )
    if statistic.n == 0:
        if statistic.sum != 0 or statistic.sum_squares != 0:
            return f"{what} has no units but non-zero sums"
        return None
    floor = statistic.sum**2 / statistic.n
    if statistic.sum_squares < floor - _RELATIVE_SLACK * max(abs(floor), 1.0):
        return (
            f"{what} sum of squares {statistic.sum_squares!r} is below sum^2 / n = {floor!r}, "
            "which would be a negative variance"
        )
    return None


def _check_pair(x: Any, y: Any, sum_of_products: Any, what: str, names: tuple[str, str]) -> str | None:
    problem = _check_mean_like(x, f"{what} {names[0]}") or _check_mean_like(y, f"{what} {names[1]}")
    if problem is not None:
        return problem
    if x.n != y.n:
        return f"{what} {names[0]} and {names[1]} must count the same units, got n = {x.n} and {y.n}"
    if not bounded(sum_of_products):
        return (
            f"{what} sum of products must be finite and within {MAX_MAGNITUDE:.0e}, got {sum_of_products!r}"
        )
    if x.n > 1:
        covariance = (sum_of_products - x.sum * y.sum / x.n) / (x.n - 1)
        bound = math.sqrt(max(x.variance, 0.0) * max(y.variance, 0.0))
        if abs(covariance) > bound * (1 + 1e-6) + _RELATIVE_SLACK * max(abs(covariance), 1.0):
            return f"{what} sum of products implies a covariance larger than the variances allow"
    return None


def _check_quantile(statistic: QuantileStatistic) -> str | None:
    if not bounded(statistic.value):
        return f"the quantile must be finite and within {MAX_MAGNITUDE:.0e}, got {statistic.value!r}"
    if not bounded(statistic.std_error) or statistic.std_error < 0:
        return f"the quantile's standard error must be a finite number >= 0, got {statistic.std_error!r}"
    return None


def check_statistic(statistic: Any) -> str | None:
    """None if the statistic could come from data, else what is impossible about it."""
    if isinstance(statistic, ProportionStatistic | SampleMeanStatistic):
        return _check_mean_like(statistic, "the")
    if isinstance(statistic, RatioStatistic):
        return _check_pair(
            statistic.numerator,
            statistic.denominator,
            statistic.sum_of_products,
            "the ratio's",
            ("numerator", "denominator"),
        )
    if isinstance(statistic, RegressionAdjustedStatistic):
        return _check_pair(statistic.post, statistic.pre, statistic.sum_of_products, "the", ("post", "pre"))
    if isinstance(statistic, QuantileStatistic):
        return _check_count("the n", statistic.n) or _check_quantile(statistic)
    return f"expected a statistic from stats.sufficient, got {type(statistic).__name__}"
