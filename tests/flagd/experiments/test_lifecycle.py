"""The lifecycle: what may change when, and what each refusal tells the user to do instead."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from flagd.experiments.lifecycle import LifecycleError, edit, launch, new_phase, start, stop
from flagd.experiments.model import Experiment, Layer, State

DRAFT = Experiment(
    key="exp", flag="f", variants=(("off", 1), ("on", 1)), salt="", allocation_bp=4000, layer="l"
)
LAYER = Layer("l", "layer-salt", holdout_bp=1000)


def test_should_start_with_a_salt_a_phase_and_a_slot() -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    assert (running.state, running.phase, running.salt, running.slot) == (
        "running",
        1,
        "salt-1",
        (1000, 5000),
    )


@pytest.mark.parametrize(
    "change",
    [
        {"variants": (("off", 1), ("on", 3))},
        {"allocation_bp": 5000},
        {"unit": "company_id"},
        {"eligibility": True},
    ],
)
def test_should_refuse_to_change_what_decides_assignment_while_running(change: dict[str, Any]) -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    with pytest.raises(LifecycleError, match="start a new phase") as refused:
        edit(running, replace(running, **change))
    assert next(iter(change)) in str(refused.value)


@pytest.mark.parametrize("change", [{"expected_units": 5_000}, {"alpha": 0.1}])
def test_should_refuse_to_change_the_sequential_design_while_running(change: dict[str, Any]) -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    with pytest.raises(LifecycleError, match="design is fixed when a phase starts") as refused:
        edit(running, replace(running, **change))
    assert next(iter(change)) in str(refused.value)
    assert edit(DRAFT, replace(DRAFT, **change)) == replace(DRAFT, **change)  # a draft may change it


def test_should_allow_editing_the_description_of_a_running_experiment() -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    edited = edit(running, replace(running, hypothesis="Clearer wording", salt=""))
    assert (edited.hypothesis, edited.salt, edited.phase, edited.slot) == (
        "Clearer wording",
        "salt-1",
        1,
        (1000, 5000),
    )


def test_should_start_a_new_phase_with_a_new_salt() -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    second = new_phase(
        running, replace(running, variants=(("off", 1), ("on", 3))), "salt-2", LAYER, [running]
    )
    assert (second.phase, second.salt, second.variants) == (2, "salt-2", (("off", 1), ("on", 3)))


def test_should_refuse_to_over_allocate_the_layer_at_start() -> None:
    other = start(replace(DRAFT, key="other", allocation_bp=7000), "s", LAYER, [])
    with pytest.raises(LifecycleError, match="2000 of 10000 basis points free"):
        start(DRAFT, "salt-1", LAYER, [other])


def test_should_launch_a_variant_as_the_default_for_everyone() -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    flag = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [True, "on", None]},
    }
    launched, new_flag = launch(running, "on", flag)
    assert launched.state == "launched"
    assert new_flag == {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
    with pytest.raises(LifecycleError, match="choose one of off, on"):
        launch(running, "maybe", flag)


def test_should_refuse_transitions_the_state_forbids() -> None:
    with pytest.raises(LifecycleError, match="only a running experiment can stop"):
        stop(DRAFT)
    running = start(DRAFT, "salt-1", LAYER, [])
    with pytest.raises(LifecycleError, match="only a draft or a stopped experiment can start"):
        start(running, "salt-2", LAYER, [])
    stopped = stop(running)
    restarted = start(stopped, "salt-2", LAYER, [])
    assert (restarted.phase, restarted.salt) == (2, "salt-2")


@pytest.mark.parametrize("change", [{"variants": (("off", 1), ("on", 3))}, {"alpha": 0.1}])
def test_should_name_the_commands_that_make_a_refused_change(change: dict[str, Any]) -> None:
    running = start(DRAFT, "salt-1", LAYER, [])
    with pytest.raises(LifecycleError) as refused:
        edit(running, replace(running, **change))
    assert str(refused.value).endswith(
        "start a new phase with the change (`flagd experiments new-phase exp --file FILE`, or "
        'POST /v1/admin/experiments/exp/new-phase with the body {"definition": ...}), or stop it '
        "(`flagd experiments stop exp`), apply the change and start it again"
    )


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ("draft", "(`flagd apply FILE`) and start it (`flagd experiments start exp`)"),
        ("stopped", "(`flagd apply FILE`) and start it (`flagd experiments start exp`)"),
        ("launched", "was launched; create a new experiment to test again"),
    ],
)
def test_should_refuse_a_new_phase_unless_running_saying_what_to_do(state: State, says: str) -> None:
    with pytest.raises(LifecycleError) as refused:
        new_phase(replace(DRAFT, state=state), DRAFT, "salt-2", LAYER, [])
    assert says in str(refused.value)
