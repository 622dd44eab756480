"""Power, false positives and coverage of the planned-horizon design against the always-valid mixture test.

    .venv/bin/python bench/sequential_power.py [--aa 20000] [--effect 60000] [--quick]
    flock /work/bench.lock .venv/bin/python bench/sequential_power.py

Issue 27's table. Each regime's final n gives a one-look fixed-horizon Welch test 80% power at its lift;
experiments are watched at the looks of a schedule (its information fractions, units so far over the
final n = the planned reach):

- regular: 50 equal looks;
- random: batches of experiments, each batch with its own 10-60 looks at uniformly random fractions
  (and the last at the planned reach);
- burst: 30 daily looks with 20 looks in one day (day 15).

Simulated on cumulative sufficient statistics, exactly (binomial counts; 95% zeros and lognormal(3, 1)
amounts for revenue, summed per experiment). The tests, vectorised over experiments, each as its module
computes it (a check at the start compares the vectorised statistics with the public functions and gbstats):

- fixed: one Welch test at the planned reach (the power reference);
- mixture: stats.sequential, default (`conservative=True`) and `conservative=False`, tuned at the final n;
- gbstats: gbstats 0.8's SequentialTwoSidedTTest (delta method for relative lift), tuned at the final n;
- planned: stats.planned with no floor; the floor on every arm; the floor and Welch's t; the floor only
  on an arm with few events and Welch's t (the default until 2026-12-02); and the default: that, with every
  other arm floored at PARTIAL_FLOOR of the pooled variance in an absolute test (all of it in a relative one).

Per regime and schedule: A/A FPR (rejected at any look) +/- SE; power (rejected by the planned reach);
median information fraction of the first rejection; every-look coverage of the true effect by the
always-valid intervals (the true value inside every look's interval). Exits 1 if a cell misses issue 27's
acceptance for the default design.
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
from scipy import special

from stats import ProportionStatistic, SequentialDesign, sequential
from stats.boundaries import boundaries
from stats.planned import PARTIAL_FLOOR, PlannedDesign, planned

ALPHA = 0.05
Z_POWER = float(special.ndtri(1 - ALPHA / 2) + special.ndtri(0.8))
Array = NDArray[Any]
DESIGNS = (
    "fixed",
    "mixture",
    "mixture_textbook",
    "gbstats",
    "planned_none",
    "planned_floor",
    "planned_welch",
    "planned_few",
    "planned",
)
FEW_EVENTS = 30.0
COVERED = ("mixture", "planned_floor", "planned_few", "planned")


@dataclass(frozen=True)
class Regime:
    metric: str
    lift: float
    split: tuple[float, float]
    relative: bool
    in_table: bool = True

    @property
    def name(self) -> str:
        side = "relative" if self.relative else "absolute"
        share = f"{round(self.split[0] * 100)}/{round(self.split[1] * 100)}"
        return f"{self.metric}, +{self.lift:.0%}, {share}, {side}"


REGIMES = (
    Regime("conversion 10%", 0.05, (0.5, 0.5), False),
    Regime("conversion 1%", 0.10, (0.1, 0.9), True),
    Regime("revenue 95% zeros", 0.10, (0.1, 0.9), False),
    Regime("revenue 95% zeros", 0.10, (0.5, 0.5), True),
    Regime("conversion 1%", 0.10, (0.9, 0.1), False, in_table=False),
    Regime("conversion 1%", 0.10, (0.5, 0.5), True, in_table=False),
    Regime("revenue 95% zeros", 0.10, (0.9, 0.1), True, in_table=False),
    Regime("conversion 10%", 0.05, (0.1, 0.9), True, in_table=False),
)


def moments(metric: str) -> tuple[float, float]:
    """Per-unit mean and variance of the control."""
    if metric.startswith("conversion"):
        p = 0.01 if metric == "conversion 1%" else 0.10
        return p, p * (1 - p)
    mean, square = 0.05 * math.exp(3.5), 0.05 * math.exp(8.0)
    return mean, square - mean**2


def final_n(regime: Regime) -> int:
    """Units (both arms) at which one Welch test has 80% power for the regime's lift."""
    mean, variance = moments(regime.metric)
    if regime.metric.startswith("conversion"):
        p1 = mean * (1 + regime.lift)
        per_unit = variance / regime.split[0] + p1 * (1 - p1) / regime.split[1]
    else:
        # Scaling every amount by 1 + lift scales the variance by (1 + lift)^2.
        per_unit = variance / regime.split[0] + variance * (1 + regime.lift) ** 2 / regime.split[1]
    return math.ceil(per_unit * (Z_POWER / (mean * regime.lift)) ** 2)


