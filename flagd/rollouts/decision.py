"""What the monitor does with a rollout's stage at one look: the pure decision, no I/O.

The same function decides for the server's monitor and for bench/rollout_aa.py's simulation.

Per stage the units on the new variant are compared with those on the replaced one on each guardrail
with the always-valid sequential test of `stats.sequential` (so the monitor may look at every round).
The rollout's alpha is split evenly over its monitored stages x guardrails (Bonferroni), so over the
whole rollout the chance of a false alarm from any look at any stage is at most alpha. In order:

1. health: a sample ratio mismatch against the stage's split (chi-squared, p < 0.001), or more than
   MAX_MULTIPLE_SHARE of the units seen in both variants: **hold** (the comparison cannot be trusted);
2. harm: a guardrail whose interval excludes 0 in its bad direction: **rollback** (or hold, as the rollout
   says);
3. the stage's minimum duration passed with no unit exposed: **hold** (no traffic);
4. the minimum duration passed and the minimum units (both variants) reached: **advance** (to the last
   stage, 100%: **complete**);
5. otherwise **wait**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from flagd.experiments.model import BASIS_POINTS
from flagd.rollouts.model import Guardrail, Rollout
from stats.sequential import SequentialDesign, sequential
from stats.srm import sample_ratio_mismatch
from stats.sufficient import Statistic

Action = Literal["wait", "advance", "complete", "hold", "rollback"]
SRM_THRESHOLD = 0.001
MAX_MULTIPLE_SHARE = 0.01
MIN_DESIGN_UNITS = 1_000
"""The sequential tests' design point is the stage's minimum units (both variants), at least this: the
boundary is tightest where the stage is decided."""


@dataclass(frozen=True, slots=True)
class Comparison:
    guardrail: Guardrail
    replaced: Statistic
    new: Statistic


@dataclass(frozen=True, slots=True)
class Look:
    """One stage's data at one moment: units per side, units in both, the guardrails' statistics."""

    stage: int
    elapsed_seconds: float
    replaced_units: int
    new_units: int
    multiple: int = 0
    comparisons: tuple[Comparison, ...] = ()

    @property
    def units(self) -> int:
        return self.replaced_units + self.new_units


@dataclass(frozen=True, slots=True)
class GuardrailVerdict:
    metric: str
    direction: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    harmed: bool
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "effect": _finite(self.effect),
            "ciLow": _finite(self.ci_low),
            "ciHigh": _finite(self.ci_high),
            "pValue": _finite(self.p_value),
            "harmed": self.harmed,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    code: str
    """A stable word for the reason: harm, srm, multiple, no_traffic, stage_met, waiting."""
    verdicts: tuple[GuardrailVerdict, ...]
    srm_p_value: float
    alpha_per_test: float

    def statistics(self, look: Look) -> dict[str, Any]:
        return {
            "code": self.code,
            "units": {"replaced": look.replaced_units, "new": look.new_units, "multiple": look.multiple},
            "elapsedSeconds": round(look.elapsed_seconds, 3),
            "srmPValue": _finite(self.srm_p_value),
            "alphaPerTest": self.alpha_per_test,
            "guardrails": [v.to_json() for v in self.verdicts],
        }


def judge(comparison: Comparison, alpha: float, design_units: int = MIN_DESIGN_UNITS) -> GuardrailVerdict:
    design = SequentialDesign.from_expected_sample_size(max(design_units, MIN_DESIGN_UNITS), alpha)
    result = sequential(comparison.replaced, comparison.new, design, alpha=alpha)
    guardrail = comparison.guardrail
    if not result.ok:
        assert result.problem is not None
        return GuardrailVerdict(
            guardrail.metric, guardrail.direction, *(float("nan"),) * 4, False, result.problem.message
        )
    worse_up = guardrail.direction == "decrease"
    harmed = result.ci_low > 0 if worse_up else result.ci_high < 0
    return GuardrailVerdict(
        guardrail.metric,
        guardrail.direction,
        result.effect,
        result.ci_low,
        result.ci_high,
        result.p_value,
        harmed,
    )


def decide(rollout: Rollout, look: Look) -> Decision:
    """What to do with `rollout` at stage `look.stage` given what `look` saw (see the module's order)."""
    stage = rollout.stages[look.stage]
    alpha = rollout.alpha / rollout.looks
    verdicts = tuple(judge(c, alpha, stage.min_units) for c in look.comparisons)
    srm = sample_ratio_mismatch(
        [look.replaced_units, look.new_units],
        [BASIS_POINTS - stage.share_bp, stage.share_bp],
        threshold=SRM_THRESHOLD,
    )

    def made(action: Action, code: str, reason: str) -> Decision:
        return Decision(action, reason, code, verdicts, srm.p_value, alpha)

    if srm.mismatch:
        return made(
            "hold",
            "srm",
            f"the split is off: {look.new_units} units on the new variant and {look.replaced_units} on the replaced "
            f"one, against {stage.share_bp / 100:g}% (sample ratio mismatch, p = {srm.p_value:.2g}); find the cause",
        )
    if look.multiple > MAX_MULTIPLE_SHARE * max(look.units + look.multiple, 1):
        return made("hold", "multiple", f"{look.multiple} units were seen in both variants; find the cause")
    harmed = [v for v in verdicts if v.harmed]
    if harmed:
        names = ", ".join(
            f"{v.metric} ({v.effect:+.3g}, between {v.ci_low:+.3g} and {v.ci_high:+.3g})" for v in harmed
        )
        action: Action = "rollback" if rollout.on_harm == "rollback" else "hold"
        return made(action, "harm", f"the new variant harms {names} at {stage.share_bp / 100:g}%")
    if look.elapsed_seconds >= stage.min_duration_seconds:
        if look.units == 0:
            return made(
                "hold", "no_traffic", f"no unit was exposed in {look.elapsed_seconds:.0f} s at this stage"
            )
        if look.units >= stage.min_units:
            last = look.stage + 1 == len(rollout.stages) - 1 or look.stage + 1 >= len(rollout.stages)
            return made(
                "complete" if last else "advance",
                "stage_met",
                f"{look.units} units over {look.elapsed_seconds:.0f} s at {stage.share_bp / 100:g}% and no guardrail harmed",
            )
    return made("wait", "waiting", "the stage's minimum duration or units are not reached yet")


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None
