"""Whether an evaluation is an exposure: the one rule, for the SDK and the server alike.

A flag that serves a running experiment has targeting compiled by the server in this shape
(flagd.experiments.compile), and metadata that names the experiment:

    "targeting": {"if": [<in the experiment>, <the experiment's split>, <the author's own targeting>]}
    "metadata": {"experimentKey": ..., "experimentPhase": ..., "experimentUnit": ..., "layer": ...}

<in the experiment> holds exactly when the unit is in the experiment: it has a unit, is
eligible, and falls in the experiment's traffic (its allocation, or its slot of the layer,
which leaves out the holdout and the other experiments' slots). An evaluation is an exposure
exactly when the flag resolved through the split, which is when the evaluation succeeded from
a split (reason SPLIT) and that condition held. Reason SPLIT alone is not enough: the author's
own targeting may be a `fractional` too. The condition alone is not enough either: a disabled
or broken flag holds no assignment.

The server strips these metadata names from flags it does not compile an experiment into, so
the metadata is a reliable mark; both sides read it from the same served document.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flagd_sdk.evaluation.coercion import truthy
from flagd_sdk.evaluation.loader import compile_rule
from flagd_sdk.evaluation.types import Compiled, Reason, ResolutionDetails
from flagd_sdk.units import unit_text

logger = logging.getLogger(__name__)

EXPERIMENT_METADATA = ("experimentKey", "experimentPhase", "experimentUnit")
"""The metadata names that say a served flag's targeting is a compiled experiment."""

MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_NAME = 64
MAX_ATTRIBUTE_TEXT = 256
"""An exposure keeps at most MAX_ATTRIBUTES of its context's top-level scalar members (by name, in order), each
named with 1 to MAX_ATTRIBUTE_NAME characters: text of at most MAX_ATTRIBUTE_TEXT characters, booleans, finite
numbers (integers within 64 bits). Others are left out, never refused: the server's limits on exposure
attributes, so an exposure the SDK sends and one the server records from an OFREP context carry the same."""


@dataclass(frozen=True, slots=True)
class Exposure:
    experiment: str
    phase: int
    unit: str
    variant: str
    attributes: dict[str, Any] = field(default_factory=dict)
    """The context's attributes that segments break results down by (see MAX_ATTRIBUTES)."""


def exposure_attributes(context: Mapping[str, Any]) -> dict[str, Any]:
    """The members of an evaluation context an exposure keeps: scalars within bounds, not the targeting key."""
    kept: dict[str, Any] = {}
    for name in sorted(k for k in context if isinstance(k, str)):
        if len(kept) >= MAX_ATTRIBUTES:
            break
        value = context[name]
        if name == "targetingKey" or not 1 <= len(name) <= MAX_ATTRIBUTE_NAME or "\x00" in name:
            continue
        if _plain(value):
            kept[name] = value
    return kept


def _plain(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_ATTRIBUTE_TEXT and "\x00" not in value
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class ServedExperiment:
    """The running experiment a served flag carries, read once per flag set."""

    key: str
    phase: int
    unit: str
    """The context attribute (a dotted path) that is the unit."""
    assigned: Compiled
    """The served targeting's first condition: the unit is in the experiment."""


def served_experiment(flag_key: str, flag: Any, evaluators: Mapping[str, Any]) -> ServedExperiment | None:
    """The experiment a served flag definition carries, or None (also when it cannot be read: logged)."""
    metadata = flag.get("metadata") if isinstance(flag, Mapping) else None
    if not isinstance(metadata, Mapping) or "experimentKey" not in metadata:
        return None
    key, phase, unit = (metadata.get(name) for name in EXPERIMENT_METADATA)
    targeting = flag.get("targeting")
    branches = targeting.get("if") if isinstance(targeting, Mapping) else None
    if (
        not isinstance(key, str)
        or type(phase) is not int
        or not isinstance(unit, str)
        or not isinstance(branches, list)
        or len(branches) != 3
    ):
        logger.warning("flag %r: its experiment is not in the served form; no exposures", flag_key)
        return None
    try:
        condition = compile_rule(branches[0], evaluators=evaluators, flag_key=flag_key)
    except Exception as exc:  # a flag that cannot be read serves defaults; it never breaks the caller
        logger.warning("flag %r: its experiment condition cannot be read (%s); no exposures", flag_key, exc)
        return None
    return ServedExperiment(key, phase, unit, condition)


def served_experiments(document: Mapping[str, Any]) -> dict[str, ServedExperiment]:
    """By flag key, the running experiment of each flag of a served document that carries one."""
    evaluators = document.get("$evaluators") or {}
    flags = document.get("flags") or {}
    found = {}
    for key, flag in flags.items():
        experiment = served_experiment(key, flag, evaluators)
        if experiment is not None:
            found[key] = experiment
    return found


def exposure(
    experiment: ServedExperiment | None, details: ResolutionDetails, context: Mapping[str, Any]
) -> Exposure | None:
    """The exposure that the evaluation `details` of the experiment's flag in `context` is, or None."""
    if experiment is None or details.reason is not Reason.SPLIT or details.variant is None:
        return None
    try:
        assigned = truthy(experiment.assigned(context))  # JsonLogic's truthiness, as `if` branches
    except Exception:  # a rule that fails at run time assigned nothing (the flag's evaluation failed too)
        return None
    if not assigned:
        return None
    unit = unit_text(context, experiment.unit)
    if unit is None:
        return None
    return Exposure(experiment.key, experiment.phase, unit, details.variant, exposure_attributes(context))
