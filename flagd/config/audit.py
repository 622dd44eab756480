"""The audit log: who changed what, when, and how it looked before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import asyncpg

from flagd.storage.types import Connection

Action = Literal[
    "create",
    "update",
    "delete",
    "start",
    "stop",
    "new_phase",
    "launch",
    "advance",
    "hold",
    "pause",
    "resume",
    "rollback",
    "complete",
    "execute",
    "cancel",
]
Entity = Literal[
    "flag",
    "evaluator",
    "flag_set_metadata",
    "api_key",
    "metric",
    "layer",
    "experiment",
    "rollout",
    "schedule",
    "webhook",
    "event",
]
ENTITIES: tuple[Entity, ...] = get_args(Entity)
"""Every entity, in the order of `Entity` (one list, read by the audit endpoint's filter)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_key: str
    before: Any
    after: Any
    config_version: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "entity": self.entity,
            "key": self.entity_key,
            "before": self.before,
            "after": self.after,
            "configVersion": self.config_version,
        }


class AuditRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record(
        self,
        *,
        actor: str,
        action: Action,
        entity: Entity,
        key: str,
        before: Any,
        after: Any,
        config_version: int | None,
    ) -> None:
        await self._conn.execute(
            "INSERT INTO audit_log (actor, action, entity, entity_key, before, after, config_version) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            actor,
            action,
            entity,
            key,
            before,
            after,
            config_version,
        )

    async def page(
        self, *, entity: str | None, key: str | None, before_id: int | None, limit: int
    ) -> list[AuditEntry]:
        rows = await self._conn.fetch(
            "SELECT id, at, actor, action, entity, entity_key, before, after, config_version FROM audit_log "
            "WHERE ($1::text IS NULL OR entity = $1) AND ($2::text IS NULL OR entity_key = $2) "
            "AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            entity,
            key,
            before_id,
            limit,
        )
        return [_entry(row) for row in rows]


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        entity=row["entity"],
        entity_key=row["entity_key"],
        before=row["before"],
        after=row["after"],
        config_version=row["config_version"],
    )
