"""The flags as served: every running experiment compiled into its flag, from the stored rows.

Stored definitions are read with `flagd.experiments.reading` against the stored flags, and
combined with each experiment's lifecycle columns (state, phase, salt, slot). An experiment
that no longer reads cleanly (its flag or a variant was deleted, say) is not compiled: its
flag is served as its author wrote it, and the problem is reported, so a broken experiment
costs only itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from flagd.experiments.compile import served_definition, unmarked
from flagd.experiments.model import Experiment, State
from flagd.experiments.reading import read_sections
from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.problems import child


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """An experiment's lifecycle columns, as stored beside its definition."""

    state: State
    phase: int
    salt: str
    slot_start: int | None
    phase_started_at: str | None = None
    """When the current phase started (ISO 8601), or None before the first start."""
    first_phase: int | None = None
    """The first phase of this incarnation of the key (a key deleted and created again continues the
    numbering of the phases it ran before); None before the first start."""


def with_lifecycle(experiment: Experiment, lifecycle: Lifecycle) -> Experiment:
    """The experiment as its definition says, in the state its lifecycle columns record."""
    return replace(
        experiment,
        state=lifecycle.state,
        phase=lifecycle.phase,
        salt=lifecycle.salt,
        slot_start=lifecycle.slot_start,
    )


@dataclass(frozen=True, slots=True)
class Served:
    flags: dict[str, Any]
    problems: list[Problem]


def served_flags(
    flags: Mapping[str, Any],
    metrics: Mapping[str, Any],
    layers: Mapping[str, Any],
    experiments: Mapping[str, Any],
    lifecycles: Mapping[str, Lifecycle],
    evaluators: Mapping[str, Any] | None = None,
) -> Served:
    """The served flags, and the problems of experiments that could not be compiled."""
    problems: list[Problem] = []
    document = {
        "flags": flags,
        "metrics": metrics,
        "layers": layers,
        "experiments": experiments,
        "$evaluators": evaluators or {},
    }
    read: list[Problem] = []
    sections = read_sections(document, read, flags)
    known_layers = sections.layers
    # Stored metrics were checked when written, and do not stop an experiment from compiling.
    problems += [p for p in read if not p.path.startswith("metrics")]
    running: dict[str, Experiment] = {}
    for key, experiment in sections.experiments.items():
        lifecycle = lifecycles.get(key)
        if lifecycle is None or lifecycle.state != "running":
            continue
        running[key] = with_lifecycle(experiment, lifecycle)
    by_flag: dict[str, Experiment] = {}
    for experiment in running.values():
        if experiment.flag in by_flag:
            problems.append(
                Problem(
                    child("experiments", experiment.key),
                    f"flag {experiment.flag!r} already runs another experiment",
                )
            )
            continue
        if experiment.layer is not None and experiment.slot_start is None:
            problems.append(
                Problem(child("experiments", experiment.key), "is running in a layer without a slot")
            )
            continue
        by_flag[experiment.flag] = experiment
    served = {}
    for key, definition in flags.items():
        compiled = by_flag.get(key)
        if not isinstance(definition, dict):
            served[key] = definition  # the lenient load reports it
            continue
        if compiled is None:
            served[key] = unmarked(definition)
            continue
        layer = known_layers.get(compiled.layer) if compiled.layer is not None else None
        in_layer = [e for e in by_flag.values() if e.layer is not None and e.layer == compiled.layer]
        served[key] = served_definition(definition, compiled, layer, in_layer)
    return Served(served, problems)
