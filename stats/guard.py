"""The last line of the "never an exception" rule: arithmetic that overflows becomes a problem.

Inputs are validated first (stats.validation), so a guarded function meets overflow only
with values at the edge of what floats hold; it then answers with the problem
INVALID_STATISTIC instead of raising OverflowError or ZeroDivisionError.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np

from stats.estimate import DataProblem, Problem

P = ParamSpec("P")
T = TypeVar("T")

TOO_EXTREME = DataProblem(
    Problem.INVALID_STATISTIC,
    "the inputs are too extreme to compute with in floating point; rescale the metric or check the inputs",
)


def guarded(
    failed: Callable[[DataProblem], T], usable: Callable[[T], bool] | None = None
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Turn overflow into `failed(TOO_EXTREME)`, and so an answer that `usable` rejects (NaN from underflow)."""

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                # Floating-point trouble inside numpy/scipy becomes inf or nan, which `usable` then reports.
                with np.errstate(all="ignore"):
                    result = function(*args, **kwargs)
            except (ArithmeticError, ValueError):  # ValueError: scipy's solvers meeting a NaN
                return failed(TOO_EXTREME)
            if usable is not None and not usable(result):
                return failed(TOO_EXTREME)
            return result

        return wrapper

    return decorate


def finite_fields(*names: str) -> Callable[[object], bool]:
    """A `usable` check: no problem was reported, or every named field is a finite number."""

    def check(result: object) -> bool:
        if getattr(result, "problem", None) is not None:
            return True
        return all(math.isfinite(getattr(result, name)) for name in names)

    return check


def analysis_usable(result: object) -> bool:
    """A p-value in [0, 1] and an interval around the effect, or a reported problem."""
    if getattr(result, "problem", None) is not None:
        return True
    p_value, effect = getattr(result, "p_value", math.nan), getattr(result, "effect", math.nan)
    low, high = getattr(result, "ci_low", math.nan), getattr(result, "ci_high", math.nan)
    return math.isfinite(p_value) and 0 <= p_value <= 1 and math.isfinite(effect) and low <= effect <= high
