"""A flag with its running experiment, compiled into the flag definition that is served.

The served rule, in the flagd format, so that any flagd-compatible evaluator assigns
exactly as the server does:

    {"if": [
        {"and": [<the unit is present>, <eligibility>, <the unit is in the experiment's traffic>]},
        {"fractional": [{"cat": ["<salt>:variant:", <unit>]}, [<variant>, <weight>], ...]},
        <the flag's own targeting, or null for its default variant>
    ]}

The unit's place in the experiment's traffic is a `fractional` on the layer's salt (which
layer slot, holdout or free range it falls in) or, outside a layer, on the experiment's
salt (in or out of the allocation). The variant split hashes the unit with the
experiment's salt, which changes with every phase, so a new phase re-randomizes; the
layer's hash does not, so units keep their slot. Units outside the experiment get the
flag's own targeting. The served metadata names the experiment (`experimentKey`,
`experimentPhase`, `experimentUnit`: the context attribute that is the unit, `layer`) so SDKs know an
evaluation is an exposure; the served targeting is `{"if": [<in the experiment>, <split>, <fallback>]}`,
and an evaluation is an exposure exactly when its first condition holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flagd.experiments.layers import buckets
from flagd.experiments.model import BASIS_POINTS, Experiment, Layer

EXPERIMENT_METADATA = ("experimentKey", "experimentPhase", "experimentUnit", "layer")


def unit_var(experiment: Experiment) -> dict[str, Any]:
    return {"var": experiment.unit}


def _bucket_key(prefix: str, experiment: Experiment) -> dict[str, Any]:
    return {"cat": [prefix, unit_var(experiment)]}


def _in_traffic(experiment: Experiment, layer: Layer | None, layer_running: Sequence[Experiment]) -> Any:
    if layer is not None:
        split = [[name, width] for name, width in buckets(layer, layer_running)]
        return {
            "==": [{"fractional": [_bucket_key(f"{layer.salt}:layer:", experiment), *split]}, experiment.key]
        }
    if experiment.allocation_bp >= BASIS_POINTS:
        return True
    allocation = [["in", experiment.allocation_bp], ["out", BASIS_POINTS - experiment.allocation_bp]]
    return {
        "==": [{"fractional": [_bucket_key(f"{experiment.salt}:allocation:", experiment), *allocation]}, "in"]
    }


def in_experiment(
    experiment: Experiment, layer: Layer | None, layer_running: Sequence[Experiment]
) -> dict[str, Any]:
    """The condition that a context is in the experiment: it has a unit, is eligible, and is in its traffic."""
    conditions: list[Any] = [{"!": {"in": [unit_var(experiment), [None, ""]]}}]
    if experiment.eligibility is not None:
        conditions.append(experiment.eligibility)
    conditions.append(_in_traffic(experiment, layer, layer_running))
    return {"and": conditions}


def exposure_guard(
    experiment: Experiment, layer: Layer | None, layer_running: Sequence[Experiment]
) -> dict[str, Any]:
    """A flag whose variant is "in" exactly when the experiment's flag assigns from its split: an exposure."""
    return {
        "state": "ENABLED",
        "variants": {"in": True, "out": False},
        "defaultVariant": "out",
        "targeting": {"if": [in_experiment(experiment, layer, layer_running), "in", "out"]},
    }


def experiment_rule(
    experiment: Experiment, fallback: Any, layer: Layer | None, layer_running: Sequence[Experiment]
) -> dict[str, Any]:
    """The targeting that puts eligible units of the experiment's traffic in its split, others in `fallback`."""
    split = {
        "fractional": [
            _bucket_key(f"{experiment.salt}:variant:", experiment),
            *[[variant, weight] for variant, weight in experiment.variants],
        ]
    }
    return {"if": [in_experiment(experiment, layer, layer_running), split, fallback]}


def served_definition(
    definition: dict[str, Any],
    experiment: Experiment | None,
    layer: Layer | None = None,
    layer_running: Sequence[Experiment] = (),
) -> dict[str, Any]:
    """The flag as served: its author's definition, with its running experiment compiled in."""
    if experiment is None or experiment.state != "running":
        return definition
    own = definition.get("targeting")
    fallback = own if own not in (None, {}) else None
    served = dict(definition)
    served["targeting"] = experiment_rule(experiment, fallback, layer, layer_running)
    served["metadata"] = {
        **(definition.get("metadata") or {}),
        "experimentKey": experiment.key,
        "experimentPhase": experiment.phase,
        "experimentUnit": experiment.unit,
        "layer": experiment.layer or "",
    }
    return served
