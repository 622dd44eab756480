"""The schedule executor: a background task per worker that runs due schedules, exactly once.

Every FLAGD_SCHEDULES_POLL_SECONDS (and at once when the worker starts, so schedules that fell due while
no server ran are not left waiting) it claims due schedules one at a time, each in a transaction of its
own that holds the claimed row (`FOR UPDATE SKIP LOCKED`: other workers and hosts skip it) and makes the
change, its audit entries, the schedule's new status and its notification, and commits them together;
at most FLAGD_SCHEDULES_BATCH per round. A transaction that fails or dies (the database down, the process
killed) commits nothing and leaves the schedule pending for the next claim, here or elsewhere. Each
transaction is bounded by FLAGD_SCHEDULES_TIMEOUT_SECONDS (its statements and the locks it waits for).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import asyncpg

from flagd.schedules.model import Schedule
from flagd.schedules.repository import ScheduleRepository
from flagd.schedules.service import execute, give_up
from flagd.settings import Settings
from flagd.storage.types import Connection
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Executions of one schedule that may fail for another reason than its change before it is failed."""


class ScheduleExecutor:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, on_executed: Callable[[], Awaitable[None]]
    ) -> None:
        self._pool = pool
        self._interval = settings.schedules_poll_seconds
        self._batch = settings.schedules_batch
        self._timeout_ms = int(settings.schedules_timeout_seconds * 1000)
        self._on_executed = on_executed
        """Called after each commit (the worker reloads its config; the others follow on NOTIFY)."""
        self._name = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flagd-schedule-executor")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def run_once(self) -> list[Schedule]:
        """One round: the schedules this worker executed (or failed), at most the batch size."""
        done: list[Schedule] = []
        async with self._pool.acquire() as conn:
            while len(done) < self._batch:
                claimed: Schedule | None = None
                try:
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL statement_timeout = {self._timeout_ms}")
                        await conn.execute(f"SET LOCAL lock_timeout = {self._timeout_ms}")
                        claimed = await ScheduleRepository(conn).claim_due()
                        if claimed is None:
                            break
                        finished = await execute(conn, claimed, self._name)
                except Exception as exc:
                    if claimed is not None and not conn.is_closed():
                        await self._count_failure(conn, claimed, exc)
                    raise
                done.append(finished)
                await self._on_executed()
                logger.info(
                    "schedule %d (%s %s) %s%s",
                    finished.id,
                    finished.action,
                    finished.target,
                    finished.status,
                    f": {finished.error}" if finished.error else "",
                )
        return done

    async def _count_failure(self, conn: Connection, schedule: Schedule, exc: Exception) -> None:
        """Count the failed attempt; past MAX_ATTEMPTS the schedule fails with the error, so it cannot hold
        up the schedules due after it."""
        async with conn.transaction():
            attempts = await ScheduleRepository(conn).count_attempt(schedule.id)
            if attempts >= MAX_ATTEMPTS:
                reason = f"the server failed to execute it {attempts} times; the last error: {exc}"
                await give_up(conn, schedule, self._name, reason)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except (
                Exception
            ) as exc:  # the database may be down; the schedule stays pending, retried next round
                logger.warning("executing due schedules failed, will retry: %s", exc)
            await asyncio.sleep(self._interval)
