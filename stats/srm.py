"""Sample-ratio mismatch: are units split across arms as the design says?

Pearson's chi-squared goodness-of-fit test of the observed counts against the designed
weights (as GrowthBook's check_srm), over the arms with positive weight: df = k - 1.
Units found in an arm of weight 0 are a mismatch by themselves, whatever the p-value.
Counts and weights that no design could have (negative, non-finite, fractional counts,
no positive weight, lengths that differ) come back as a problem, never as a p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

from scipy import special

from stats.estimate import DataProblem, Problem
from stats.guard import guarded
from stats.validation import check_probability, finite

DEFAULT_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SrmResult:
    chi_squared: float
    dof: int
    p_value: float
    unexpected_units: int
    """Units observed in arms whose designed weight is 0."""
    mismatch: bool
    problem: DataProblem | None = None


def _problem(counts: Any, weights: Any, threshold: Any) -> str | None:
    if not isinstance(counts, Sequence) or not isinstance(weights, Sequence):
        return "counts and weights must be sequences, one entry per arm"
    if len(counts) != len(weights):
        return f"{len(counts)} counts but {len(weights)} weights; give one weight per arm"
    for count in counts:
        if isinstance(count, bool) or not isinstance(count, Integral) or count < 0:
            return f"counts must be whole numbers >= 0, got {count!r}"
    for weight in weights:
        if not finite(weight) or weight < 0:
            return f"weights must be finite numbers >= 0, got {weight!r}"
    if not any(weight > 0 for weight in weights):
        return "at least one arm needs a positive weight"
    return check_probability("threshold", threshold)


@guarded(lambda problem: SrmResult(math.nan, 0, math.nan, 0, False, problem))
def sample_ratio_mismatch(
    counts: Sequence[int], weights: Sequence[float], *, threshold: float = DEFAULT_THRESHOLD
) -> SrmResult:
    invalid = _problem(counts, weights, threshold)
    if invalid is not None:
        nan = math.nan
        return SrmResult(nan, 0, nan, 0, False, DataProblem(Problem.INVALID_PARAMETER, invalid))
    live = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0]
    unexpected = sum(c for c, w in zip(counts, weights, strict=True) if w == 0)
    observed = sum(c for c, _ in live)
    total_weight = math.fsum(w for _, w in live)
    if len(live) < 2 or observed == 0:
        return SrmResult(0.0, max(len(live) - 1, 0), 1.0, unexpected, unexpected > 0)
    chi_squared = 0.0
    for count, weight in live:
        expected = weight / total_weight * observed
        chi_squared += (count - expected) ** 2 / expected
    dof = len(live) - 1
    p_value = float(special.chdtrc(dof, chi_squared))
    return SrmResult(chi_squared, dof, p_value, unexpected, p_value < threshold or unexpected > 0)
