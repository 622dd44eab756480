"""Does the rollout monitor roll back harmless variants no more often than alpha, and harmful ones in time?

    .venv/bin/python bench/rollout_aa.py [--rollouts 200] [--looks 5] [--seed 1]

A fast simulation, pure and in process, through the monitor's own decision function
(`flagd.rollouts.decision.decide`, the one the server runs on every look): each rollout goes through the
default stages 1% -> 5% -> 10% -> 25% -> 50% -> 100%, each with a minimum of `--units` units (both
variants) and one hour; the monitor looks `--looks` times per stage, on cumulative sufficient statistics
of an error-rate guardrail (conversion, 10% base rate, direction decrease), the units of each stage
split at random by the stage's share.

- A/A: the new variant's error rate equals the old one's. Target (issue 24): rolled back no more often
  than alpha + 2 SE, SE = sqrt(alpha (1 - alpha) / rollouts).
- Harmful: +30% relative (13% against 10%). Target: rolled back before it passes 10% of units, i.e. at
  the 1%, 5% or 10% stage, in at least 1 - alpha - 2 SE of the rollouts (with the stage minimums here;
  the stages' minimum units are what buys that power).

Prints both rates with their SE and the stage each harmful rollout was rolled back at. Exits 1 if a
target is missed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter

import numpy as np

from flagd.experiments.model import BASIS_POINTS
from flagd.rollouts.decision import Comparison, Look, decide
from flagd.rollouts.model import DEFAULT_STAGES, Guardrail, Rollout, Stage
from stats import ProportionStatistic

GUARDRAIL = Guardrail("errors", "decrease")


def simulate(
    rollout: Rollout, base: float, lift: float, looks: int, rng: np.random.Generator
) -> tuple[str, int]:
    """How the rollout ended (completed, rolled_back, held) and at which stage."""
    for index, stage in enumerate(rollout.stages[:-1]):
        share = stage.share_bp / BASIS_POINTS
        old = new = ProportionStatistic(0, 0)
        per_look = stage.min_units // looks
        for look in range(1, looks + 1):
            n_new = int(rng.binomial(per_look, share))
            n_old = per_look - n_new
            new = new + ProportionStatistic(n_new, float(rng.binomial(n_new, base * (1 + lift))))
            old = old + ProportionStatistic(n_old, float(rng.binomial(n_old, base)))
            seen = Look(
                stage=index,
                elapsed_seconds=stage.min_duration_seconds * look / looks,
                replaced_units=old.n,
                new_units=new.n,
                comparisons=(Comparison(GUARDRAIL, old, new),),
            )
            decision = decide(rollout, seen)
            if decision.action == "rollback":
                return "rolled_back", index
            if decision.action == "hold":
                return "held", index
            if decision.action in ("advance", "complete"):
                break
        else:
            return "stalled", index
    return "completed", len(rollout.stages) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--looks", type=int, default=5, help="looks per stage")
    parser.add_argument("--units", type=int, default=40_000, help="minimum units per stage (both variants)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    stages = tuple(Stage(s.share_bp, 3600, args.units) for s in DEFAULT_STAGES)
    rollout = Rollout("sim", "f", "new", "old", stages=stages, guardrails=(GUARDRAIL,))
    alpha = rollout.alpha
    se = math.sqrt(alpha * (1 - alpha) / args.rollouts)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    aa = Counter(simulate(rollout, 0.10, 0.0, args.looks, rng)[0] for _ in range(args.rollouts))
    harmful = [simulate(rollout, 0.10, 0.30, args.looks, rng) for _ in range(args.rollouts)]
    seconds = time.perf_counter() - started
    false_alarms = aa["rolled_back"] / args.rollouts
    in_time = sum(1 for end, stage in harmful if end == "rolled_back" and stage <= 2) / args.rollouts
    at = Counter(
        f"{rollout.stages[stage].share_bp / 100:g}%" for end, stage in harmful if end == "rolled_back"
    )
    print(
        f"{args.rollouts} rollouts per case, {args.looks} looks per stage, {args.units} units per stage, "
        f"alpha {alpha} split over {rollout.looks} tests; {seconds:.1f} s"
    )
    print(f"A/A:      rolled back {false_alarms:.3f} (target <= {alpha + 2 * se:.3f}); ends {dict(aa)}")
    print(
        f"harmful:  rolled back by 10% in {in_time:.3f} (target >= {1 - alpha - 2 * se:.3f}); "
        f"rolled back at {dict(sorted(at.items()))}"
    )
    ok = false_alarms <= alpha + 2 * se and in_time >= 1 - alpha - 2 * se
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
