"""Do the quantile metrics' tests stay valid in the hard regimes, fixed-horizon and always-valid?

    .venv/bin/python bench/quantile_validity.py [--experiments 1000] [--looks 10] [--quick]

For each cell it simulates experiments and runs the project's own path: each arm's values reduced to a
`stats.QuantileSample` and the order statistics at its rank interval (Deng, Knoblich and Lu 2018),
then `stats.fixed_horizon` once at the end and `stats.sequential` at every look (units arriving in
batches of UNITS_PER_LOOK), through the public functions:

- values: lognormal(0, 1); and a 95%-zero value (0 with probability 0.95, else lognormal(0, 1));
- level: the unit's value (one per unit), or event-level values clustered by unit (1 + Poisson(4)
  events per unit, each unit's values scaled by its own lognormal(0, 0.5) factor, so a unit's events
  are correlated);
- the p50 and the p90 (and a 95%-zero value's p97, just above its atom of zeros); splits 50/50 and 10/90 (control/treatment);
- absolute difference of the quantiles.

Per cell: the A/A false-positive rate (fixed: rejected at the end; sequential: at any look) and the
coverage of a true effect (treatment values x 1.05, so the true difference is 0.05 x the quantile:
fixed, the final interval holds it; sequential, every look's does), each with its binomial standard
error. A look whose statistic has no spread (a 95%-zero value's p50 and p90 are 0 in both arms) is a
reported problem: it rejects nothing and, like sequential_validity.py, is not counted as a miss; the
share of such looks is printed. Targets (issue 23): FPR <= alpha + 2 SE and coverage >= 1 - alpha - 2 SE
in every cell, SE = sqrt(alpha (1 - alpha) / experiments). Exits 1 if a cell misses either.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as scipy_stats

from stats import (
    QuantileSample,
    QuantileStatistic,
    SequentialDesign,
    fixed_horizon,
    quantile_rank,
    quantile_statistic,
    sequential,
)

ALPHA = 0.05
LIFT = 0.05
UNITS_PER_LOOK = 400
EVENTS_MEAN = 4.0
UNIT_SIGMA = 0.5
VALUES = ("lognormal", "95% zeros")
LEVELS = ("unit", "event")
QUANTILES = {"lognormal": (0.5, 0.9), "95% zeros": (0.5, 0.9, 0.97)}
"""A 95%-zero value's p50 and p90 are 0; its p97 lies just above the atom, where the rank interval
straddles it: the hardest place for an interval read off order statistics."""
SPLITS = ((0.5, 0.5), (0.1, 0.9))
Array = NDArray[np.float64]


def arm_statistic(values: Array, owner: NDArray[np.int64], units: int, p: float) -> QuantileStatistic:
    """The arm's quantile statistic as flagd computes it in PostgreSQL, from its values and their units."""
    order = np.sort(values)
    count = order.size
    q = float(order[quantile_rank(p, count) - 1])
    below = np.bincount(owner[values <= q], minlength=units).astype(float)
    per_unit = np.bincount(owner, minlength=units).astype(float)
    sample = QuantileSample(
        p,
        units,
        count,
        float(below.sum()),
        float((below * below).sum()),
        float((per_unit * per_unit).sum()),
        float((below * per_unit).sum()),
    )
    r1, r2 = sample.interval_ranks()
    return quantile_statistic(sample, q, float(order[r1 - 1]), float(order[r2 - 1]))


def draw(rng: np.random.Generator, kind: str, size: int) -> Array:
    values = rng.lognormal(0.0, 1.0, size=size)
    if kind == "95% zeros":
        values = np.where(rng.random(size) < 0.95, 0.0, values)
    return values


def simulate_arm(
    rng: np.random.Generator, kind: str, level: str, units: int
) -> tuple[Array, NDArray[np.int64]]:
    """Values and their owning unit (0 .. units - 1, in arrival order)."""
    if level == "unit":
        return draw(rng, kind, units), np.arange(units)
    events = 1 + rng.poisson(EVENTS_MEAN, size=units)
    owner = np.repeat(np.arange(units), events)
    factor = rng.lognormal(0.0, UNIT_SIGMA, size=units)
    return draw(rng, kind, int(events.sum())) * factor[owner], owner


def true_quantile(kind: str, level: str, p: float) -> float:
    """The population p-quantile of the values (events weighted alike; the unit factor independent of
    the count, so an event's value is lognormal with sigma^2 = 1 + UNIT_SIGMA^2)."""
    sigma = math.sqrt(1.0 + UNIT_SIGMA**2) if level == "event" else 1.0
    if kind == "95% zeros":
        if p <= 0.95:
            return 0.0
        p = (p - 0.95) / 0.05
    return math.exp(sigma * float(scipy_stats.norm.ppf(p)))


