"""A planned-horizon group-sequential test: alpha spent over the planned reach, at the looks taken.

The information fraction of a look is t = N / N_plan, the units in both arms over the planned reach
(Lan and DeMets 1983 allow information measured by sample size when the variance is stable). The
looks a phase has taken, t_1 < ... < t_k with this one last, get the boundaries c_1..c_k of
`stats.boundaries` for the O'Brien-Fleming-like spending of `stats.spending`, so the chance of a
false positive at any of them is at most alpha however many looks there were and when.

At a look the test rejects when |Z_k| >= c_k, Z_k the same Welch-type statistic the other tests use
(stats.estimate: the contrast A - rho0 B over its standard error). The interval is the repeated
confidence interval at the look's boundary (Jennison and Turnbull 2000, chapter 9, eq. 9.1):
effect +/- c_k SE on the absolute scale, and Fieller's set at c_k for a relative lift, so it excludes
the null value exactly when the test rejects, and the intervals hold at every look at once.

Small arms (`small_arm`): the statistic's variance is estimated, and a 10% arm with no conversion yet
looks certain. `conservative` floors each arm's variance at the pooled one (stats.estimate.pooled_floor);
`few_events` (the default) floors an arm with fewer than FEW_EVENTS effective events, (sum x)^2 /
sum x^2 (its conversions, for a 0/1 metric; for a skewed amount, how many units carry the sum), at the
pooled variance and every other arm at PARTIAL_FLOOR (0.85) of it (at all of it in a relative test, whose
Fieller interval needs the whole floor to keep its coverage where the small arm's amount is skewed:
measured), and turns c_k into the Student t
quantile of the same tail with the Welch-Satterthwaite degrees of freedom, which matters only while an
arm is small. The partial floor is for skewed amounts: a small arm that has missed its largest values
has a low mean and a low variance at once, which makes |Z| too large in one tail exactly then; at 0.85
of the pooled variance it binds only on such draws (an arm's variance estimate is rarely that far below
the truth otherwise). Flooring every arm at the whole pooled variance, as the mixture test does, spends
too little of alpha where arms are unequal, because under an effect the pooled variance carries the
other arm's; docs/results.md gives the measurements (bench/sequential_power.py) that chose the default.

The p-value is the look's nominal p scaled to the boundary: p = alpha x P(|Z| >= |z|) / P(|Z| >= c_k),
capped at 1, so p < alpha exactly when the test rejects (it is monotone in |z| but, unlike the
repeated p-value of Jennison and Turnbull section 9.2, not recomputed at every other level).

Past the planned reach (t > 1) the always-valid mixture test (stats.sequential) answers, so a look
after the plan is never invalid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from scipy import special

from stats.boundaries import boundaries
from stats.estimate import DataProblem, Problem, estimate
from stats.guard import analysis_usable, guarded
from stats.results import AnalysisResult
from stats.sequential import SequentialDesign, check_design, sequential
from stats.sufficient import QuantileStatistic, RatioStatistic, RegressionAdjustedStatistic, Statistic
from stats.validation import check_positive

MIN_GAP = 1e-3
"""Looks closer than this (0.1% of the planned reach) to a later one are the same look (merged)."""
MAX_LOOKS = 200
"""At most this many earlier looks are used; beyond, the earliest are thinned (see `schedule`)."""

SmallArm = Literal["few_events", "conservative", "none"]
FEW_EVENTS = 30.0
"""An arm with fewer effective events than this has its variance floored at the pooled one."""
PARTIAL_FLOOR = 0.85
"""Any other arm's variance is floored at this share of the pooled one in an absolute test (the default,
`few_events`); in a relative test every arm is floored at the whole pooled variance."""


def schedule(earlier: Iterable[float], t: float) -> tuple[float, ...]:
    """The looks' information fractions for a look at t: the earlier looks before t, then t.

    Earlier looks within MIN_GAP of t (a burst of requests) merge into this one, and looks at or
    after t (a view with fewer units than one already taken) are left out. More than MAX_LOOKS
    earlier looks keep the latest MAX_LOOKS.
    """
    before = sorted({f for f in earlier if 0 < f < t - MIN_GAP})
    thinned: list[float] = []
    for f in before:
        if not thinned or f - thinned[-1] >= MIN_GAP:
            thinned.append(f)
    return (*thinned[-MAX_LOOKS:], t)


@dataclass(frozen=True, slots=True)
class PlannedDesign:
    """A planned reach in units (both arms) and the information fractions of the looks taken, this one last.

    `at` builds one from the earlier looks (`schedule`); the fraction of a look is the units so far,
    in the whole phase, over the planned reach, so every metric and variant of a look shares it.
    """

    planned_units: float
    looks: tuple[float, ...]

    @classmethod
    def at(cls, planned_units: float, earlier: Iterable[float], units: float) -> PlannedDesign:
        fraction = units / planned_units if planned_units > 0 else math.nan
        return cls(planned_units, schedule(earlier, fraction) if fraction > 0 else (fraction,))

    def problem(self) -> DataProblem | None:
        invalid = check_positive("planned_units", self.planned_units)
        if invalid is None and not (self.looks and all(f > 0 and math.isfinite(f) for f in self.looks)):
            invalid = f"looks must be positive information fractions, got {self.looks!r}"
        if invalid is None and any(b <= a for a, b in zip(self.looks, self.looks[1:], strict=False)):
            invalid = f"looks must increase, got {self.looks!r}"
        return DataProblem(Problem.INVALID_PARAMETER, invalid) if invalid is not None else None

    @property
    def fraction(self) -> float:
        return self.looks[-1]

    @property
    def in_force(self) -> Literal["planned", "mixture"]:
        """Which test answers at this look: the planned one up to the planned reach."""
        return "planned" if self.fraction <= 1 else "mixture"

    def after_plan(self, alpha: float) -> SequentialDesign:
        """The mixture test past the plan, tightest at the planned reach."""
        return SequentialDesign.from_expected_sample_size(self.planned_units, alpha)

    def critical_value(self, alpha: float) -> float:
        """c_k on the Z scale at this look (the planned design's; inf past the plan, where it is not used)."""
        return boundaries(self.looks, alpha)[-1] if self.fraction <= 1 else math.inf


def few_events(statistic: Statistic) -> bool:
    """Fewer than FEW_EVENTS effective events: (sum x)^2 < FEW_EVENTS sum x^2 of the metric's values."""
    if isinstance(statistic, RatioStatistic):
        statistic = statistic.numerator
    elif isinstance(statistic, RegressionAdjustedStatistic):
        statistic = statistic.post
    if isinstance(statistic, QuantileStatistic):
        return statistic.n < FEW_EVENTS
    # An arm without any event (sum of squares 0) has none.
    return bool(statistic.sum**2 < FEW_EVENTS * statistic.sum_squares or statistic.sum_squares == 0)


def welch_critical(critical: float, dof: float) -> float:
    """The t quantile with the tail of N(0, 1) beyond `critical` (the same nominal level)."""
    if not math.isfinite(critical) or not math.isfinite(dof):
        return critical
    tail = float(special.ndtr(-critical))
    quantile = float(-special.stdtrit(dof, tail)) if tail > 0 else math.nan
    # Far in the tail stdtrit loses its answer (NaN): the t quantile is then beyond any statistic anyway.
    return max(quantile, critical) if math.isfinite(quantile) else critical


def nominal_p(z: float, critical: float, alpha: float) -> float:
    """alpha P(|Z| >= |z|) / P(|Z| >= c), in log space so that far tails do not underflow."""
    if not math.isfinite(critical):
        return 1.0
    log_ratio = float(special.log_ndtr(-abs(z)) - special.log_ndtr(-critical))
    return 1.0 if log_ratio >= -math.log(alpha) else min(1.0, alpha * math.exp(log_ratio))


@guarded(AnalysisResult.failed, analysis_usable)
def planned(
    control: Statistic,
    treatment: Statistic,
    design: PlannedDesign,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    test_value: float = 0.0,
    small_arm: SmallArm = "few_events",
) -> AnalysisResult:
    """The planned design's two-sided test and repeated confidence interval at the data seen so far."""
    invalid = check_design(alpha, test_value, design, PlannedDesign)
    if invalid is not None:
        return AnalysisResult.failed(invalid)
    floor: bool | tuple[float, float] = small_arm == "conservative"
    if small_arm == "few_events":
        share = 1.0 if relative else PARTIAL_FLOOR
        floor = (
            1.0 if few_events(control) else share,
            1.0 if few_events(treatment) else share,
        )
    est = estimate(control, treatment, relative=relative, conservative=floor)
    if isinstance(est, DataProblem):
        return AnalysisResult.failed(est)
    if design.in_force == "mixture":
        return sequential(
            control,
            treatment,
            design.after_plan(alpha),
            relative=relative,
            alpha=alpha,
            test_value=test_value,
            conservative=small_arm != "none",
        )
    value, variance = est.null_contrast(test_value)
    if not variance > 0:
        return AnalysisResult.failed(
            DataProblem(Problem.ZERO_VARIANCE, "the contrast under the null has no variance to test against")
        )
    critical = design.critical_value(alpha)
    if small_arm == "few_events":
        critical = welch_critical(critical, est.dof)
    low, high = est.interval(critical, critical)
    return AnalysisResult(
        effect=est.effect,
        ci_low=low,
        ci_high=high,
        p_value=nominal_p(value / math.sqrt(variance), critical, alpha),
        std_error=est.std_error,
    )
