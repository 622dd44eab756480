"""Multiple-comparison adjustments across metrics x variants.

Holm (1979), "A simple sequentially rejective multiple test procedure": step-down,
adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)) for ascending p_(1..m).
Benjamini and Hochberg (1995), step-up false discovery rate:
adjusted p_(i) = min_{j>=i} min(1, m p_(j) / j).
Both return the adjusted values in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence


def _check(p_values: Sequence[float]) -> None:
    for p in p_values:
        if not 0 <= p <= 1:
            raise ValueError(f"p-values lie in [0, 1], got {p}")


def holm(p_values: Sequence[float]) -> list[float]:
    _check(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    _check(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, index in enumerate(order):
        rank = m - position
        running = min(running, m * p_values[index] / rank)
        adjusted[index] = min(1.0, running)
    return adjusted
