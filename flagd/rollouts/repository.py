"""Rollouts and their transition log in PostgreSQL; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flagd.rollouts.serving import RolloutState
from flagd.storage.types import Connection

_GET = (
    "SELECT key, definition, state, stage, share_bp, phase, stage_started_at, version, created_at "
    "FROM rollouts WHERE key = $1"
)
_GET_FOR_UPDATE = _GET + " FOR UPDATE"


@dataclass(frozen=True, slots=True)
class Transition:
    at: datetime
    actor: str
    action: str
    state: str
    stage: int
    share_bp: int
    reason: str
    statistics: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "state": self.state,
            "stage": self.stage,
            "percent": self.share_bp / 100,
            "reason": self.reason,
            "statistics": self.statistics,
        }


class RolloutRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, key: str, *, for_update: bool = False) -> RolloutState | None:
        row = await self._conn.fetchrow(_GET_FOR_UPDATE if for_update else _GET, key)
        return _state(row) if row else None

    async def all(self, state: str | None = None) -> list[RolloutState]:
        rows = await self._conn.fetch(
            "SELECT key, definition, state, stage, share_bp, phase, stage_started_at, version, created_at "
            "FROM rollouts WHERE ($1::text IS NULL OR state = $1) ORDER BY created_at, key",
            state,
        )
        return [_state(row) for row in rows]

    async def active_on(self, flag: str) -> str | None:
        found: str | None = await self._conn.fetchval(
            "SELECT key FROM rollouts WHERE flag = $1 AND state IN ('running', 'paused', 'held')", flag
        )
        return found

    async def insert(self, key: str, definition: dict[str, Any], share_bp: int, phase: int) -> RolloutState:
        row = await self._conn.fetchrow(
            "INSERT INTO rollouts (key, flag, definition, share_bp, salt, phase) VALUES ($1, $2, $3, $4, $5, $6) "
            "RETURNING key, definition, state, stage, share_bp, phase, stage_started_at, version, created_at",
            key,
            definition["flag"],
            definition,
            share_bp,
            definition["salt"],
            phase,
        )
        assert row is not None
        return _state(row)

    async def move(
        self,
        key: str,
        version: int,
        *,
        state: str,
        stage: int,
        share_bp: int,
        phase: int,
        new_stage: bool,
        at: datetime | None = None,
    ) -> RolloutState | None:
        """Set the rollout's state if it is still at `version` (else None: someone else moved it first); a new
        stage starts `at` (the monitor's clock), or now."""
        row = await self._conn.fetchrow(
            "UPDATE rollouts SET state = $3, stage = $4, share_bp = $5, phase = $6, version = version + 1, "
            "updated_at = now(), stage_started_at = CASE WHEN $7 THEN coalesce($8, now()) ELSE stage_started_at END "
            "WHERE key = $1 AND version = $2 "
            "RETURNING key, definition, state, stage, share_bp, phase, stage_started_at, version, created_at",
            key,
            version,
            state,
            stage,
            share_bp,
            phase,
            new_stage,
            at,
        )
        return _state(row) if row else None

    async def log(self, moved: RolloutState, actor: str, action: str, reason: str, statistics: Any) -> None:
        await self._conn.execute(
            "INSERT INTO rollout_transitions (rollout, version, actor, action, state, stage, share_bp, reason, "
            "statistics) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            moved.key,
            moved.version,
            actor,
            action,
            moved.state,
            moved.stage,
            moved.share_bp,
            reason,
            statistics,
        )

    async def transitions(self, key: str, limit: int = 200) -> list[Transition]:
        rows = await self._conn.fetch(
            "SELECT at, actor, action, state, stage, share_bp, reason, statistics FROM rollout_transitions "
            "WHERE rollout = $1 ORDER BY id DESC LIMIT $2",
            key,
            limit,
        )
        return [Transition(*row) for row in reversed(rows)]

    async def record_look(self, key: str, version: int, look: Any) -> None:
        await self._conn.execute(
            "UPDATE rollouts SET last_look = $3, last_look_at = now() WHERE key = $1 AND version = $2",
            key,
            version,
            look,
        )

    async def last_look(self, key: str) -> tuple[Any, datetime | None]:
        row = await self._conn.fetchrow("SELECT last_look, last_look_at FROM rollouts WHERE key = $1", key)
        return (row["last_look"], row["last_look_at"]) if row else (None, None)


def _state(row: asyncpg.Record) -> RolloutState:
    return RolloutState(
        row["key"],
        row["definition"],
        row["state"],
        row["stage"],
        row["share_bp"],
        row["phase"],
        row["stage_started_at"],
        row["version"],
        row["created_at"],
    )
