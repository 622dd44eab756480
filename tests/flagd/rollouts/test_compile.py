"""A rollout compiled into its flag: units only ever move to the new variant, and flagd-core agrees."""

from __future__ import annotations

import logging
from typing import Any

from flagd.rollouts.compile import rollout_definition
from flagd.rollouts.model import DEFAULT_STAGES, Rollout
from flagd_sdk.evaluation import FlagType, Reason, load_flag_set
from flagd_sdk.evaluation.exposure import exposure, served_experiments

UNITS = [f"user-{i}" for i in range(100_000)]
ROLLOUT = Rollout(
    key="new-checkout",
    flag="checkout",
    variant="new",
    replaces="old",
    eligibility={"!=": [{"var": "country"}, "SE"]},
    salt="fixed-salt",
)
OWN = {"if": [{"==": [{"var": "country"}, "SE"]}, "other", None]}


def flag() -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {"old": "old", "new": "new", "other": "other"},
        "defaultVariant": "old",
        "targeting": OWN,
    }


def served(state: str, share_bp: int, phase: int = 1) -> dict[str, Any]:
    return {"flags": {"checkout": rollout_definition(flag(), ROLLOUT, state, share_bp, phase)}}


def country(i: int) -> str:
    return "SE" if i % 10 == 0 else "NL"


def test_should_never_move_a_unit_back_as_the_stages_widen() -> None:
    previous: list[str] | None = None
    for stage in DEFAULT_STAGES[:-1]:  # the last, 100%, is served as the completed rollout (tested below)
        flags = load_flag_set(served("running", stage.share_bp))
        variants = [
            flags.resolve(
                FlagType.STRING, "checkout", "x", {"targetingKey": u, "country": country(i)}
            ).variant
            or ""
            for i, u in enumerate(UNITS)
        ]
        eligible = [v for i, v in enumerate(variants) if country(i) != "SE"]
        share = eligible.count("new") / len(eligible)
        assert abs(share - stage.share_bp / 10_000) < 0.006, (stage, share)
        assert all(v == "other" for i, v in enumerate(variants) if country(i) == "SE")  # the flag's own rule
        if previous is not None:
            moved_back = sum(1 for a, b in zip(previous, variants, strict=True) if a == "new" and b != "new")
            assert moved_back == 0
        previous = variants


def test_should_record_exposures_only_for_eligible_units_of_a_running_stage() -> None:
    document = served("running", 500, phase=3)
    flags = load_flag_set(document)
    experiment = served_experiments(document)["checkout"]
    nl = {"targetingKey": "u-1", "country": "NL"}
    found = exposure(experiment, flags.resolve(FlagType.STRING, "checkout", "x", nl), nl)
    assert found is not None
    assert (found.experiment, found.phase) == ("rollout:new-checkout", 3)
    se = {"targetingKey": "u-1", "country": "SE"}
    assert exposure(experiment, flags.resolve(FlagType.STRING, "checkout", "x", se), se) is None
    rolled_back = load_flag_set(served("rolled_back", 0))
    details = rolled_back.resolve(FlagType.STRING, "checkout", "x", nl)
    assert (details.variant, details.reason) == ("old", Reason.TARGETING_MATCH)
    assert served_experiments(served("rolled_back", 0)) == {}
    done = load_flag_set(served("completed", 10_000)).resolve(FlagType.STRING, "checkout", "x", nl)
    assert done.variant == "new"


def test_should_assign_as_openfeature_flagd_core_does_at_every_stage() -> None:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    logging.disable(logging.CRITICAL)
    try:
        for state, share in [*(("running", s.share_bp) for s in DEFAULT_STAGES), ("rolled_back", 0)]:
            document = served(state, share)
            ours = load_flag_set(document)
            core = FlagdCore()
            core.set_flags(document)
            for i, unit in enumerate(UNITS[:2_000]):
                attributes = {"country": country(i)}
                theirs = core.resolve_string_value("checkout", "x", EvaluationContext(unit, attributes))
                mine = ours.resolve(FlagType.STRING, "checkout", "x", {"targetingKey": unit, **attributes})
                assert (mine.variant, mine.value) == (theirs.variant, theirs.value), (state, share, unit)
    finally:
        logging.disable(logging.NOTSET)
