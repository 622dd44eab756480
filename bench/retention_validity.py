"""Are retention metrics' tests valid when units mature over time and the results are looked at daily?

    .venv/bin/python bench/retention_validity.py [--experiments 1000] [--quick]

Each simulated experiment exposes units for 28 days (a weekly pattern: weekends at 60%), about
UNITS_PER_DAY a day, split at random between control and treatment. A unit is retained (active
between day 7 and day 14 after its exposure) with probability 30% in control, and first active on a
uniform day of that window. The results are read every day from day 1 to day 42 (the last unit's
window is over), as flagd reads them: only units exposed at least 14 days before the look count
(matured), each with its final 0/1, turned into flagd's per-variant sums (n, Σy, Σy² = Σy, d = n) and
analysed by `flagd.results.analysis.statistic` (a proportion) with the project's own `stats.sequential`
(the design's expected sample size: the experiment's final number of units) and `stats.fixed_horizon`.

Per split (50/50, 10/90) and scale (absolute, relative) it prints:

- sequential: the A/A false-positive rate (rejected at any look) and the every-look coverage of a
  true +5% relative effect (inside the confidence sequence at every look);
- fixed: the A/A false-positive rate and the coverage at the final look only (the one look a
  fixed-horizon test allows), and for contrast its false-positive rate when peeked at every look;
- for contrast, the every-look coverage if maturing units were counted as "not active yet" (what
  flagd does not do): their partial windows bias the share, and the interval misses the truth.

Targets (issue 23): FPR <= alpha + 2 SE and coverage >= 1 - alpha - 2 SE for the sequential and the
fixed test in every cell, SE = sqrt(alpha (1 - alpha) / experiments). Exits 1 if a cell misses.
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

from flagd.experiments.model import Metric, RetentionEvent
from flagd.results.analysis import statistic
from flagd.results.model import VariantSums
from stats import SequentialDesign, fixed_horizon, sequential

ALPHA = 0.05
LIFT = 0.05
BASE = 0.30
UNITS_PER_DAY = 150
ARRIVAL_DAYS = 28
FROM_DAY, TO_DAY = 7, 14
LOOKS = np.arange(1, ARRIVAL_DAYS + TO_DAY + 1, dtype=float)
SPLITS = ((0.5, 0.5), (0.1, 0.9))
METRIC = Metric(
    key="week-2",
    name="Week-2 retention",
    type="retention",
    direction="increase",
    events=(RetentionEvent("app_opened"),),
    from_day=FROM_DAY,
    to_day=TO_DAY,
)
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Units:
    """One simulated experiment's units, in exposure order."""

    exposed: Array
    """Days since the experiment began."""
    arm: NDArray[np.int64]
    retained: NDArray[np.bool_]
    first_active: Array
    """Days after exposure of the first activity in the window (only meaningful where retained)."""


def simulate(rng: np.random.Generator, split: tuple[float, float], lift: float) -> Units:
    days = np.arange(ARRIVAL_DAYS)
    volume = np.where(days % 7 >= 5, 0.6, 1.0) * UNITS_PER_DAY
    per_day = rng.poisson(volume)
    exposed = np.repeat(days, per_day) + rng.random(int(per_day.sum()))
    exposed.sort()
    arm = (rng.random(exposed.size) < split[1]).astype(np.int64)
    rate = np.where(arm == 1, BASE * (1 + lift), BASE)
    return Units(
        exposed,
        arm,
        rng.random(exposed.size) < rate,
        FROM_DAY + rng.random(exposed.size) * (TO_DAY - FROM_DAY),
    )


def matured_sums(units: Units) -> list[tuple[VariantSums, VariantSums]]:
    """At each look, each arm's sums over the units exposed at least TO_DAY days before it."""
    counted = np.searchsorted(units.exposed, LOOKS - TO_DAY, side="right")
    looks = []
    for k in counted:
        arm, retained = units.arm[:k], units.retained[:k]
        control, treatment = (_sums(int((arm == a).sum()), float(retained[arm == a].sum())) for a in (0, 1))
        looks.append((control, treatment))
    return looks


def maturing_counted_sums(units: Units) -> list[tuple[VariantSums, VariantSums]]:
    """The mistake flagd avoids: every exposed unit counted, active only if it was active by the look."""
    looks = []
    for t in LOOKS:
        seen = units.exposed <= t
        active = units.retained & (units.exposed + units.first_active <= t) & seen
        control, treatment = (
            _sums(int((seen & (units.arm == a)).sum()), float((active & (units.arm == a)).sum()))
            for a in (0, 1)
        )
        looks.append((control, treatment))
    return looks


