"""Stored webhooks and their attempt log. The caller owns the transaction; the secret is read here to sign
with and is never part of a record's JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from flagd.notify.definitions import WebhookFields
from flagd.storage.types import Connection

_SELECT = (
    "SELECT id, name, url, kinds, secret, secret_env, slack, enabled, consecutive_failures, paused_until, "
    "created_at, updated_at FROM webhooks"
)
_RETURNING = (
    " RETURNING id, name, url, kinds, secret, secret_env, slack, enabled, consecutive_failures, paused_until, "
    "created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: UUID
    name: str
    url: str
    kinds: tuple[str, ...]
    secret: str | None
    """The generated secret (None when `secret_env` names it); never serialised."""
    secret_env: str | None
    slack: bool
    enabled: bool
    consecutive_failures: int
    paused_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "url": self.url,
            "kinds": list(self.kinds),
            "secretEnv": self.secret_env,
            "slack": self.slack,
            "enabled": self.enabled,
            "consecutiveFailures": self.consecutive_failures,
            "pausedUntil": self.paused_until.isoformat() if self.paused_until else None,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    notification_id: UUID
    kind: str
    attempt: int
    outcome: str
    status: int | None
    duration_ms: float
    error: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "notificationId": str(self.notification_id),
            "kind": self.kind,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "status": self.status,
            "durationMs": round(self.duration_ms, 3),
            "error": self.error,
            "at": self.at.isoformat(),
        }


class WebhookRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def create(self, webhook_id: UUID, fields: WebhookFields, secret: str | None) -> WebhookRecord:
        row = await self._conn.fetchrow(
            "INSERT INTO webhooks (id, name, url, kinds, secret, secret_env, slack, enabled) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)" + _RETURNING,
            webhook_id,
            fields.name,
            fields.url,
            list(fields.kinds or ()),
            secret,
            fields.secret_env,
            bool(fields.slack),
            fields.enabled is not False,
        )
        return _record(row)

    async def all(self, limit: int) -> list[WebhookRecord]:
        rows = await self._conn.fetch(_SELECT + " ORDER BY name LIMIT $1", limit)
        return [_record(row) for row in rows]

    async def count(self) -> int:
        count: int = await self._conn.fetchval("SELECT count(*) FROM webhooks")
        return count

    async def get(self, webhook_id: UUID, *, for_update: bool = False) -> WebhookRecord | None:
        query = _SELECT + " WHERE id = $1" + (" FOR UPDATE" if for_update else "")
        row = await self._conn.fetchrow(query, webhook_id)
        return _record(row) if row is not None else None

    async def find(self, name: str) -> WebhookRecord | None:
        row = await self._conn.fetchrow(_SELECT + " WHERE name = $1", name)
        return _record(row) if row is not None else None

    async def update(
        self, current: WebhookRecord, fields: WebhookFields, secret: str | None, secret_env: str | None
    ) -> WebhookRecord:
        """Write `fields` over `current`; the secret pair as given (exactly one of them set)."""
        row = await self._conn.fetchrow(
            "UPDATE webhooks SET name = $2, url = $3, kinds = $4, secret = $5, secret_env = $6, slack = $7, "
            "enabled = $8, updated_at = now(), "
            "consecutive_failures = CASE WHEN $9 THEN 0 ELSE consecutive_failures END, "
            # Re-enabled or pointed elsewhere: a fresh start, not the old receiver's backoff.
            "paused_until = CASE WHEN $9 THEN NULL ELSE paused_until END "
            "WHERE id = $1 RETURNING id, name, url, kinds, secret, secret_env, slack, enabled, "
            "consecutive_failures, paused_until, created_at, updated_at",
            current.id,
            fields.name if fields.name is not None else current.name,
            fields.url if fields.url is not None else current.url,
            list(fields.kinds if fields.kinds is not None else current.kinds),
            secret,
            secret_env,
            fields.slack if fields.slack is not None else current.slack,
            fields.enabled if fields.enabled is not None else current.enabled,
            fields.url not in (None, current.url) or (fields.enabled is True and not current.enabled),
        )
        return _record(row)

    async def delete(self, webhook_id: UUID) -> None:
        await self._conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)

    async def delivery_counts(self, webhook_id: UUID) -> dict[str, int]:
        rows = await self._conn.fetch(
            "SELECT state, count(*) AS n FROM webhook_deliveries WHERE webhook_id = $1 GROUP BY state",
            webhook_id,
        )
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        counts.update({row["state"]: row["n"] for row in rows})
        return counts

    async def attempts(self, webhook_id: UUID, limit: int) -> list[Attempt]:
        rows = await self._conn.fetch(
            "SELECT notification_id, kind, attempt, outcome, status, duration_ms, error, at "
            "FROM webhook_attempts WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2",
            webhook_id,
            limit,
        )
        return [Attempt(**dict(row)) for row in rows]

    async def log_attempt(self, webhook_id: UUID, attempt: Attempt, keep: int) -> None:
        """Add `attempt` to the webhook's log and drop all but its last `keep` entries."""
        await self._conn.execute(
            "WITH added AS (INSERT INTO webhook_attempts "
            "(webhook_id, notification_id, kind, attempt, outcome, status, duration_ms, error) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id) "
            "DELETE FROM webhook_attempts WHERE webhook_id = $1 AND id <= "
            "(SELECT id FROM webhook_attempts WHERE webhook_id = $1 ORDER BY id DESC OFFSET $9 - 1 LIMIT 1)",
            webhook_id,
            attempt.notification_id,
            attempt.kind,
            attempt.attempt,
            attempt.outcome,
            attempt.status,
            attempt.duration_ms,
            attempt.error,
            keep,
        )


def _record(row: asyncpg.Record | None) -> WebhookRecord:
    assert row is not None, "INSERT and UPDATE ... RETURNING of a row that exists return it"
    return WebhookRecord(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        kinds=tuple(row["kinds"]),
        secret=row["secret"],
        secret_env=row["secret_env"],
        slack=row["slack"],
        enabled=row["enabled"],
        consecutive_failures=row["consecutive_failures"],
        paused_until=row["paused_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
