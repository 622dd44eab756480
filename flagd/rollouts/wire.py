"""Rollouts as flagd's JSON API writes them (camelCase): the API and the pages read these."""

from __future__ import annotations

from typing import Any

from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.serving import RolloutState
from flagd.storage.types import Connection


def summary(row: RolloutState) -> dict[str, Any]:
    rollout = row.rollout
    return {
        "key": row.key,
        "flag": rollout.flag,
        "variant": rollout.variant,
        "replaces": rollout.replaces,
        "state": row.state,
        "stage": row.stage,
        "stages": len(rollout.stages),
        "percent": row.share_bp / 100,
        "experiment": rollout.experiment,
        "phase": row.phase,
        "stageStartedAt": row.stage_started_at.isoformat(),
        "version": row.version,
    }


async def detail(conn: Connection, row: RolloutState) -> dict[str, Any]:
    """A rollout with its definition, share over time, latest look and transition log."""
    repository = RolloutRepository(conn)
    transitions = await repository.transitions(row.key)
    look, looked_at = await repository.last_look(row.key)
    return {
        **summary(row),
        "definition": row.definition,
        "shareOverTime": [{"at": t.at.isoformat(), "percent": t.share_bp / 100} for t in transitions],
        "lastLook": look,
        "lastLookAt": looked_at.isoformat() if looked_at else None,
        "transitions": [t.to_json() for t in transitions],
    }
