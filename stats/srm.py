"""Sample-ratio mismatch: are units split across arms as the design says?

Pearson's chi-squared goodness-of-fit test of the observed counts against the designed
weights (as GrowthBook's check_srm), over the arms with positive weight: df = k - 1.
Units found in an arm of weight 0 are a mismatch by themselves, whatever the p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

DEFAULT_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SrmResult:
    chi_squared: float
    dof: int
    p_value: float
    unexpected_units: int
    """Units observed in arms whose designed weight is 0."""
    mismatch: bool


def sample_ratio_mismatch(
    counts: Sequence[int], weights: Sequence[float], *, threshold: float = DEFAULT_THRESHOLD
) -> SrmResult:
    if len(counts) != len(weights):
        raise ValueError(f"{len(counts)} counts but {len(weights)} weights; give one weight per arm")
    if any(w < 0 for w in weights) or any(c < 0 for c in counts):
        raise ValueError("counts and weights must not be negative")
    live = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0]
    unexpected = sum(c for c, w in zip(counts, weights, strict=True) if w == 0)
    observed = sum(c for c, _ in live)
    total_weight = sum(w for _, w in live)
    if len(live) < 2 or observed == 0:
        return SrmResult(0.0, max(len(live) - 1, 0), 1.0, unexpected, unexpected > 0)
    chi_squared = 0.0
    for count, weight in live:
        expected = weight / total_weight * observed
        chi_squared += (count - expected) ** 2 / expected
    dof = len(live) - 1
    p_value = float(scipy_stats.chi2.sf(chi_squared, dof))
    return SrmResult(chi_squared, dof, p_value, unexpected, p_value < threshold or unexpected > 0)
