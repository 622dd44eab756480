"""Does the sequential test stay valid, absolute and relative, in every regime a product team meets?

    .venv/bin/python bench/sequential_validity.py [--experiments 2000] [--looks 50] [--quick]

For each cell of a matrix it simulates experiments watched after every batch of units and
runs the project's own `stats.sequential` (and, for contrast, `stats.fixed_horizon`) at
every look, through the public functions, on cumulative sufficient statistics:

- metrics: conversion at a 1% and a 10% base rate; revenue per unit with 95% zeros and
  lognormal(3, 1) amounts otherwise;
- splits (control/treatment): 50/50, 30/70, 10/90, each unit assigned at random;
- the design's expected sample size at 10%, 100% and 1,000% of the final n;
- absolute and relative lift.

Per cell it prints: the A/A false-positive rate of the sequential test (rejected at any
look) with its binomial standard error; the every-look coverage of a true +5% relative
effect (the true value inside the confidence sequence at every look, so inside the running
intersection); and the false-positive rate of the fixed-horizon test peeked at every look.
Targets (issue 9): sequential FPR <= alpha + 2 SE and coverage >= 1 - alpha - 2 SE in every
cell, with SE = sqrt(alpha (1 - alpha) / experiments). Exits 1 if a cell misses either.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stats import (
    ProportionStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    fixed_horizon,
    sequential,
)

ALPHA = 0.05
LIFT = 0.05
UNITS_PER_LOOK = 400
METRICS = ("conversion 1%", "conversion 10%", "revenue 95% zeros")
SPLITS = ((0.5, 0.5), (0.3, 0.7), (0.1, 0.9))
HORIZONS = (0.1, 1.0, 10.0)
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Arms:
    """Cumulative n, sum and sum of squares per experiment and look, for control and treatment."""

    n: tuple[Array, Array]
    total: tuple[Array, Array]
    squares: tuple[Array, Array]


def simulate(
    rng: np.random.Generator, metric: str, split: tuple[float, float], lift: float, shape: tuple[int, int]
) -> Arms:
    n_treatment = rng.binomial(UNITS_PER_LOOK, split[1], size=shape)
    n_by_arm = (UNITS_PER_LOOK - n_treatment, n_treatment)
    totals, squares = [], []
    for arm, n in enumerate(n_by_arm):
        scale = 1 + lift if arm == 1 else 1.0
        if metric.startswith("conversion"):
            rate = (0.01 if metric == "conversion 1%" else 0.10) * scale
            total = rng.binomial(n, rate).astype(float)
            totals.append(total)
            squares.append(total)
        else:
            buyers = rng.binomial(n, 0.05)
            amounts = rng.lognormal(3.0, 1.0, size=int(buyers.sum())) * scale
            owner = np.repeat(np.arange(buyers.size), buyers.ravel())
            totals.append(np.bincount(owner, amounts, minlength=buyers.size).reshape(shape))
            squares.append(np.bincount(owner, amounts**2, minlength=buyers.size).reshape(shape))
    return Arms(
        n=(cumulative(n_by_arm[0]), cumulative(n_by_arm[1])),
        total=(cumulative(totals[0]), cumulative(totals[1])),
        squares=(cumulative(squares[0]), cumulative(squares[1])),
    )


def cumulative(values: Any) -> Array:
    summed: Array = np.cumsum(values, axis=1).astype(float)
    return summed


def statistic(metric: str, arms: Arms, arm: int, e: int, look: int) -> Any:
    n = int(arms.n[arm][e, look])
    if metric.startswith("conversion"):
        return ProportionStatistic(n, float(arms.total[arm][e, look]))
    return SampleMeanStatistic(n, float(arms.total[arm][e, look]), float(arms.squares[arm][e, look]))


def true_effect(metric: str, relative: bool) -> float:
    mean = {"conversion 1%": 0.01, "conversion 10%": 0.10}.get(metric, 0.05 * math.exp(3.0 + 0.5))
    return LIFT if relative else LIFT * mean


def run_pair(task: tuple[str, tuple[float, float], int, int, int]) -> list[dict[str, Any]]:
    """All cells of one metric and split: the same simulated experiments analysed every way."""
    metric, split, experiments, looks, seed = task
    rng = np.random.default_rng(seed)
    null = simulate(rng, metric, split, 0.0, (experiments, looks))
    effect = simulate(rng, metric, split, LIFT, (experiments, looks))
    final_n = UNITS_PER_LOOK * looks
    rows = []
    for horizon in HORIZONS:
        design = SequentialDesign.from_expected_sample_size(horizon * final_n, ALPHA)
        for relative in (False, True):
            truth = true_effect(metric, relative)
            rejected = covered = peeked = undefined = 0
            for e in range(experiments):
                seq_rejected = fh_rejected = False
                inside = True
                for look in range(looks):
                    a, b = statistic(metric, null, 0, e, look), statistic(metric, null, 1, e, look)
                    result = sequential(a, b, design, relative=relative, alpha=ALPHA)
                    if result.ok and result.p_value < ALPHA:
                        seq_rejected = True
                    if horizon == 1.0 and not fh_rejected:
                        fixed = fixed_horizon(a, b, relative=relative, alpha=ALPHA)
                        fh_rejected = fixed.ok and fixed.p_value < ALPHA
                    a, b = statistic(metric, effect, 0, e, look), statistic(metric, effect, 1, e, look)
                    shifted = sequential(a, b, design, relative=relative, alpha=ALPHA)
                    if shifted.ok and not shifted.ci_low <= truth <= shifted.ci_high:
                        inside = False
                    undefined += not shifted.ok
                rejected += seq_rejected
                covered += inside
                peeked += fh_rejected
            rows.append(
                {
                    "metric": metric,
                    "split": f"{round(split[0] * 100)}/{round(split[1] * 100)}",
                    "horizon": horizon,
                    "scale": "relative" if relative else "absolute",
                    "fpr": rejected / experiments,
                    "coverage": covered / experiments,
                    "peeked": peeked / experiments if horizon == 1.0 else math.nan,
                    "undefined_looks": undefined / (experiments * looks),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 experiments, 20 looks")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    experiments, looks = (200, 20) if args.quick else (args.experiments, args.looks)
    tasks = [
        (metric, split, experiments, looks, 1000 + 10 * i + j)
        for i, metric in enumerate(METRICS)
        for j, split in enumerate(SPLITS)
    ]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with multiprocessing.Pool(args.processes) as pool:
        for done, pair in enumerate(pool.imap_unordered(run_pair, tasks), 1):
            rows.extend(pair)
            print(
                f"  {done}/{len(tasks)} metric x split done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    se = math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    order = {m: i for i, m in enumerate(METRICS)}
    rows.sort(key=lambda r: (order[r["metric"]], r["split"], r["horizon"], r["scale"]))
    print(
        f"{experiments} experiments x {looks} looks of {UNITS_PER_LOOK} units per cell, alpha {ALPHA}; "
        f"true effect +{LIFT:.0%} relative; SE at alpha = {se:.4f}\n"
    )
    print(
        "| metric | split | ESS / final n | scale | sequential A/A FPR ± SE | every-look coverage ± SE | peeked fixed FPR |"
    )
    print("|---|---|---|---|---|---|---|")
    failures = []
    for r in rows:
        fpr_se = math.sqrt(max(r["fpr"] * (1 - r["fpr"]), 1e-12) / experiments)
        cov_se = math.sqrt(max(r["coverage"] * (1 - r["coverage"]), 1e-12) / experiments)
        ok = r["fpr"] <= ALPHA + 2 * se and r["coverage"] >= 1 - ALPHA - 2 * se
        if not ok:
            failures.append(r)
        peeked = "" if math.isnan(r["peeked"]) else f"{r['peeked']:.3f}"
        print(
            f"| {r['metric']} | {r['split']} | {r['horizon']:g} | {r['scale']} | {r['fpr']:.4f} ± {fpr_se:.4f} | "
            f"{r['coverage']:.4f} ± {cov_se:.4f} | {peeked} |{'' if ok else ' **MISS**'}"
        )
    worst_fpr = max(r["fpr"] for r in rows)
    worst_cov = min(r["coverage"] for r in rows)
    print(
        f"\nworst sequential FPR {worst_fpr:.4f} (limit {ALPHA + 2 * se:.4f}); worst coverage {worst_cov:.4f} "
        f"(limit {1 - ALPHA - 2 * se:.4f}); {len(failures)} of {len(rows)} cells miss; "
        f"{time.perf_counter() - started:.0f} s"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
