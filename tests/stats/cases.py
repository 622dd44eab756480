"""Varied, reproducible inputs for the oracle tests: raw per-unit arrays and their sufficient statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stats import ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic, SampleMeanStatistic

Array = NDArray[np.float64]


@dataclass(frozen=True)
class MeanCase:
    name: str
    a: Array
    b: Array


@dataclass(frozen=True)
class PairedCase:
    """Two values per unit: (numerator, denominator) for ratios, (post, pre) for CUPED."""

    name: str
    a: tuple[Array, Array]
    b: tuple[Array, Array]


def mean_cases() -> list[MeanCase]:
    rng = np.random.default_rng(20261123)
    cases = []
    sizes = [20, 35, 60, 100, 250, 500, 1000, 2500, 5000, 12000]
    for i, n in enumerate(sizes):
        scale = 1 + i
        lift = 0.02 * (i - 3)
        cases.append(
            MeanCase(
                f"normal-n{n}",
                rng.normal(10 * scale, scale, n),
                rng.normal(10 * scale * (1 + lift), scale * 1.3, n + i),
            )
        )
        cases.append(
            MeanCase(f"lognormal-n{n}", rng.lognormal(1, 0.8, n), rng.lognormal(1 + lift, 0.9, n * 2 - 7))
        )
    for n in (300, 4000, 9000):
        cases.append(
            MeanCase(f"poisson-n{n}", rng.poisson(3.0, n).astype(float), rng.poisson(3.1, n).astype(float))
        )
    return cases


def proportion_cases() -> list[tuple[str, ProportionStatistic, ProportionStatistic]]:
    rng = np.random.default_rng(7)
    cases = [("published", ProportionStatistic(10_000, 500), ProportionStatistic(10_000, 560))]
    for i in range(23):
        n_a, n_b = int(rng.integers(50, 50_000)), int(rng.integers(50, 50_000))
        p = float(rng.uniform(0.02, 0.6))
        lift = float(rng.uniform(-0.2, 0.3))
        c_a = int(rng.binomial(n_a, p))
        c_b = int(rng.binomial(n_b, min(0.95, p * (1 + lift))))
        cases.append(
            (f"binomial-{i}", ProportionStatistic(n_a, max(c_a, 1)), ProportionStatistic(n_b, max(c_b, 1)))
        )
    return cases


def paired_cases() -> list[PairedCase]:
    rng = np.random.default_rng(99)
    cases = []
    for i, n in enumerate([30, 60, 120, 200, 400, 700, 1000, 1500, 2000, 3000, 5000, 8000] * 2):
        correlation = 0.2 + 0.05 * (i % 12)

        def arm(n: int, shift: float, correlation: float = correlation) -> tuple[Array, Array]:
            pre = rng.gamma(2.0, 5.0, n)
            post = correlation * pre + rng.normal(5 + shift, 3.0, n)
            return post, pre

        cases.append(PairedCase(f"paired-{i}-n{n}", arm(n, 0.0), arm(n + i, 0.1 * (i % 5 - 2))))
    return cases


def sample_mean(values: Array) -> SampleMeanStatistic:
    return SampleMeanStatistic(len(values), float(values.sum()), float((values**2).sum()))


def ratio(numerator: Array, denominator: Array) -> RatioStatistic:
    return RatioStatistic(
        sample_mean(numerator), sample_mean(denominator), float((numerator * denominator).sum())
    )


def regression_adjusted(post: Array, pre: Array) -> RegressionAdjustedStatistic:
    return RegressionAdjustedStatistic(sample_mean(post), sample_mean(pre), float((post * pre).sum()))
