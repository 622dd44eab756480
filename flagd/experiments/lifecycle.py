"""An experiment's lifecycle: draft -> running -> stopped (-> launched), and phases.

Pure transitions; the caller stores the result and writes the audit log. While an
experiment runs, what decides who sees what (weights, salt, unit, allocation,
eligibility, layer) is frozen: changing it would mix two assignments in one analysis.
Such a change is refused with a message that says how to make it: start the next phase
with the changed definition (which takes a new salt, so units are re-randomized, and a new
analysis window), or stop, edit and start again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flagd.experiments.layers import place
from flagd.experiments.model import Experiment, Layer

FROZEN = ("variants", "salt", "unit", "allocation_bp", "eligibility", "layer", "flag")
DESIGN = ("expected_units", "alpha", "planned")
"""The sequential test's design: fixed while a phase runs, like the assignment."""


class LifecycleError(Exception):
    """A transition or edit the experiment's state forbids; the message says what to do instead."""


def _slot(experiment: Experiment, layer: Layer | None, running_in_layer: Sequence[Experiment]) -> int | None:
    if experiment.layer is None:
        return None
    if layer is None:
        raise LifecycleError(
            f"experiment {experiment.key!r} names layer {experiment.layer!r}, which does not exist"
        )
    others = [e for e in running_in_layer if e.key != experiment.key]
    start = place(layer, others, experiment.allocation_bp)
    if isinstance(start, str):
        raise LifecycleError(f"experiment {experiment.key!r} cannot start: {start}")
    return start


def start(
    experiment: Experiment, salt: str, layer: Layer | None = None, running_in_layer: Sequence[Experiment] = ()
) -> Experiment:
    """draft -> running, phase 1 (or stopped -> running, the next phase), with a fresh salt and a layer slot."""
    if experiment.state not in ("draft", "stopped"):
        raise LifecycleError(
            f"experiment {experiment.key!r} is {experiment.state}; only a draft or a stopped experiment can start"
        )
    return replace(
        experiment,
        state="running",
        phase=experiment.phase + 1,
        salt=salt,
        slot_start=_slot(experiment, layer, running_in_layer),
    )


def edit(current: Experiment, proposed: Experiment) -> Experiment:
    """Apply an edit; a running experiment keeps its assignment (`FROZEN`) or the edit is refused."""
    if current.state == "running":
        changed = [
            name for name in FROZEN if name != "salt" and getattr(current, name) != getattr(proposed, name)
        ]
        if proposed.salt and proposed.salt != current.salt:
            changed.append("salt")
        design = [name for name in DESIGN if getattr(current, name) != getattr(proposed, name)]
        if design and not changed:
            raise LifecycleError(
                f"experiment {current.key!r} is running, so its {', '.join(design)} cannot change: the sequential "
                "test's design is fixed when a phase starts, which is what keeps daily looks valid; "
                + _how_to_change(current.key)
            )
        if changed:
            raise LifecycleError(
                f"experiment {current.key!r} is running, so its {', '.join(changed)} cannot change: that would mix "
                "two assignments in one analysis; " + _how_to_change(current.key)
            )
    if current.state == "launched":
        raise LifecycleError(_launched(current.key))
    return replace(
        proposed, state=current.state, phase=current.phase, salt=current.salt, slot_start=current.slot_start
    )


def _how_to_change(key: str) -> str:
    """The ways that work to change what a running experiment freezes."""
    return (
        f"start a new phase with the change (`flagd experiments new-phase {key} --file FILE`, or "
        f'POST /v1/admin/experiments/{key}/new-phase with the body {{"definition": ...}}), or stop it '
        f"(`flagd experiments stop {key}`), apply the change and start it again"
    )


def _launched(key: str) -> str:
    return f"experiment {key!r} was launched; create a new experiment to test again"


def not_running(key: str, state: str) -> LifecycleError:
    """The refusal of a new phase of an experiment that is not running, with what to do instead."""
    if state == "launched":
        return LifecycleError(_launched(key))
    return LifecycleError(
        f"experiment {key!r} is {state}; only a running experiment has phases: apply the change "
        f"(`flagd apply FILE`) and start it (`flagd experiments start {key}`), which begins its next phase"
    )


def new_phase(
    current: Experiment,
    proposed: Experiment,
    salt: str,
    layer: Layer | None = None,
    running_in_layer: Sequence[Experiment] = (),
) -> Experiment:
    """A running experiment's next phase: the proposed definition, a new salt, a new analysis window."""
    if current.state != "running":
        raise not_running(current.key, current.state)
    return replace(
        proposed,
        state="running",
        phase=current.phase + 1,
        salt=salt,
        slot_start=_slot(proposed, layer, running_in_layer),
    )


def stop(current: Experiment) -> Experiment:
    if current.state != "running":
        raise LifecycleError(
            f"experiment {current.key!r} is {current.state}; only a running experiment can stop"
        )
    return replace(current, state="stopped", slot_start=None)


def launch(
    current: Experiment, variant: str, flag_definition: dict[str, Any]
) -> tuple[Experiment, dict[str, Any]]:
    """Stop the experiment and make `variant` the flag's default for everyone: (experiment, new flag definition)."""
    if current.state not in ("running", "stopped"):
        raise LifecycleError(
            f"experiment {current.key!r} is {current.state}; launch a running or stopped experiment"
        )
    names = [name for name, _ in current.variants]
    if variant not in names:
        raise LifecycleError(
            f"{variant!r} is not a variant of experiment {current.key!r}; choose one of {', '.join(names)}"
        )
    launched_flag = {**flag_definition, "defaultVariant": variant}
    launched_flag.pop("targeting", None)  # everyone gets the winner, as the launch decision says
    return replace(current, state="launched", slot_start=None), launched_flag
