"""The monitor's decision, pure: health before harm, harm before schedule, schedule before waiting."""

from __future__ import annotations

from dataclasses import replace

from flagd.rollouts.decision import Comparison, Look, decide
from flagd.rollouts.model import Guardrail, Rollout, Stage
from stats import ProportionStatistic

ROLLOUT = Rollout(
    "r",
    "f",
    "new",
    "old",
    stages=(Stage(1000, 3600, 1000), Stage(5000, 3600, 1000), Stage(10_000)),
    guardrails=(Guardrail("errors", "decrease"),),
)


def look(old: tuple[int, int], new: tuple[int, int], seconds: float = 0.0, stage: int = 0) -> Look:
    comparison = Comparison(ROLLOUT.guardrails[0], ProportionStatistic(*old), ProportionStatistic(*new))
    return Look(stage, seconds, old[0], new[0], comparisons=(comparison,))


def test_should_decide_in_the_documented_order() -> None:
    harmed = look((9000, 900), (1000, 200))
    assert decide(ROLLOUT, harmed).action == "rollback"
    assert decide(replace(ROLLOUT, on_harm="hold"), harmed).action == "hold"
    assert decide(ROLLOUT, harmed).verdicts[0].ci_low > 0
    improved = look((9000, 900), (1000, 50), seconds=3600)  # better in its direction: no harm
    assert decide(ROLLOUT, improved).action == "advance"
    at_half = look((5000, 500), (5000, 250), seconds=3600, stage=1)
    assert decide(ROLLOUT, at_half).action == "complete"  # the next stage is 100%
    assert decide(ROLLOUT, look((9000, 900), (1000, 100), seconds=3599)).action == "wait"
    assert decide(ROLLOUT, look((500, 50), (40, 4), seconds=3600)).code == "waiting"  # too few units
    assert decide(ROLLOUT, look((0, 0), (0, 0), seconds=3600)).code == "no_traffic"
    off = decide(ROLLOUT, look((5000, 500), (5000, 1000), seconds=3600))  # 50/50 at a 10% stage
    assert (off.action, off.code) == ("hold", "srm")  # health first: the harm there is not trusted
    assert decide(ROLLOUT, replace(look((9000, 900), (1000, 100), 3600), multiple=500)).code == "multiple"
