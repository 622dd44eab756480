"""The rollout monitor: a background task per worker that looks at every running rollout each
FLAGD_ROLLOUTS_MONITOR_SECONDS and makes the transition the look decides.

The look (reading the stage's exposures and guardrails, the statistics) runs in a results process
(`results_looker`), never on the event loop that answers evaluations. Every worker of every host may
look; the transition is guarded by the version the look was made on (flagd.rollouts.service), so
one of them moves the rollout and the others find it moved and do nothing. A failed look or move (the
database down, say) is logged and tried again next round. Bounds: at most MAX_PER_ROUND rollouts a
round, one at a time, each look within the results pool's timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from flagd.config.repository import ConfigRepository
from flagd.experiments.catalog import Catalog
from flagd.results import jobs
from flagd.results.pool import ResultsPool
from flagd.results.sql.rollup import RollupPolicy
from flagd.rollouts.looking import answer, look_at
from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.service import MOVES, RolloutService
from flagd.rollouts.serving import RolloutState
from flagd.settings import Settings
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

MAX_PER_ROUND = 100
ACTOR = "rollout-monitor"
Looker = Callable[[RolloutState, datetime], Awaitable[dict[str, Any]]]
"""A look at a rollout's stage, with the stage timed by the given clock reading: `looking.answer`'s dict."""
Clock = Callable[[], datetime]


def results_looker(pool: ResultsPool, config_version: Callable[[], int]) -> Looker:
    """Looks run by the results processes (the server's way)."""

    async def look(row: RolloutState, clock: datetime) -> dict[str, Any]:
        job = jobs.Job("rollout_look", now=clock, config_version=config_version(), rollout=row)
        found: dict[str, Any] = orjson.loads((await pool.run(job)).body)
        return found

    return look


def direct_looker(pool: asyncpg.Pool, settings: Settings) -> Looker:
    """Looks on the caller's own event loop (for tools and tests that drive the monitor themselves)."""
    policy = RollupPolicy.from_settings(settings)

    async def look(row: RolloutState, clock: datetime) -> dict[str, Any]:
        async with pool.acquire() as conn:
            stored = await ConfigRepository(conn).load()
            catalog = Catalog.build(stored.version, stored.document(), stored.experiments, stored.lifecycles)
            seen, decision = await look_at(conn, catalog, policy, None, row, datetime.now(UTC), clock)
        return answer(row, seen, decision)

    return look


class RolloutMonitor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        looker: Looker,
        *,
        interval: float,
        clock: Clock | None = None,
        actor: str = ACTOR,
        on_moved: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._looker = looker
        self._interval = interval
        self._clock = clock or (lambda: datetime.now(UTC))
        self._actor = actor
        self._on_moved = on_moved
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="flagd-rollout-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def run_once(self) -> list[tuple[str, str]]:
        """One round: every running rollout looked at; the (key, move) of each transition this monitor made."""
        async with self._pool.acquire() as conn:
            rows = (await RolloutRepository(conn).all("running"))[:MAX_PER_ROUND]
        made = []
        for row in rows:
            try:
                moved = await self._look(row)
            except Exception as exc:  # one rollout's failure is not the others'; the next round tries again
                logger.warning("looking at rollout %r failed, will retry: %s", row.key, exc)
                continue
            if moved is not None:
                made.append((row.key, moved))
        if made and self._on_moved is not None:
            await self._on_moved()
        return made

    async def _look(self, row: RolloutState) -> str | None:
        clock = self._clock()
        seen = await self._looker(row, clock)
        action = seen["action"]
        async with self._pool.acquire() as conn:
            if action not in MOVES:
                await RolloutRepository(conn).record_look(row.key, row.version, seen["statistics"])
                return None
            async with conn.transaction():
                moved = await RolloutService(conn, self._actor).move(
                    row.key,
                    action,
                    reason=seen["reason"],
                    statistics=seen["statistics"],
                    version=row.version,
                    at=clock,
                )
                if moved is not None:
                    await RolloutRepository(conn).record_look(row.key, moved[0].version, seen["statistics"])
        if moved is None:
            return None
        logger.info("rollout %r: %s (%s)", row.key, action, seen["reason"])
        return str(action)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception as exc:  # the database may be down; the next round tries again
                logger.warning("the rollout monitor's round failed, will retry: %s", exc)