def schedules(kind: str, runs: int, rng: np.random.Generator) -> list[tuple[tuple[float, ...], int]]:
    """(fractions, experiments) per batch of experiments sharing a schedule."""
    if kind == "regular":
        return [(tuple((k + 1) / 50 for k in range(50)), runs)]
    if kind == "burst":
        days = [(d + 1) / 30 for d in range(30)]
        burst = [14 / 30 + j / 600 for j in range(1, 20)]
        return [(tuple(sorted(days + burst)), runs)]
    batches = 10
    out = []
    for b in range(batches):
        count = int(rng.integers(10, 61))
        fractions = np.unique(np.round(rng.uniform(0.0, 1.0, count - 1), 4))
        fractions = fractions[(fractions > 0.002) & (fractions < 0.998)]
        keep = [float(fractions[0])]
        for f in fractions[1:]:
            if f - keep[-1] >= 2e-3:
                keep.append(float(f))
        out.append(((*keep, 1.0), runs // batches + (1 if b < runs % batches else 0)))
    return out


def increments(
    rng: np.random.Generator, regime: Regime, units: int, lift: float, runs: int
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """n, sum, sum of squares of a look's new units, control then treatment."""
    n_t = rng.binomial(units, regime.split[1], size=runs)
    out: list[Array] = []
    for arm, n in enumerate((units - n_t, n_t)):
        scale = 1 + lift if arm == 1 else 1.0
        if regime.metric.startswith("conversion"):
            total = rng.binomial(n, moments(regime.metric)[0] * scale).astype(float)
            out += [n.astype(float), total, total]
        else:
            buyers = rng.binomial(n, 0.05)
            amounts = rng.lognormal(3.0, 1.0, size=int(buyers.sum())) * scale
            owner = np.repeat(np.arange(runs), buyers)
            out += [
                n.astype(float),
                np.bincount(owner, amounts, minlength=runs),
                np.bincount(owner, amounts**2, minlength=runs),
            ]
    return out[0], out[1], out[2], out[3], out[4], out[5]


def arm_variance(regime: Regime, n: Array, total: Array, squares: Array) -> Array:
    if regime.metric.startswith("conversion"):
        p = total / n
        return p * (1 - p)
    return (squares - total**2 / n) / (n - 1)


def radius(n: float, rho2: float) -> float:
    nr = n * rho2
    return math.sqrt(2 * (nr + 1) / nr * math.log(math.sqrt(nr + 1) / ALPHA))


def mixture_rejects(z2: Array, n: float, rho2: float) -> Array:
    nr = n * rho2
    log_e = nr * z2 / (2 * (nr + 1)) - 0.5 * math.log(nr + 1)
    return log_e >= -math.log(ALPHA)


def covers(
    relative: bool, lift: float, d: Array, m_a: Array, m_b: Array, va: Array, vb: Array, c: Any
) -> Array:
    """The true effect inside the interval with critical value c (Fieller's set for a relative lift)."""
    if not relative:
        # No variance: the analysis reports zero_variance and shows no interval (nothing to cover).
        return np.asarray((np.abs(d - lift * m_true_abs[0]) <= c * np.sqrt(va + vb)) | ~(va + vb > 0))
    rho0 = 1 + lift
    inside = (m_b - rho0 * m_a) ** 2 <= c**2 * (vb + rho0**2 * va)
    return np.asarray(inside | (m_a**2 - c**2 * va <= 0) | ~(va + vb > 0))


m_true_abs = [0.0]


def run_cell(task: tuple[Regime, str, bool, int, int, float]) -> dict[str, Any]:
    regime, kind, effect, runs, seed, few_events = task
    rng = np.random.default_rng(seed)
    n_final = final_n(regime)
    lift = regime.lift if effect else 0.0
    m_true_abs[0] = moments(regime.metric)[0]
    rho2 = SequentialDesign.from_expected_sample_size(n_final, ALPHA).rho_squared
    assert rho2 is not None
    first: dict[str, list[Array]] = {
        d: [] for d in DESIGNS
    }  # per batch, first rejecting fraction (inf: never)
    covered: dict[str, list[Array]] = {d: [] for d in COVERED}
    for fractions, batch_runs in schedules(kind, runs, rng):
        planned_c = boundaries(fractions, ALPHA)
        sums = [np.zeros(batch_runs) for _ in range(6)]
        done = {d: np.full(batch_runs, np.inf) for d in DESIGNS}
        cover = {d: np.ones(batch_runs, dtype=bool) for d in COVERED}
        previous = 0
        for k, t in enumerate(fractions):
            units = round(n_final * t)
            for i, part in enumerate(increments(rng, regime, units - previous, lift, batch_runs)):
                sums[i] += part
            previous = units
            n_a, s_a, q_a, n_b, s_b, q_b = sums
            with np.errstate(all="ignore"):
                m_a, m_b = s_a / n_a, s_b / n_b
                v_a, v_b = arm_variance(regime, n_a, s_a, q_a), arm_variance(regime, n_b, s_b, q_b)
                pooled = ((n_a - 1) * v_a + (n_b - 1) * v_b) / (n_a + n_b - 2)
                fa, fb = np.maximum(v_a, pooled), np.maximum(v_b, pooled)
                # The default: the floor only for an arm with fewer than FEW_EVENTS effective events
                # (sum^2 / sum of squares: the conversions of a 0/1 metric), then Welch's t.
                few_a = (s_a**2 < few_events * q_a) | (q_a == 0)
                few_b = (s_b**2 < few_events * q_b) | (q_b == 0)
                # Before: any other arm kept its own variance; now floored at PARTIAL_FLOOR x pooled (all of it, relative).
                ea, eb = np.where(few_a, fa, v_a), np.where(few_b, fb, v_b)
                share = 1.0 if regime.relative else PARTIAL_FLOOR
                ka = np.where(few_a, fa, np.maximum(v_a, share * pooled))
                kb = np.where(few_b, fb, np.maximum(v_b, share * pooled))
                d = m_b - m_a
                raw_var = v_a / n_a + v_b / n_b
                floor_var = fa / n_a + fb / n_b
                z2_raw = d**2 / raw_var
                z2_floor = d**2 / floor_var
                term_b, term_a = fb / n_b, fa / n_a
                dof = (term_a + term_b) ** 2 / (term_a**2 / (n_a - 1) + term_b**2 / (n_b - 1))
                c_welch = -special.stdtrit(dof, special.ndtr(-planned_c[k]))
                k_var = ka / n_a + kb / n_b
                k_dof = (ka / n_a + kb / n_b) ** 2 / (
                    (ka / n_a) ** 2 / (n_a - 1) + (kb / n_b) ** 2 / (n_b - 1)
                )
                c_keff = -special.stdtrit(k_dof, special.ndtr(-planned_c[k]))
                c_keff = np.where(np.isfinite(c_keff), np.maximum(c_keff, planned_c[k]), planned_c[k])
                e_var = ea / n_a + eb / n_b
                e_dof = e_var**2 / ((ea / n_a) ** 2 / (n_a - 1) + (eb / n_b) ** 2 / (n_b - 1))
                c_eeff = -special.stdtrit(e_dof, special.ndtr(-planned_c[k]))
                c_eeff = np.where(np.isfinite(c_eeff), np.maximum(c_eeff, planned_c[k]), planned_c[k])
                c_welch = np.where(np.isfinite(c_welch), np.maximum(c_welch, planned_c[k]), planned_c[k])
                gb_var = v_b / (m_a**2 * n_b) + v_a * m_b**2 / (m_a**4 * n_a) if regime.relative else raw_var
                gb_d = d / m_a if regime.relative else d
                gb_reject = mixture_rejects(gb_d**2 / gb_var, units, rho2)
                rejects = {
                    "mixture": mixture_rejects(z2_floor, units, rho2),
                    "mixture_textbook": mixture_rejects(z2_raw, units, rho2),
                    "gbstats": gb_reject,
                    "planned_none": z2_raw >= planned_c[k] ** 2,
                    "planned_floor": z2_floor >= planned_c[k] ** 2,
                    "planned_welch": z2_floor >= c_welch**2,
                    "planned_few": d**2 / e_var >= c_eeff**2,
                    "planned": d**2 / k_var >= c_keff**2,
                    "fixed": (
                        z2_raw >= (-special.stdtrit(dof, ALPHA / 2)) ** 2
                        if k == len(fractions) - 1
                        else np.zeros(batch_runs, dtype=bool)
                    ),
                }
                for name, rejected in rejects.items():
                    rejected = rejected & np.isfinite(rejected.astype(float)) & (n_a > 1) & (n_b > 1)
                    done[name] = np.where(rejected & np.isinf(done[name]), t, done[name])
                if effect:
                    cover["mixture"] &= covers(
                        regime.relative, lift, d, m_a, m_b, fa / n_a, fb / n_b, radius(units, rho2)
                    )
                    cover["planned_floor"] &= covers(
                        regime.relative, lift, d, m_a, m_b, fa / n_a, fb / n_b, planned_c[k]
                    )
                    cover["planned_few"] &= covers(
                        regime.relative, lift, d, m_a, m_b, ea / n_a, eb / n_b, c_eeff
                    )
                    cover["planned"] &= covers(regime.relative, lift, d, m_a, m_b, ka / n_a, kb / n_b, c_keff)
        for name in DESIGNS:
            first[name].append(done[name])
        for name in COVERED:
            covered[name].append(cover[name])
    firsts = {name: np.concatenate(v) for name, v in first.items()}
    out: dict[str, Any] = {"regime": regime, "kind": kind, "effect": effect, "runs": runs, "n": n_final}
    for name, values in firsts.items():
        hit = np.isfinite(values)
        out[name] = float(hit.mean())
        out[f"{name}_median"] = float(np.median(values[hit])) if hit.any() else math.nan
        out[f"{name}_half"] = float(np.median(values))  # inf: fewer than half detect by the plan
    for name in COVERED:
        out[f"{name}_coverage"] = float(np.concatenate(covered[name]).mean())
    return out


def check_against_functions() -> None:
    """The vectorised statistics agree with stats' public functions (and the mixture with gbstats)."""
    from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
    from gbstats.models.statistics import ProportionStatistic as GbProportion

    control, treatment = ProportionStatistic(900, 9), ProportionStatistic(8100, 120)
    result = planned(control, treatment, PlannedDesign.at(40_000, (0.05, 0.12, 0.2), 9000))
    c = boundaries((0.05, 0.12, 0.2, 9000 / 40_000), ALPHA)[-1]
    n_a, n_b = 900.0, 8100.0
    v_a, v_b = 0.01 * 0.99, (120 / 8100) * (1 - 120 / 8100)
    pooled = ((n_a - 1) * v_a + (n_b - 1) * v_b) / (n_a + n_b - 2)
    # The control has 9 conversions (< FEW_EVENTS): floored at the pooled variance; the treatment's 120 at
    # PARTIAL_FLOOR of it.
    fa, fb = max(v_a, pooled) / n_a, max(v_b, PARTIAL_FLOOR * pooled) / n_b
    dof = (fa + fb) ** 2 / (fa**2 / (n_a - 1) + fb**2 / (n_b - 1))
    c_welch = max(-special.stdtrit(dof, special.ndtr(-c)), c)
    d = 120 / 8100 - 0.01
    assert abs(result.ci_high - (d + c_welch * math.sqrt(fa + fb))) < 1e-9, result
    rho2 = SequentialDesign.from_expected_sample_size(9000, ALPHA).rho_squared
    assert rho2 is not None
    mixture = sequential(
        control, treatment, SequentialDesign.from_expected_sample_size(9000), conservative=False
    )
    z2 = d**2 / (v_a / n_a + v_b / n_b)
    assert bool(mixture.p_value < ALPHA) == bool(mixture_rejects(np.array([z2]), 9000, rho2)[0])
    for relative in (False, True):
        gb = SequentialTwoSidedTTest(
            GbProportion(n=900, sum=9),
            GbProportion(n=8100, sum=120),
            SequentialConfig(
                sequential_tuning_parameter=9000, difference_type="relative" if relative else "absolute"
            ),
        ).compute_result()
        gd = d / 0.01 if relative else d
        gv = (
            v_b / (0.01**2 * n_b) + v_a * (120 / 8100) ** 2 / (0.01**4 * n_a)
            if relative
            else v_a / n_a + v_b / n_b
        )
        nr = 9000 * rho2
        p = min(1.0, math.exp(-(nr * gd**2 / gv / (2 * (nr + 1)) - 0.5 * math.log(nr + 1))))
        assert abs(p - gb.p_value) < 1e-9, (p, gb.p_value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--aa", type=int, default=20_000, help="A/A experiments per regime and schedule")
    parser.add_argument(
        "--effect", type=int, default=60_000, help="experiments with the effect per regime and schedule"
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--few-events", type=float, default=FEW_EVENTS, help="the default's floor threshold")
    parser.add_argument("--only", default="", help="only the regimes whose name contains this")
    parser.add_argument("--quick", action="store_true", help="2,000 and 1,000 experiments: for development")
    args = parser.parse_args()
    if args.quick:
        args.aa, args.effect = 2_000, 1_000
    check_against_functions()
    started = time.monotonic()
    tasks = [
        (regime, kind, effect, args.effect if effect else args.aa, seed, args.few_events)
        for seed, (regime, kind, effect) in enumerate(
            (r, k, e) for r in REGIMES for k in ("regular", "random", "burst") for e in (False, True)
        )
        if args.only in regime.name
    ]
    with multiprocessing.Pool(min(args.processes, 2)) as pool:
        results = pool.map(run_cell, tasks, chunksize=1)
    print(f"The default floors an arm with fewer than {args.few_events:g} effective events.")
    failed = report(results, args)
    print(f"\n{time.monotonic() - started:.0f} s")
    sys.exit(1 if failed else 0)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    aa_se = math.sqrt(ALPHA * (1 - ALPHA) / args.aa)
    cover_se = math.sqrt(ALPHA * (1 - ALPHA) / args.effect)
    by = {(r["regime"], r["kind"], r["effect"]): r for r in results}
    failed = False
    print(f"A/A: {args.aa} experiments per cell (SE of a rate at alpha {aa_se:.4f}); effect: {args.effect}.")
    print(
        "Cells: power (A/A FPR) [median fraction of the first rejection among those detected; fraction by which"
        " half of all experiments with the effect are detected, inf: fewer than half by the plan];"
        " coverage: every-look coverage of the true effect.\n"
    )
    header = (
        "| regime | looks | n | fixed | mixture (default) | mixture, textbook | gbstats 0.8 | planned, no floor "
        "| planned, floor | planned, floor + Welch t | planned, floor if few + Welch t "
        "| **planned (default)** | coverage mixture / planned, floor / floor if few / default |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for regime in REGIMES:
        for kind in ("regular", "random", "burst"):
            if (regime, kind, False) not in by:
                continue
            aa, fx = by[(regime, kind, False)], by[(regime, kind, True)]
            cells = []
            for name in DESIGNS:
                if name == "fixed":
                    cells.append(f"{fx[name]:.3f} ({aa[name]:.4f})")
                else:
                    cells.append(
                        f"{fx[name]:.3f} ({aa[name]:.4f}) [{fx[name + '_median']:.2f}; {fx[name + '_half']:.2f}]"
                    )
            coverage = " / ".join(f"{fx[name + '_coverage']:.4f}" for name in COVERED)
            print(f"| {regime.name} | {kind} | {fx['n']} | " + " | ".join(cells) + f" | {coverage} |")
            problems = []
            if aa["planned"] > ALPHA + 2 * aa_se:
                problems.append(f"FPR {aa['planned']:.4f} > alpha + 2 SE")
            if fx["planned_coverage"] < 1 - ALPHA - 2 * cover_se:
                problems.append(f"coverage {fx['planned_coverage']:.4f} < 1 - alpha - 2 SE")
            if regime.in_table:
                if aa["planned"] < 0.6 * ALPHA:
                    problems.append(f"FPR {aa['planned']:.4f} < 0.6 alpha")
                if fx["planned"] < 0.75:
                    problems.append(f"power {fx['planned']:.3f} < 0.75")
                if fx["planned"] < fx["gbstats"] + 0.15:
                    problems.append(f"power {fx['planned']:.3f} < gbstats {fx['gbstats']:.3f} + 0.15")
                if not fx["planned_half"] < fx["mixture_half"]:
                    problems.append("median detection not earlier than the mixture's")
            for problem in problems:
                failed = True
                print(f"  MISSED {regime.name}, {kind}: {problem}")
    return failed


if __name__ == "__main__":
    main()
