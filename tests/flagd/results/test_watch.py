"""What the watcher notifies, from what it watched and what it sees: the pure rules of flagd.results.watch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from flagd.results.model import Action, Check, Decision, Estimate, NoEstimate, StatisticProblem, VariantUnits
from flagd.results.watch import Harm, Observation, Watched, step

START = datetime(2026, 12, 1, tzinfo=UTC)


def look(
    n: int,
    action: Action = "keep running",
    variant: str | None = None,
    failing: Sequence[str] = (),
    harmed: Sequence[str] = (),
    phase: int = 1,
    has_data: bool = True,
) -> Observation:
    """The n-th look: a decision, the checks failing, the guardrails harmed by variant "new"."""
    return Observation(
        experiment="checkout",
        phase=phase,
        as_of=START + timedelta(minutes=n),
        has_data=has_data,
        decision=Decision(action, f"because {action}", variant=variant),
        headline="",
        failing=tuple(Check(name, False, f"{name} found", "fix it") for name in failing),
        harms=tuple(
            Harm(
                metric,
                "new",
                "decrease",
                "conversion",
                Estimate(0.2, 0.1, 0.3, 0.001),
                Estimate(1, 0.5, 2, 0.001),
                None,
                None,
            )
            for metric in harmed
        ),
        units=(VariantUnits("old", 100), VariantUnits("new", 100)),
        sample_ratio=NoEstimate(StatisticProblem("few", "few units")),
    )


def run(*looks: Observation, state: Watched | None = None) -> tuple[Watched | None, list[list[str]]]:
    """The state after the looks, and each look's notifications as "kind:subject of the change"."""
    told = []
    for seen in looks:
        state, notices = step(state, seen)
        told.append([f"{n.kind.removeprefix('experiment.')}:{_what(n.payload['change'])}" for n in notices])
    return state, told


def _what(change: dict[str, object]) -> object:
    if "check" in change:
        return change["check"]
    if "metric" in change:
        return change["metric"]
    to = change["to"]
    assert isinstance(to, dict)
    return to["action"]


def test_should_notify_a_change_once_two_looks_agree_and_not_again_while_it_stays() -> None:
    _, told = run(
        look(1),
        look(2, "stop", "new", harmed=["errors"]),
        look(3, "stop", "new", harmed=["errors"]),
        look(4, "stop", "new", harmed=["errors"]),
        look(5, "stop", "new", harmed=["errors"]),
    )
    assert told == [[], [], ["guardrail_harmed:errors", "decision_changed:stop"], [], []]


def test_should_neither_notify_nor_recover_on_a_one_look_blip() -> None:
    state, told = run(
        look(1, "investigate", failing=["exposures arrive"]),  # a look that read between two commits
        look(2),
        look(3, "investigate", failing=["sample ratio"]),
        look(4, "investigate", failing=["sample ratio"]),
        look(5),  # one look without the failure: not a recovery
        look(6, "investigate", failing=["sample ratio"]),
    )
    assert told == [[], [], [], ["health_failed:sample ratio", "decision_changed:investigate"], [], []]
    assert state is not None
    assert state.notified.failed == {"sample ratio"}


def test_should_notify_a_check_that_recovers_and_fails_again() -> None:
    _, told = run(
        *(look(n, failing=["sample ratio"]) for n in (1, 2)),
        *(look(n) for n in (3, 4)),
        *(look(n, failing=["sample ratio"]) for n in (5, 6)),
    )
    assert told == [[], ["health_failed:sample ratio"], [], [], [], ["health_failed:sample ratio"]]


def test_should_watch_nothing_while_a_phase_has_no_data() -> None:
    state, told = run(
        *(look(n, "investigate", failing=["metric events arrive"], has_data=False) for n in range(1, 5))
    )
    assert told == [[], [], [], []]
    assert state == Watched(1)


def test_should_start_a_new_phase_from_nothing() -> None:
    harmed = [look(n, "stop", "new", harmed=["errors"]) for n in (1, 2)]
    state, told = run(*harmed)
    assert told[-1] == ["guardrail_harmed:errors", "decision_changed:stop"]
    _, told = run(*(look(n, "stop", "new", harmed=["errors"], phase=2) for n in (3, 4)), state=state)
    assert told == [[], ["guardrail_harmed:errors", "decision_changed:stop"]]


def test_should_say_what_changed_with_the_statistics_and_links() -> None:
    state, _ = step(None, look(1, "stop", "new", harmed=["errors"]))
    _, notices = step(state, look(2, "stop", "new", harmed=["errors"]))
    harm, decision = notices
    assert harm.payload["change"]["absolute"] == {"effect": 0.2, "ciLow": 0.1, "ciHigh": 0.3, "pValue": 0.001}
    assert harm.payload["link"] == "/experiments/checkout"
    assert harm.payload["results"] == "/v1/experiments/checkout/results?phase=1"
    assert decision.payload["change"] == {
        "from": {"action": "keep running", "variant": None},
        "to": {"action": "stop", "variant": "new"},
    }
    assert decision.payload["decision"] == {"action": "stop", "reason": "because stop", "variant": "new"}
    assert decision.payload["units"] == {"old": 100, "new": 100}