def _sums(n: int, y: float) -> VariantSums:
    """What flagd's retention SQL returns for a variant: y is 0/1 per unit, d is 1."""
    return VariantSums(n, y, y, float(n), float(n), y)


def run_split(task: tuple[tuple[float, float], int, int]) -> list[dict[str, Any]]:
    split, experiments, seed = task
    rng = np.random.default_rng(seed)
    counts = {
        (relative, what): 0
        for relative in (False, True)
        for what in ("seq_fp", "seq_cover", "fixed_fp", "fixed_cover", "peeked", "mistake_cover")
    }
    for _ in range(experiments):
        null, effect = simulate(rng, split, 0.0), simulate(rng, split, LIFT)
        design = SequentialDesign.from_expected_sample_size(effect.exposed.size, ALPHA)
        looks = {"null": matured_sums(null), "effect": matured_sums(effect)}
        looks["mistake"] = maturing_counted_sums(effect)
        for relative in (False, True):
            truth = LIFT if relative else LIFT * BASE
            flags = {"seq_fp": False, "peeked": False, "seq_cover": True, "mistake_cover": True}
            for kind, sums in looks.items():
                for look, (c, t) in enumerate(sums):
                    if min(c.n, t.n) < 2:
                        continue
                    a, b = statistic(METRIC, c, cuped=False), statistic(METRIC, t, cuped=False)
                    result = sequential(a, b, design, relative=relative, alpha=ALPHA)
                    if kind == "null":
                        flags["seq_fp"] |= result.ok and result.p_value < ALPHA
                        fixed = fixed_horizon(a, b, relative=relative, alpha=ALPHA)
                        flags["peeked"] |= fixed.ok and fixed.p_value < ALPHA
                        if look == len(sums) - 1:
                            counts[(relative, "fixed_fp")] += fixed.ok and fixed.p_value < ALPHA
                    elif result.ok and not result.ci_low <= truth <= result.ci_high:
                        flags["seq_cover" if kind == "effect" else "mistake_cover"] = False
                    if kind == "effect" and look == len(sums) - 1:
                        fixed = fixed_horizon(a, b, relative=relative, alpha=ALPHA)
                        counts[(relative, "fixed_cover")] += (
                            fixed.ok and fixed.ci_low <= truth <= fixed.ci_high
                        )
            for what, flag in flags.items():
                counts[(relative, what)] += flag
    return [
        {
            "split": f"{round(split[0] * 100)}/{round(split[1] * 100)}",
            "scale": "relative" if relative else "absolute",
            **{what: counts[(relative, what)] / experiments for (r, what) in counts if r == relative},
        }
        for relative in (False, True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 experiments")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    experiments = 100 if args.quick else args.experiments
    started = time.perf_counter()
    tasks = [(split, experiments, 2300 + i) for i, split in enumerate(SPLITS)]
    with multiprocessing.Pool(args.processes) as pool:
        rows = [row for rows in pool.map(run_split, tasks) for row in rows]
    se = math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    print(
        f"{experiments} experiments per cell: ~{UNITS_PER_DAY} units a day for {ARRIVAL_DAYS} days, retention "
        f"day {FROM_DAY}-{TO_DAY} at {BASE:.0%} (+{LIFT:.0%} relative in the effect runs), {len(LOOKS)} daily "
        f"looks; alpha {ALPHA}; SE at alpha = {se:.4f}\n"
    )
    print(
        "| split | scale | sequential A/A FPR | sequential every-look coverage | fixed A/A FPR (final look) "
        "| fixed coverage (final look) | peeked fixed FPR | coverage, maturing counted (contrast) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    failures = 0
    for r in rows:
        ok = all(r[f] <= ALPHA + 2 * se for f in ("seq_fp", "fixed_fp")) and all(
            r[f] >= 1 - ALPHA - 2 * se for f in ("seq_cover", "fixed_cover")
        )
        failures += not ok
        print(
            f"| {r['split']} | {r['scale']} | {r['seq_fp']:.4f} | {r['seq_cover']:.4f} | {r['fixed_fp']:.4f} | "
            f"{r['fixed_cover']:.4f} | {r['peeked']:.3f} | {r['mistake_cover']:.3f} |{'' if ok else ' **MISS**'}"
        )
    print(
        f"\nlimits: FPR <= {ALPHA + 2 * se:.4f}, coverage >= {1 - ALPHA - 2 * se:.4f}; {failures} of {len(rows)} "
        f"cells miss; {time.perf_counter() - started:.0f} s"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
