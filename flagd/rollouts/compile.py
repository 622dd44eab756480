"""A rollout compiled into its flag's targeting, in the flagd format, so every flagd evaluator assigns alike.

While the rollout is active (running, paused or held), at share s basis points:

    {"if": [
        {"and": [<the unit is present>, <eligibility>]},
        {"fractional": [{"cat": ["<salt>:rollout:", <unit>]}, [<new>, s], [<replaced>, 10000 - s]]},
        <the flag's own targeting, or null for its default variant>
    ]}

The bucket key and the total weight (10,000) never change during the rollout, so each unit keeps its
bucket; the new variant always holds the low buckets [0, s), so widening s never moves a unit back
to the replaced variant. The served metadata names the experiment `rollout:<key>` and the phase of the
current stage, so SDKs and OFREP record exposures exactly as for an experiment
(flagd_sdk.evaluation.exposure). Rolled back: eligible units get the replaced variant at once (no split,
no exposures); completed: they get the new variant.
"""

from __future__ import annotations

from typing import Any

from flagd.experiments.compile import unmarked
from flagd.experiments.model import BASIS_POINTS
from flagd.rollouts.model import Rollout

UNIT = "targetingKey"


def eligible(rollout: Rollout) -> dict[str, Any]:
    conditions: list[Any] = [{"!": {"in": [{"var": UNIT}, [None, ""]]}}]
    if rollout.eligibility is not None:
        conditions.append(rollout.eligibility)
    return {"and": conditions}


def split(rollout: Rollout, share_bp: int) -> dict[str, Any]:
    return {
        "fractional": [
            {"cat": [f"{rollout.salt}:rollout:", {"var": UNIT}]},
            [rollout.variant, share_bp],
            [rollout.replaces, BASIS_POINTS - share_bp],
        ]
    }


def rollout_definition(
    definition: dict[str, Any], rollout: Rollout, state: str, share_bp: int, phase: int
) -> dict[str, Any]:
    """The flag as served with its rollout in `state` at `share_bp`, recording exposures in `phase`."""
    own = definition.get("targeting")
    fallback = own if own not in (None, {}) else None
    served = dict(unmarked(definition))
    if state == "rolled_back":
        served["targeting"] = {"if": [eligible(rollout), rollout.replaces, fallback]}
        return served
    if state == "completed" or share_bp >= BASIS_POINTS:
        served["targeting"] = {"if": [eligible(rollout), rollout.variant, fallback]}
        return served
    served["targeting"] = {"if": [eligible(rollout), split(rollout, share_bp), fallback]}
    served["metadata"] = {
        **(served.get("metadata") or {}),
        "experimentKey": rollout.experiment,
        "experimentPhase": phase,
        "experimentUnit": UNIT,
        "layer": "",
    }
    return served
