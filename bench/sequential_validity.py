"""Does the sequential test stay valid when experiments are watched after every batch?

    .venv/bin/python bench/sequential_validity.py [--experiments 2000] [--looks 50]

Simulates conversion experiments (10% base rate, 200 units per arm per look) and runs
the project's own `stats.sequential` and `stats.fixed_horizon` at every look:

- A/A (no true difference): the share of experiments ever declared significant. The
  sequential test must stay at or below alpha; the naive fixed-horizon test, peeked at
  the same looks, will be far above it. The fixed-horizon test read once, at the last
  look, is shown as the reference (about alpha).
- A/B (a true lift sized so the fixed test has about 80% power at the last look): the
  power of each, and the median look at which the sequential test first rejects.

The sequential design is tuned to the planned total sample size (both arms, last look).
Standard errors of the rates are binomial: sqrt(p (1 - p) / experiments).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stats import ProportionStatistic, SequentialDesign, fixed_horizon, sequential

Counts = NDArray[np.int64]


def simulate(
    rng: np.random.Generator, experiments: int, looks: int, batch: int, p_a: float, p_b: float
) -> tuple[Counts, Counts]:
    """Cumulative conversions per experiment and look, for both arms."""
    conversions_a = rng.binomial(batch, p_a, size=(experiments, looks)).cumsum(axis=1)
    conversions_b = rng.binomial(batch, p_b, size=(experiments, looks)).cumsum(axis=1)
    return conversions_a, conversions_b


@dataclass(frozen=True)
class Rates:
    sequential: float
    peeked: float
    final: float
    median_first_look: float


def run(conversions_a: Counts, conversions_b: Counts, batch: int, alpha: float) -> Rates:
    experiments, looks = conversions_a.shape
    design = SequentialDesign.from_expected_sample_size(2 * batch * looks, alpha)
    sequential_first: list[int | None] = []
    peeking_rejects = 0
    final_rejects = 0
    for e in range(experiments):
        first: int | None = None
        peeked = False
        for look in range(looks):
            n = batch * (look + 1)
            a = ProportionStatistic(n, int(conversions_a[e, look]))
            b = ProportionStatistic(n, int(conversions_b[e, look]))
            if first is None and sequential(a, b, design, alpha=alpha).p_value < alpha:
                first = look + 1
            fixed_p = fixed_horizon(a, b, alpha=alpha).p_value
            if fixed_p < alpha:
                peeked = True
                if look == looks - 1:
                    final_rejects += 1
        sequential_first.append(first)
        peeking_rejects += peeked
    rejected = [f for f in sequential_first if f is not None]
    return Rates(
        sequential=len(rejected) / experiments,
        peeked=peeking_rejects / experiments,
        final=final_rejects / experiments,
        median_first_look=statistics.median(rejected) if rejected else math.nan,
    )


def binomial_se(rate: float, n: int) -> float:
    return math.sqrt(rate * (1 - rate) / n)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=50)
    parser.add_argument("--batch", type=int, default=200, help="units per arm added between looks")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    base = 0.10
    final_n = args.batch * args.looks
    # Lift for ~80% power of the two-sided fixed test at the final look: (z_{1-a/2} + z_{0.8}) * se.
    se_final = math.sqrt(2 * base * (1 - base) / final_n)
    lift = (1.959964 + 0.841621) * se_final

    aa = run(*simulate(rng, args.experiments, args.looks, args.batch, base, base), args.batch, args.alpha)
    ab = run(
        *simulate(rng, args.experiments, args.looks, args.batch, base, base + lift), args.batch, args.alpha
    )
    elapsed = time.perf_counter() - started
    n = args.experiments

    print(
        f"{n} experiments x {args.looks} looks, {args.batch} units per arm per look "
        f"({final_n} per arm at the end), base rate {base:.0%}, alpha {args.alpha}"
    )
    print()
    print(f"{'test':38} {'A/A false-positive rate':>24} {'A/B power':>12}")
    rows = [
        ("sequential, every look", aa.sequential, ab.sequential),
        ("fixed horizon, peeked at every look", aa.peeked, ab.peeked),
        ("fixed horizon, last look only", aa.final, ab.final),
    ]
    for label, fpr, pw in rows:
        print(f"{label:38} {fpr:17.4f} +/- {binomial_se(fpr, n):.4f} {pw:12.4f}")
    print()
    print(
        f"A/B true lift: +{lift:.4f} absolute ({lift / base:.1%} relative); "
        f"median look of the sequential test's first rejection: {ab.median_first_look} of {args.looks}"
    )
    print(f"elapsed: {elapsed:.1f} s")
    sequential_fpr, peeked_fpr = aa.sequential, aa.peeked
    checks = [
        (
            f"sequential false-positive rate {sequential_fpr:.4f} <= alpha {args.alpha}",
            sequential_fpr <= args.alpha,
        ),
        (
            f"peeking inflates the fixed test's false-positive rate ({peeked_fpr:.4f} > 2 alpha)",
            peeked_fpr > 2 * args.alpha,
        ),
        (f"runs in under 2 minutes ({elapsed:.0f} s)", elapsed < 120),
    ]
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
