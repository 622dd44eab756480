"""Do a funnel's tests stay valid: its final step's conversion and its step-to-step conversions?

    .venv/bin/python bench/funnel_validity.py [--experiments 2000] [--looks 20] [--quick]

A 4-step funnel (each step's conversion from the previous: 60%, 50%, 60%, 70%) is simulated in
batches of units, each unit completing step k with its step's probability once it completed step
k - 1. Per look, the units reaching each step give every step's sums through the project's own
`flagd.results.funnels.step_sums` and `flagd.results.analysis.statistic` (what the results API
analyses), tested with `stats.fixed_horizon` and `stats.sequential` (the design's expected sample
size at the final n). Cells: the final step's conversion from exposure and the step-to-step
(conditional, a ratio) conversions at steps 2 and 4; 50/50 and 10/90 splits; fixed horizon (one look
at the final n) and sequential (every look).

Per cell it prints the A/A false-positive rate with its SE and the coverage of the true effect when
the treatment lifts every step's conversion by 5% relative (fixed: the interval at the final n;
sequential: inside the confidence sequence at every look). Targets (issue 23): FPR <= alpha + 2 SE
and coverage >= 1 - alpha - 2 SE in every cell, SE = sqrt(alpha (1 - alpha) / experiments). Exits 1
on a miss.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flagd.experiments.model import Metric
from flagd.results.analysis import statistic
from flagd.results.funnels import step_sums
from stats import SequentialDesign, fixed_horizon, sequential

ALPHA = 0.05
LIFT = 0.05
UNITS_PER_LOOK = 400
RATES = (0.6, 0.5, 0.6, 0.7)
SPLITS = ((0.5, 0.5), (0.1, 0.9))
CELLS = (
    ("final step from exposure", 4, False),
    ("step 2 from step 1", 2, True),
    ("step 4 from step 3", 4, True),
)
CONVERSION = Metric("final", "final", "conversion", "increase", event="x")
RATIO = Metric("step", "step", "ratio", "increase", numerator="a", denominator="b")
Counts = NDArray[np.int64]


def simulate(rng: np.random.Generator, n: Counts, lift: float) -> Counts:
    """Cumulative units reaching each step: (experiments, looks, steps) from units per look."""
    reached = []
    current = n
    for rate in RATES:
        current = rng.binomial(current, min(rate * (1 + lift), 1.0))
        reached.append(current)
    cumulative: Counts = np.cumsum(np.stack(reached, axis=-1), axis=1)
    return cumulative


def truth(step: int, conditional: bool) -> float:
    """The true absolute effect of the lift on a step's conversion."""
    if conditional:
        return RATES[step - 1] * LIFT
    return math.prod(r * (1 + LIFT) for r in RATES[:step]) - math.prod(RATES[:step])


def stat(n: int, reached: Any, step: int, conditional: bool) -> Any:
    previous = int(reached[step - 2]) if step > 1 else n
    sums = step_sums(n, int(reached[step - 1]), previous, conditional=conditional)
    return statistic(RATIO if conditional else CONVERSION, sums, cuped=False)


def run(split: tuple[float, float], experiments: int, looks: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n_treatment = rng.binomial(UNITS_PER_LOOK, split[1], size=(experiments, looks))
    n_arms = (UNITS_PER_LOOK - n_treatment, n_treatment)
    totals = [np.cumsum(n, axis=1) for n in n_arms]
    null = [simulate(rng, n, 0.0) for n in n_arms]
    lifted = [simulate(rng, n_arms[0], 0.0), simulate(rng, n_arms[1], LIFT)]
    design = SequentialDesign.from_expected_sample_size(UNITS_PER_LOOK * looks, ALPHA)
    rows = []
    for name, step, conditional in CELLS:
        effect = truth(step, conditional)
        counts = {"fixed": [0, 0], "sequential": [0, 0]}  # rejected under A/A, covered under the lift
        for e in range(experiments):
            rejected, inside = False, True
            for look in range(looks):
                n0, n1 = int(totals[0][e, look]), int(totals[1][e, look])
                a, b = (
                    stat(n0, null[0][e, look], step, conditional),
                    stat(n1, null[1][e, look], step, conditional),
                )
                result = sequential(a, b, design, relative=False, alpha=ALPHA)
                rejected |= result.ok and result.p_value < ALPHA
                c, d = (
                    stat(n0, lifted[0][e, look], step, conditional),
                    stat(n1, lifted[1][e, look], step, conditional),
                )
                shifted = sequential(c, d, design, relative=False, alpha=ALPHA)
                if not (shifted.ok and shifted.ci_low <= effect <= shifted.ci_high):
                    inside = False
            counts["sequential"][0] += rejected
            counts["sequential"][1] += inside
            fixed = fixed_horizon(a, b, relative=False, alpha=ALPHA)
            counts["fixed"][0] += fixed.ok and fixed.p_value < ALPHA
            fixed = fixed_horizon(c, d, relative=False, alpha=ALPHA)
            counts["fixed"][1] += fixed.ok and fixed.ci_low <= effect <= fixed.ci_high
        for test, (rejected_total, covered_total) in counts.items():
            rows.append(
                {
                    "cell": name,
                    "split": f"{round(split[0] * 100)}/{round(split[1] * 100)}",
                    "test": test,
                    "fpr": rejected_total / experiments,
                    "coverage": covered_total / experiments,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 experiments, 10 looks")
    args = parser.parse_args()
    experiments, looks = (200, 10) if args.quick else (args.experiments, args.looks)
    started = time.perf_counter()
    rows = [row for i, split in enumerate(SPLITS) for row in run(split, experiments, looks, 2300 + i)]
    se = math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    print(
        f"{experiments} experiments x {looks} looks of {UNITS_PER_LOOK} units, 4 steps at {RATES}, alpha {ALPHA}; "
        f"coverage under a +{LIFT:.0%} lift of every step; SE at alpha = {se:.4f}\n"
    )
    print("| cell | split | test | A/A FPR ± SE | coverage ± SE |")
    print("|---|---|---|---|---|")
    failures = 0
    for r in rows:
        fpr_se = math.sqrt(max(r["fpr"] * (1 - r["fpr"]), 1e-12) / experiments)
        cov_se = math.sqrt(max(r["coverage"] * (1 - r["coverage"]), 1e-12) / experiments)
        ok = r["fpr"] <= ALPHA + 2 * se and r["coverage"] >= 1 - ALPHA - 2 * se
        failures += not ok
        print(
            f"| {r['cell']} | {r['split']} | {r['test']} | {r['fpr']:.4f} ± {fpr_se:.4f} | "
            f"{r['coverage']:.4f} ± {cov_se:.4f} |{'' if ok else ' **MISS**'}"
        )
    print(
        f"\nlimits: FPR <= {ALPHA + 2 * se:.4f}, coverage >= {1 - ALPHA - 2 * se:.4f}; {failures} of {len(rows)} "
        f"cells miss; {time.perf_counter() - started:.0f} s"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
