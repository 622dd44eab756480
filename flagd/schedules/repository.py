"""The `schedules` table; the caller owns the transaction.

`claim_due` locks one due, pending row with `FOR UPDATE SKIP LOCKED`: another executor's transaction skips
it, and once this one commits the row is no longer pending, so it is never claimed twice. A transaction
that dies (its process killed, its connection lost) releases the row still pending, for the next claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from flagd.schedules.model import Request, Schedule, Status
from flagd.storage.types import Connection


class ScheduleRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, request: Request, flag_version: int | None, created_by: str) -> Schedule:
        row = await self._conn.fetchrow(
            "INSERT INTO schedules (action, target, definition, flag_version, due_at, created_by) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            request.action,
            request.target,
            request.definition,
            flag_version,
            request.due_at,
            created_by,
        )
        assert row is not None
        return _schedule(row)

    async def get(self, schedule_id: int) -> Schedule | None:
        row = await self._conn.fetchrow("SELECT * FROM schedules WHERE id = $1", schedule_id)
        return _schedule(row) if row is not None else None

    async def page(self, *, status: str | None, before_id: int | None, limit: int) -> list[Schedule]:
        rows = await self._conn.fetch(
            "SELECT * FROM schedules WHERE ($1::text IS NULL OR status = $1) "
            "AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            status,
            before_id,
            limit,
        )
        return [_schedule(row) for row in rows]

    async def claim_due(self) -> Schedule | None:
        """The oldest due pending schedule no other transaction holds, locked until this one ends."""
        row = await self._conn.fetchrow(
            "SELECT * FROM schedules WHERE status = 'pending' AND due_at <= now() "
            "ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        return _schedule(row) if row is not None else None

    async def finish(
        self,
        schedule_id: int,
        status: Status,
        *,
        result: dict[str, Any] | None,
        error: str | None,
        executed_by: str,
    ) -> Schedule:
        row = await self._conn.fetchrow(
            "UPDATE schedules SET status = $2, result = $3, error = $4, executed_at = now(), executed_by = $5 "
            "WHERE id = $1 AND status = 'pending' RETURNING *",
            schedule_id,
            status,
            result,
            error,
            executed_by,
        )
        assert row is not None, "a claimed schedule is pending until its transaction ends"
        return _schedule(row)

    async def count_attempt(self, schedule_id: int) -> int:
        """One more execution of a pending schedule that failed for another reason than its change."""
        attempts: int | None = await self._conn.fetchval(
            "UPDATE schedules SET attempts = attempts + 1 WHERE id = $1 AND status = 'pending' RETURNING attempts",
            schedule_id,
        )
        return attempts or 0

    async def cancel(self, schedule_id: int, cancelled_by: str) -> Schedule | None:
        """Cancel a pending schedule (waiting for an executor that holds it); None when it is not pending."""
        row = await self._conn.fetchrow(
            "UPDATE schedules SET status = 'cancelled', cancelled_at = now(), cancelled_by = $2 "
            "WHERE id = $1 AND status = 'pending' RETURNING *",
            schedule_id,
            cancelled_by,
        )
        return _schedule(row) if row is not None else None

    async def now(self) -> datetime:
        """The database's clock: the one due times are compared with."""
        moment: datetime = await self._conn.fetchval("SELECT now()")
        return moment


def _schedule(row: asyncpg.Record) -> Schedule:
    return Schedule(
        id=row["id"],
        action=row["action"],
        target=row["target"],
        definition=row["definition"],
        flag_version=row["flag_version"],
        due_at=row["due_at"],
        status=row["status"],
        result=row["result"],
        error=row["error"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        executed_at=row["executed_at"],
        executed_by=row["executed_by"],
        cancelled_at=row["cancelled_at"],
        cancelled_by=row["cancelled_by"],
    )