def run_cell(task: tuple[str, str, float, tuple[float, float], int, int, int]) -> dict[str, Any]:
    kind, level, p, split, experiments, looks, seed = task
    rng = np.random.default_rng(seed)
    truth = LIFT * true_quantile(kind, level, p)
    design = SequentialDesign.from_expected_sample_size(UNITS_PER_LOOK * looks, ALPHA)
    counts = {"fixed_fp": 0, "fixed_cover": 0, "seq_fp": 0, "seq_cover": 0, "undefined": 0, "looks": 0}
    for _ in range(experiments):
        treated = rng.random(UNITS_PER_LOOK * looks) < split[1]
        sizes = (int((~treated).sum()), int(treated.sum()))
        arrivals = (np.cumsum(~treated), np.cumsum(treated))
        for lift, tag in ((1.0, "null"), (1.0 + LIFT, "effect")):
            arms = [simulate_arm(rng, kind, level, sizes[arm]) for arm in (0, 1)]
            rejected, inside = False, True
            for look in range(looks):
                seen = UNITS_PER_LOOK * (look + 1)
                statistics = []
                for arm in (0, 1):
                    values, owner = arms[arm]
                    units = int(arrivals[arm][seen - 1])
                    keep = owner < units
                    scale = lift if arm == 1 else 1.0
                    statistics.append(arm_statistic(values[keep] * scale, owner[keep], units, p))
                result = sequential(statistics[0], statistics[1], design, alpha=ALPHA)
                if tag == "null":
                    rejected |= result.ok and result.p_value < ALPHA
                else:
                    counts["looks"] += 1
                    counts["undefined"] += not result.ok
                    if result.ok and not result.ci_low <= truth <= result.ci_high:
                        inside = False
                if look == looks - 1:
                    fixed = fixed_horizon(statistics[0], statistics[1], alpha=ALPHA)
                    if tag == "null":
                        counts["fixed_fp"] += fixed.ok and fixed.p_value < ALPHA
                    else:
                        counts["fixed_cover"] += not fixed.ok or fixed.ci_low <= truth <= fixed.ci_high
            if tag == "null":
                counts["seq_fp"] += rejected
            else:
                counts["seq_cover"] += inside
    return {
        "value": kind,
        "level": level,
        "p": p,
        "split": f"{round(split[0] * 100)}/{round(split[1] * 100)}",
        **{k: v / experiments for k, v in counts.items() if k not in ("undefined", "looks")},
        "undefined": counts["undefined"] / max(counts["looks"], 1),
    }


def rate(value: float, experiments: int) -> str:
    return f"{value:.4f} ± {math.sqrt(max(value * (1 - value), 1e-12) / experiments):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--looks", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 experiments, 5 looks")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    experiments, looks = (200, 5) if args.quick else (args.experiments, args.looks)
    tasks = [
        (kind, level, p, split, experiments, looks, 2000 + 100 * i + 10 * j + 3 * k + s)
        for i, kind in enumerate(VALUES)
        for j, level in enumerate(LEVELS)
        for k, p in enumerate(QUANTILES[kind])
        for s, split in enumerate(SPLITS)
    ]
    started = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        rows = []
        for done, row in enumerate(pool.imap(run_cell, tasks), 1):
            rows.append(row)
            print(f"  {done}/{len(tasks)} cells ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    se = math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    fpr_limit, coverage_limit = ALPHA + 2 * se, 1 - ALPHA - 2 * se
    print(
        f"{experiments} experiments x {looks} looks of {UNITS_PER_LOOK} units per cell, alpha {ALPHA}; true "
        f"effect: values x {1 + LIFT}; SE at alpha = {se:.4f}\n"
    )
    print(
        "| value | level | quantile | split | fixed A/A FPR | fixed coverage | sequential A/A FPR "
        "| every-look coverage | looks without spread |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    failures = 0
    for r in rows:
        ok = (
            max(r["fixed_fp"], r["seq_fp"]) <= fpr_limit
            and min(r["fixed_cover"], r["seq_cover"]) >= coverage_limit
        )
        failures += not ok
        print(
            f"| {r['value']} | {r['level']} | p{round(r['p'] * 100)} | {r['split']} | "
            f"{rate(r['fixed_fp'], experiments)} | {rate(r['fixed_cover'], experiments)} | "
            f"{rate(r['seq_fp'], experiments)} | {rate(r['seq_cover'], experiments)} | "
            f"{r['undefined']:.2f} |{'' if ok else ' **MISS**'}"
        )
    print(
        f"\nworst FPR {max(max(r['fixed_fp'], r['seq_fp']) for r in rows):.4f} (limit {fpr_limit:.4f}); "
        f"worst coverage {min(min(r['fixed_cover'], r['seq_cover']) for r in rows):.4f} "
        f"(limit {coverage_limit:.4f}); {failures} of {len(rows)} cells miss; "
        f"{time.perf_counter() - started:.0f} s"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
