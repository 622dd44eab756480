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
`experimentPhase`, `experimentUnit`: the context attribute that is the unit, `layer`); from it and
the served targeting, `flagd_sdk.evaluation.exposure` decides which evaluations are exposures, for
the SDK and the server alike (those that resolve through the split).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flagd.experiments.layers import buckets
from flagd.experiments.model import BASIS_POINTS, Experiment, Layer
from flagd_sdk.evaluation.exposure import EXPERIMENT_METADATA


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
        return unmarked(definition)
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


def unmarked(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition served without an experiment, without the metadata names that mark one (an author's
    own `experimentKey` would otherwise make SDKs and the server read its targeting as an experiment)."""
    metadata = definition.get("metadata")
    if not isinstance(metadata, dict) or not any(name in metadata for name in EXPERIMENT_METADATA):
        return definition
    kept = {name: value for name, value in metadata.items() if name not in EXPERIMENT_METADATA}
    return {**definition, "metadata": kept}
