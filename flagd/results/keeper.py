"""The results keeper: a background task per worker that keeps running experiments' roll-ups and past
days up to date (`ResultsService.keep_up`) every FLAGD_RESULTS_ROLLUP_SECONDS, and builds the roll-ups
a results request found missing as soon as it is woken (`wake`; flagd.results.preparing).

Only one worker of all the servers on a database keeps up at a time (a session advisory lock, skipped
when held), and a failed round (the database down, say) is logged and tried again next round
(flagd.storage.locked_rounds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from flagd.experiments.catalog import Catalog
from flagd.results.service import ResultsService
from flagd.results.sql.rollup import RollupPolicy
from flagd.settings import Settings
from flagd.storage.locked_rounds import LockedRounds
from flagd.storage.types import Connection

logger = logging.getLogger(__name__)

KEEPER_LOCK_KEY = 0x666C6167642D726B
"""The advisory lock of the keeper ("flagd-rk")."""


class ResultsKeeper:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, catalog: Callable[[], Catalog]) -> None:
        self._catalog = catalog
        """The worker's current catalog (the config watcher's snapshot holds it)."""
        self._policy = RollupPolicy.from_settings(settings)
        self._pool = pool
        self._build_only = False
        self._rounds = LockedRounds(
            pool,
            KEEPER_LOCK_KEY,
            settings.results_rollup_seconds,
            self._keep_up,
            name="flagd-results-keeper",
            doing="keeping results up to date",
        )

    def wake(self) -> None:
        """A results request found roll-ups never built: build them now, in a round of their own (the rest of
        a round, the closed days especially, waits for the next timed one)."""
        self._build_only = True
        self._rounds.wake()

    async def start(self) -> None:
        await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def run_once(self) -> int | None:
        """One round; the experiments kept up, or None when another worker holds the keeper's lock."""
        return await self._rounds.run_once()

    async def _keep_up(self, conn: Connection) -> int:
        started = time.perf_counter()
        service = ResultsService(conn, self._catalog(), self._policy)
        if self._build_only:
            self._build_only = False
            built = await service.build_missing(datetime.now(UTC), self._pool.acquire)
            logger.debug("built %d roll-up(s) in %.2f s", built, time.perf_counter() - started)
            return built
        kept = await service.keep_up(datetime.now(UTC), self._pool.acquire)
        if kept:
            logger.debug("kept %d experiment(s) up in %.2f s", kept, time.perf_counter() - started)
        return kept
