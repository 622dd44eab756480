"""Background rounds that one worker of all the servers on a database runs at a time.

Each worker runs a task that calls `work(conn)` every `interval` seconds while holding a session advisory
lock on one pooled connection; a worker that finds the lock held skips the round. A failed round (the
database down, say) is logged and tried again next round. The results keeper and the results watcher are
such rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import asyncpg

from flagd.storage.types import Connection
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LockedRounds(Generic[T]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        lock_key: int,
        interval: float,
        work: Callable[[Connection], Awaitable[T]],
        *,
        name: str,
        doing: str,
    ) -> None:
        self._pool = pool
        self._lock_key = lock_key
        self._interval = interval
        self._work = work
        self._name = name
        self._doing = doing
        """What a round does, for the log ("keeping results up to date")."""
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def run_once(self) -> T | None:
        """One round's result, or None when another worker holds the lock."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                return None
            try:
                return await self._work(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)

    def wake(self) -> None:
        """Run the next round now rather than at the end of the interval (once, however often woken)."""
        self._woken.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._interval)
            self._woken.clear()
            try:
                await self.run_once()
            except Exception as exc:  # the database may be down; the next round tries again
                logger.warning("%s failed, will retry: %s", self._doing, exc)
