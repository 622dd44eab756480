"""Group-sequential boundaries for the looks actually taken, by recursive numerical integration.

Under the null, the score statistic S(t) = Z(t) sqrt(t) on the information fraction t is a standard
Brownian motion: S(t_k) - S(t_{k-1}) ~ N(0, t_k - t_{k-1}), independent of the past (Jennison and
Turnbull, "Group Sequential Methods with Applications to Clinical Trials", 2000, section 3.1). With
two-sided boundaries |Z_k| >= c_k, b_k = c_k sqrt(t_k), the sub-density of S(t_k) on the paths that
have not crossed yet follows Armitage, McPherson and Rowe ("Repeated significance tests on
accumulating data", JRSS A 132, 1969) and Jennison and Turnbull chapter 19 (eq. 19.3-19.4):

    f_1(s) = phi(s / sqrt(t_1)) / sqrt(t_1)
    f_k(s) = int_{-b_{k-1}}^{b_{k-1}} f_{k-1}(u) phi((s - u) / sigma_k) / sigma_k du,  sigma_k^2 = t_k - t_{k-1}

and the probability of crossing first at look k is

    P_k(b) = int f_{k-1}(u) [ Phi((-b - u) / sigma_k) + Phi((u - b) / sigma_k) ] du.

Each b_k solves P_k(b_k) = alpha(t_k) - (what looks 1..k-1 spent), alpha(t) the spending function
(stats.spending), so any number and timing of looks keeps the error rate at alpha (Lan and DeMets
1983). The integrals use Simpson's rule on a grid finer than the smallest of sigma_k, sigma_{k+1}
(Jennison and Turnbull section 19.2 use the same rule and spacing of this order).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

from stats.spending import obrien_fleming

MIN_POINTS = 65
MAX_POINTS = 1601
"""Grid points per look: bounds the memory (an m x m kernel) and time of one look."""
STEPS_PER_SIGMA = 6.0
TAIL = 9.0
"""A continuation region without a finite boundary is integrated over |S| < TAIL sqrt(t)."""
MAX_BOUND = 100.0
"""A boundary on the S scale beyond this is infinite (a look that may spend nothing)."""
CACHE_SIZE = 512
Vector = NDArray[np.float64]


def _simpson(low: float, high: float, spacing: float) -> tuple[Vector, Vector]:
    intervals = int(min(max(math.ceil((high - low) / spacing), MIN_POINTS - 1), MAX_POINTS - 1))
    intervals += intervals % 2
    points = np.linspace(low, high, intervals + 1)
    weights = np.ones(intervals + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return points, weights * (high - low) / (3 * intervals)


def _phi(x: Vector) -> Vector:
    return np.asarray(np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), dtype=np.float64)


def _critical_from_tail(probability: float) -> float:
    """c with P(|Z| >= c) = probability for a standard normal Z (inf when nothing may be spent)."""
    return math.inf if probability <= 0 else float(-special.ndtri(min(probability, 1.0) / 2))


@functools.lru_cache(maxsize=CACHE_SIZE)
def boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """The critical values c_1..c_K on the Z scale for looks at the increasing information fractions.

    `fractions` must be increasing and positive (stats.planned.schedule makes them so); a look at
    t >= 1 spends whatever is left of alpha.
    """
    if not fractions or any(b <= a for a, b in zip((0.0, *fractions), fractions, strict=False)):
        raise ValueError("information fractions must be positive and increasing")
    sigmas = [math.sqrt(b - a) for a, b in zip((0.0, *fractions), fractions, strict=False)]
    critical: list[float] = []
    spent = 0.0
    points = weights = density = np.zeros(0)
    for k, t in enumerate(fractions):
        target = obrien_fleming(t, alpha) - spent
        if k == 0:
            c = _critical_from_tail(target)
            bound = c * math.sqrt(t)
            crossed = 2 * float(special.ndtr(-c)) if math.isfinite(c) else 0.0
        else:
            sigma = sigmas[k]
            mass = weights * density

            def crossing(b: float, mass: Vector = mass, sigma: float = sigma, grid: Vector = points) -> float:
                tails = special.ndtr((-b - grid) / sigma) + special.ndtr((grid - b) / sigma)
                return float(mass @ tails)

            high = TAIL * math.sqrt(t) + 10 * sigma
            while target > 0 and crossing(high) >= target and high < MAX_BOUND:
                high *= 2
            if target <= 0 or crossing(high) >= target:
                bound, crossed = math.inf, 0.0  # nothing left to spend that floats can tell: never rejects
            else:
                bound = float(
                    optimize.brentq(lambda b, goal=target: crossing(b) - goal, 0.0, high, xtol=1e-10)
                )
                crossed = crossing(bound)
            c = bound / math.sqrt(t)
        critical.append(c)
        spent += crossed
        if k + 1 == len(fractions):
            break
        half = min(bound, TAIL * math.sqrt(t))
        spacing = min(sigmas[k], sigmas[k + 1]) / STEPS_PER_SIGMA
        new_points, new_weights = _simpson(-half, half, spacing)
        if k == 0:
            new_density = _phi(new_points / sigmas[0]) / sigmas[0]
        else:
            kernel = _phi((new_points[:, None] - points[None, :]) / sigmas[k]) / sigmas[k]
            new_density = kernel @ (weights * density)
        points, weights, density = new_points, new_weights, new_density
    return tuple(critical)
