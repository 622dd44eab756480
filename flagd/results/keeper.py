"""The results keeper: a background task per worker that keeps running experiments' roll-ups and past
days up to date (`ResultsService.keep_up`) every FLAGD_RESULTS_ROLLUP_SECONDS.

Only one worker of all the servers on a database keeps up at a time (a session advisory lock, skipped
when held), and a failed round (the database down, say) is logged and tried again next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from flagd.experiments.catalog import Catalog
from flagd.results.service import ResultsService
from flagd.results.sql.rollup import RollupPolicy
from flagd.settings import Settings

logger = logging.getLogger(__name__)

KEEPER_LOCK_KEY = 0x666C6167642D726B
"""The advisory lock of the keeper ("flagd-rk")."""


class ResultsKeeper:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, catalog: Callable[[], Catalog]) -> None:
        self._pool = pool
        self._catalog = catalog
        """The worker's current catalog (the config watcher's snapshot holds it)."""
        self._interval = settings.results_rollup_seconds
        self._policy = RollupPolicy.from_settings(settings)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flagd-results-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int | None:
        """One round; the experiments kept up, or None when another worker holds the keeper's lock."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", KEEPER_LOCK_KEY):
                return None
            try:
                started = time.perf_counter()
                service = ResultsService(conn, self._catalog(), self._policy)
                kept = await service.keep_up(datetime.now(UTC))
                if kept:
                    logger.debug("kept %d experiment(s) up in %.2f s", kept, time.perf_counter() - started)
                return kept
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", KEEPER_LOCK_KEY)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception as exc:  # the database may be down; the next round tries again
                logger.warning("keeping results up to date failed, will retry: %s", exc)
