"""Making, cancelling and executing schedules, each in the caller's transaction.

A schedule is checked when it is made (its target exists; an `update_flag` definition is validated as a
PUT of the flag would be, and pinned to the flag's version) and again when it runs: the change goes through
the same services as a change by hand (`FlagService`, `ExperimentLifecycle`), audited under the actor
`schedule:<id>`. A change refused then (the flag changed since an `update_flag` was scheduled, or deleted,
the experiment cannot start or stop, the definition no longer fits the set) leaves nothing behind (a
savepoint) and the schedule fails with that reason; either way the schedule's new status, its own audit
entry and its `schedule.executed` notification commit with the change.
"""

from __future__ import annotations

from typing import Any, Final, cast

import asyncpg

from flagd.config.audit import AuditRepository
from flagd.config.experiment_lifecycle import ExperimentLifecycle
from flagd.config.repository import ConfigRepository
from flagd.config.service import FlagService
from flagd.errors import Conflict, FlagdError, NotFound, ServiceUnavailable
from flagd.notify.outbox import enqueue
from flagd.schedules.model import Request, Schedule, Status, on_flag
from flagd.schedules.repository import ScheduleRepository
from flagd.storage.types import Connection

MAX_PENDING: Final = 10_000
"""Pending schedules at most, so a loop of requests cannot fill the table."""


class ScheduleService:
    def __init__(self, conn: Connection, actor: str) -> None:
        self._conn = conn
        self._actor = actor
        self._schedules = ScheduleRepository(conn)
        self._audit = AuditRepository(conn)

    async def create(self, request: Request) -> Schedule:
        flag_version = await self._check_target(request)
        pending = await self._conn.fetchval("SELECT count(*) FROM schedules WHERE status = 'pending'")
        if pending >= MAX_PENDING:
            raise Conflict(
                f"{pending} schedules are pending, the most there may be; cancel some first",
                code="too_many_schedules",
            )
        schedule = await self._schedules.insert(request, flag_version, self._actor)
        await self._audit.record(
            actor=self._actor,
            action="create",
            entity="schedule",
            key=str(schedule.id),
            before=None,
            after=_described(schedule),
            config_version=None,
        )
        return schedule

    async def cancel(self, schedule_id: int) -> Schedule:
        cancelled = await self._schedules.cancel(schedule_id, self._actor)
        if cancelled is None:
            existing = await self._schedules.get(schedule_id)
            if existing is None:
                raise NotFound(f"schedule {schedule_id} does not exist", code="schedule_not_found")
            raise Conflict(
                f"schedule {schedule_id} is {existing.status}, not pending; only a pending schedule can be "
                "cancelled",
                code="schedule_not_pending",
            )
        await self._audit.record(
            actor=self._actor,
            action="cancel",
            entity="schedule",
            key=str(schedule_id),
            before={"status": "pending"},
            after={"status": "cancelled"},
            config_version=None,
        )
        return cancelled

    async def _check_target(self, request: Request) -> int | None:
        """Refuse a schedule that could not run on the set as it is; the version an update is pinned to."""
        if request.action == "update_flag":
            existing = await FlagService(self._conn, self._actor).check_update(
                request.target, request.definition
            )
            return existing.version
        if on_flag(request.action):
            if await ConfigRepository(self._conn).get_flag(request.target) is None:
                raise NotFound(f'flag "{request.target}" does not exist', code="flag_not_found")
            return None
        stored = await ConfigRepository(self._conn).load()
        if request.target not in stored.experiments:
            raise NotFound(f'experiment "{request.target}" does not exist', code="experiment_not_found")
        return None


async def execute(conn: Connection, schedule: Schedule, executed_by: str) -> Schedule:
    """Run the claimed `schedule` in the caller's transaction: its change, or its failure, with its status,
    audit entry and notification. An error that is no refusal of the change (the database failing) is
    raised, so the transaction rolls back and the schedule stays pending for the next claim."""
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        async with conn.transaction():  # a savepoint: a refused change leaves nothing behind
            result = await _change(conn, schedule)
    except ServiceUnavailable:
        raise
    except FlagdError as exc:
        error = exc.message
    return await _finish(conn, schedule, executed_by, result, error)


async def give_up(conn: Connection, schedule: Schedule, executed_by: str, reason: str) -> Schedule:
    """Fail `schedule` without its change, in the caller's transaction: it could not be executed."""
    return await _finish(conn, schedule, executed_by, None, reason)


async def _finish(
    conn: Connection, schedule: Schedule, executed_by: str, result: dict[str, Any] | None, error: str | None
) -> Schedule:
    status: Status = "executed" if error is None else "failed"
    finished = await ScheduleRepository(conn).finish(
        schedule.id, status, result=result, error=error, executed_by=executed_by
    )
    outcome = {"status": status, "result": result, "error": error}
    await AuditRepository(conn).record(
        actor=schedule.actor,
        action="execute",
        entity="schedule",
        key=str(schedule.id),
        before={"status": "pending"},
        after={**_described(schedule), **outcome},
        config_version=result.get("configVersion") if result else None,
    )
    await enqueue(
        cast(asyncpg.Connection, conn),  # a pooled connection proxies one
        "schedule.executed",
        schedule.target,
        {
            "schedule": schedule.id,
            "action": schedule.action,
            "target": schedule.target,
            "dueAt": schedule.due_at.isoformat(),
            **outcome,
        },
    )
    return finished


async def _change(conn: Connection, schedule: Schedule) -> dict[str, Any]:
    if not on_flag(schedule.action):
        lifecycle = ExperimentLifecycle(conn, schedule.actor)
        return await lifecycle.transition(
            schedule.target, "start" if schedule.action == "start_experiment" else "stop"
        )
    config = ConfigRepository(conn)
    await config.load(for_update=True)  # the config lock first, as every writer takes it
    existing = await config.get_flag(schedule.target)
    if existing is None:
        raise NotFound(
            f'flag "{schedule.target}" was deleted after this was scheduled', code="flag_not_found"
        )
    if schedule.action == "update_flag":
        if existing.version != schedule.flag_version:
            raise Conflict(
                f'flag "{schedule.target}" is at version {existing.version}, not version '
                f"{schedule.flag_version} as when this was scheduled: it changed since, and the scheduled "
                "definition would overwrite that change; schedule the change again on the flag as it is now",
                code="schedule_outdated",
            )
        definition = schedule.definition
    else:
        state = "ENABLED" if schedule.action == "enable_flag" else "DISABLED"
        if existing.definition.get("state") == state:
            return {"changed": False, "flagVersion": existing.version, "configVersion": None}
        definition = {**existing.definition, "state": state}
    record = await FlagService(conn, schedule.actor).update_flag(
        schedule.target, definition, existing.version
    )
    changed = record.version != existing.version
    version = await config.version() if changed else None
    return {"changed": changed, "flagVersion": record.version, "configVersion": version}


def _described(schedule: Schedule) -> dict[str, Any]:
    return {
        "action": schedule.action,
        "target": schedule.target,
        "dueAt": schedule.due_at.isoformat(),
        "definition": schedule.definition,
        "flagVersion": schedule.flag_version,
    }
