"""The results watcher: every FLAGD_RESULTS_WATCH_SECONDS, running experiments' results compared with what
was seen of them before, and a notification written for each change (flagd.results.watch says which).

One worker of all the servers on a database watches at a time (a session advisory lock, skipped when
held: flagd.storage.locked_rounds). The results are computed in the worker's results processes
(flagd.results.pool), never on the event loop that answers evaluations; only the small observation
comes back. Per experiment, one
transaction locks its watched state, saves the new one and enqueues the notifications
(flagd.notify.outbox), so a change is notified exactly when its state commits, once.

Bounds: a round looks at most MAX_PER_ROUND experiments, the least recently watched first, and starts no
new one after ROUND_SECONDS; each look is bounded by the results pool's timeout. When the results
processes are busy with requests the round ends and the next tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from flagd.errors import FlagdError
from flagd.experiments.catalog import Catalog, CatalogEntry
from flagd.notify.outbox import enqueue
from flagd.results.jobs import Job
from flagd.results.pool import ResultsPool
from flagd.results.sql.watch import WatchRepository
from flagd.results.watch import Observation, step
from flagd.settings import Settings
from flagd.storage.locked_rounds import LockedRounds
from flagd.storage.types import Connection

logger = logging.getLogger(__name__)

WATCHER_LOCK_KEY = 0x666C6167642D7277
"""The advisory lock of the watcher ("flagd-rw")."""
MAX_PER_ROUND = 50
"""Experiments one round looks at; the others (watched longest ago last) wait for the next round."""
ROUND_SECONDS = 60.0
"""A round starts no new look after this long."""
BUSY_CODES = frozenset({"results_busy", "results_unavailable"})
"""Answers of the results pool that end the round: requests come first."""


class ResultsWatcher:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        catalog: Callable[[], Catalog],
        results: ResultsPool,
        worker_id: str,
    ) -> None:
        self._catalog = catalog
        """The worker's current catalog (the config watcher's snapshot holds it)."""
        self._results = results
        self._worker_id = worker_id
        self._interval = settings.results_watch_seconds
        self._rounds = LockedRounds(
            pool,
            WATCHER_LOCK_KEY,
            settings.results_watch_seconds,
            self._round,
            name="flagd-results-watcher",
            doing="watching experiments' results",
        )
        self._warmed = False
        """Whether this worker's results processes were started off the loop (the first look would block it)."""

    async def start(self) -> None:
        if self._interval > 0:
            await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def run_once(self) -> int | None:
        """One round; the notifications written, or None when another worker holds the watcher's lock."""
        return await self._rounds.run_once()

    async def _round(self, conn: Connection) -> int:
        catalog = self._catalog()
        repository = WatchRepository(conn)
        await repository.forget_others(list(catalog.entries))
        watched = await repository.last_watched()
        never = datetime.min.replace(tzinfo=UTC)
        running = sorted(
            (e for e in catalog.entries.values() if _watchable(e)),
            key=lambda e: (watched.get(e.key, never), e.key),
        )
        if running and not self._warmed:
            await self._results.warm_off_loop()
            self._warmed = True
        deadline = time.monotonic() + ROUND_SECONDS
        written = 0
        for entry in running[:MAX_PER_ROUND]:
            if time.monotonic() > deadline:
                break
            job = Job("watch", now=datetime.now(UTC), config_version=catalog.version, key=entry.key)
            try:
                seen = await self._results.observe(job)
            except FlagdError as exc:
                if exc.code in BUSY_CODES:
                    logger.info("results processes busy; the watcher's round ends early: %s", exc.message)
                    break
                logger.warning("watching experiment %s failed, will retry: %s", entry.key, exc.message)
                continue
            written += await self._compare(conn, seen)
        return written

    async def _compare(self, conn: Connection, seen: Observation) -> int:
        """Save what was seen and enqueue its notifications, in one transaction; how many were written."""
        repository = WatchRepository(conn)
        async with conn.transaction():
            stored = await repository.lock(seen.experiment)
            if stored is not None and stored[1] >= seen.as_of:
                return 0  # a newer look (another host's) committed meanwhile
            state, notices = step(stored[0] if stored is not None else None, seen)
            await repository.save(seen.experiment, state, seen.as_of, self._worker_id)
            for notice in notices:
                await enqueue(conn, notice.kind, seen.experiment, notice.payload)
        if notices:
            logger.info("experiment %s: %s", seen.experiment, ", ".join(notice.kind for notice in notices))
        return len(notices)


def _watchable(entry: CatalogEntry) -> bool:
    return entry.plan is not None and entry.state == "running" and entry.phase >= 1
