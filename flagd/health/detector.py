"""The data-health detector: a background task per worker that, every FLAGD_DATA_HEALTH_SECONDS, reduces the
hours of events that completed (FLAGD_DATA_HEALTH_GRACE_SECONDS after their end, for late batches) and judges
the latest of them.

Only one worker of all the servers on a database works at a time (a session advisory lock, skipped when held).
A round is bounded: it reduces at most FLAGD_DATA_HEALTH_MAX_HOURS hours, a day per statement, so a first start
(which reduces the baseline weeks) or a long outage catches up over several rounds, and it judges at most
FLAGD_DATA_HEALTH_MAX_EVENTS event names. All of it is SQL aggregates over the daily partitions and small
loops over the reductions; nothing heavy runs on the event loop. A failed round is logged and tried again.
Every worker refreshes the /metrics gauge of open alarms after each round, whoever did the work.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from flagd.health.alarms import Changes, apply_findings, open_counts, top_repeaters
from flagd.health.history import histories, judged_names
from flagd.health.judging import HOUR, judge_event
from flagd.health.progress import read_progress, save_progress
from flagd.health.reduce import forget_before, reduce_hours
from flagd.health.rules import BASELINE_WEEKS
from flagd.metrics import DATA_HEALTH_OPEN
from flagd.settings import Settings
from flagd.storage.types import Connection
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

DETECTOR_LOCK_KEY = 0x666C6167642D6468
"""The advisory lock of the detector ("flagd-dh")."""
KEPT = timedelta(days=7 * BASELINE_WEEKS + 2)
"""Reductions kept: the baseline weeks, the hours a stop spans, and a day."""
CHUNK = timedelta(days=1)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Round:
    reduced_until: datetime
    judged_hour: datetime | None
    changes: Changes | None


class DataHealthDetector:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._interval = settings.data_health_seconds
        self._grace = timedelta(seconds=settings.data_health_grace_seconds)
        self._max_hours = settings.data_health_max_hours
        self._max_events = settings.data_health_max_events
        self._task: asyncio.Task[None] | None = None
        self._gauged: set[tuple[str, str]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flagd-data-health")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def run_once(self, now: datetime | None = None) -> Round | None:
        """One round as of `now`; None when another worker holds the detector's lock."""
        moment = now or datetime.now(UTC)
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", DETECTOR_LOCK_KEY):
                return None
            try:
                return await self._round(conn, floor_hour(moment - self._grace), moment)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", DETECTOR_LOCK_KEY)

    async def refresh_gauge(self) -> None:
        async with self._pool.acquire() as conn:
            counts = await open_counts(conn)
        for labels in self._gauged - set(counts):
            DATA_HEALTH_OPEN.labels(*labels).set(0)
        for labels, n in counts.items():
            DATA_HEALTH_OPEN.labels(*labels).set(n)
        self._gauged |= set(counts)

    async def _round(self, conn: Connection, target: datetime, now: datetime) -> Round:
        progress = await read_progress(conn)
        reduced = progress.reduced_until if progress else target - KEPT + CHUNK
        judged = progress.judged_hour if progress else None
        budget = timedelta(hours=self._max_hours)
        while reduced < target and budget > timedelta(0):
            end = min(reduced + CHUNK, target, reduced + budget)
            async with conn.transaction():
                await reduce_hours(conn, reduced, end)
                await save_progress(conn, end, judged)
            budget -= end - reduced
            reduced = end
        if reduced > target - CHUNK:  # caught up (or the clock went back): keep the tables to the window
            await forget_before(conn, target - KEPT)
        hour = target - HOUR
        if reduced < target or (judged is not None and judged >= hour):
            return Round(reduced, judged, None)
        async with conn.transaction():
            changes = await self._judge(conn, hour, now)
            await save_progress(conn, reduced, hour)
        return Round(reduced, hour, changes)

    async def _judge(self, conn: Connection, hour: datetime, now: datetime) -> Changes:
        names = await judged_names(conn, hour, self._max_events)
        judged = [judge_event(history, hour) for history in await histories(conn, names, hour)]
        findings = [f for j in judged for f in j.findings]
        undecided = {identity for j in judged for identity in j.undecided}
        details: dict[tuple[str, str, str], dict[str, Any]] = {}
        for finding in findings:
            if finding.kind == "duplicate_burst":
                units = await top_repeaters(conn, finding.event, hour, hour + HOUR)
                details[finding.identity] = {"units": units}
        changes = await apply_findings(conn, findings, undecided, names, hour, now, details)
        for alarm in changes.opened:
            logger.warning("data health: %s", alarm.summary)
        return changes

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
                await self.refresh_gauge()
            except Exception as exc:  # the database may be down; the next round tries again
                logger.warning("data health round failed, will retry: %s", exc)
