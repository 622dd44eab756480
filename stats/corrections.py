"""Multiple-comparison adjustments across metrics x variants.

Holm (1979), "A simple sequentially rejective multiple test procedure": step-down,
adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)) for ascending p_(1..m).
Benjamini and Hochberg (1995), step-up false discovery rate:
adjusted p_(i) = min_{j>=i} min(1, m p_(j) / j).
Both return the adjusted values in the order given; a p-value outside [0, 1] (or NaN)
makes the whole adjustment a problem, since every adjusted value depends on every input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stats.estimate import DataProblem, Problem
from stats.validation import check_probability


@dataclass(frozen=True, slots=True)
class Adjusted:
    p_values: tuple[float, ...]
    """Adjusted p-values, in the order given (NaN when there is a problem)."""
    problem: DataProblem | None = None


def _invalid(p_values: Any) -> Adjusted | None:
    if not isinstance(p_values, Sequence):
        return Adjusted((), DataProblem(Problem.INVALID_PARAMETER, "p-values must be a sequence"))
    for p in p_values:
        message = check_probability("every p-value", p, open_interval=False)
        if message is not None:
            nan = (math.nan,) * len(p_values)
            return Adjusted(nan, DataProblem(Problem.INVALID_PARAMETER, message))
    return None


def holm(p_values: Sequence[float]) -> Adjusted:
    invalid = _invalid(p_values)
    if invalid is not None:
        return invalid
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return Adjusted(tuple(adjusted))


def benjamini_hochberg(p_values: Sequence[float]) -> Adjusted:
    invalid = _invalid(p_values)
    if invalid is not None:
        return invalid
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, index in enumerate(order):
        rank = m - position
        running = min(running, m * p_values[index] / rank)
        adjusted[index] = min(1.0, running)
    return Adjusted(tuple(adjusted))
