"""Rollouts as stored (definition and state columns), and their flags as served.

A rollout's definition is stored normalised when it starts (replaced variant, guardrail directions and
salt filled in), so reading it back needs no other section: `stored_rollout` trusts it. A flag that
serves a running experiment is not compiled with a rollout (starting one refuses that); a definition
that no longer fits its flag (a variant deleted) costs only its rollout, reported as a problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flagd.rollouts.compile import rollout_definition
from flagd.rollouts.model import ACTIVE, Guardrail, Rollout, Stage, State
from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.exposure import EXPERIMENT_METADATA
from flagd_sdk.evaluation.problems import child


@dataclass(frozen=True, slots=True)
class RolloutState:
    """A rollout's row: its normalised definition and where it is."""

    key: str
    definition: dict[str, Any]
    state: State
    stage: int
    share_bp: int
    phase: int
    stage_started_at: datetime
    version: int
    created_at: datetime | None = None

    @property
    def rollout(self) -> Rollout:
        return stored_rollout(self.key, self.definition)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def normalised(rollout: Rollout) -> dict[str, Any]:
    """The definition as stored: every default filled in, so it reads back the same whatever changes."""
    document: dict[str, Any] = {
        "flag": rollout.flag,
        "variant": rollout.variant,
        "replaces": rollout.replaces,
        "stages": [
            {
                "percent": s.share_bp / 100,
                "min_duration_seconds": s.min_duration_seconds,
                "min_units": s.min_units,
            }
            for s in rollout.stages
        ],
        "guardrails": [{"metric": g.metric, "direction": g.direction} for g in rollout.guardrails],
        "on_harm": rollout.on_harm,
        "alpha": rollout.alpha,
        "salt": rollout.salt,
    }
    if rollout.eligibility is not None:
        document["eligibility"] = rollout.eligibility
    return document


def stored_rollout(key: str, definition: Mapping[str, Any]) -> Rollout:
    return Rollout(
        key=key,
        flag=definition["flag"],
        variant=definition["variant"],
        replaces=definition["replaces"],
        stages=tuple(
            Stage(round(s["percent"] * 100), float(s["min_duration_seconds"]), int(s["min_units"]))
            for s in definition["stages"]
        ),
        guardrails=tuple(Guardrail(g["metric"], g["direction"]) for g in definition["guardrails"]),
        eligibility=definition.get("eligibility"),
        on_harm=definition["on_harm"],
        alpha=float(definition["alpha"]),
        salt=definition["salt"],
    )


def with_rollouts(
    served: dict[str, Any], rollouts: Mapping[str, RolloutState], problems: list[Problem]
) -> dict[str, Any]:
    """The served flags with every rollout that is not over compiled into its flag (one per flag)."""
    out = dict(served)
    for key, row in rollouts.items():
        try:
            rollout = row.rollout
        except (KeyError, TypeError, ValueError):
            problems.append(Problem(child("rollouts", key), "the stored rollout cannot be read; left out"))
            continue
        if not _current(row, rollouts):
            continue
        flag = out.get(rollout.flag)
        if not isinstance(flag, dict):
            problems.append(Problem(child("rollouts", key), f"its flag {rollout.flag!r} is gone; not served"))
            continue
        variants = flag.get("variants")
        if not isinstance(variants, dict) or not {rollout.variant, rollout.replaces} <= set(variants):
            problems.append(
                Problem(child("rollouts", key), "a variant it releases or replaces is gone; not served")
            )
            continue
        metadata = flag.get("metadata")
        if isinstance(metadata, dict) and any(name in metadata for name in EXPERIMENT_METADATA):
            problems.append(
                Problem(child("rollouts", key), f"flag {rollout.flag!r} runs an experiment; not served")
            )
            continue
        out[rollout.flag] = rollout_definition(flag, rollout, row.state, row.share_bp, row.phase)
    return out


def _current(row: RolloutState, rollouts: Mapping[str, RolloutState]) -> bool:
    """Whether `row` is what its flag serves: an active rollout, or the latest ended one of a flag with none
    active (a rolled-back one keeps its units on the replaced variant; a completed one on the new)."""
    if row.active:
        return True
    flag = row.definition.get("flag")
    others = [r for r in rollouts.values() if r.definition.get("flag") == flag and r.key != row.key]
    if any(r.active for r in others):
        return False
    latest = row.created_at or row.stage_started_at
    return all((r.created_at or r.stage_started_at) <= latest for r in others)
