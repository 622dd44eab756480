"""Keep this worker's snapshot current and tell its stream subscribers about new versions.

Each worker holds one connection that LISTENs on `flagd_config` (and `flagd_keys`).
A committed change anywhere, from any worker or host, notifies every listener, which
reloads the whole configuration in one consistent read. Notifications that arrive
while a reload runs are coalesced into one more reload. A poll every few seconds
catches anything a dropped connection missed, and re-opens the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from flagd.auth.repository import KEYS_CHANNEL
from flagd.config.repository import CONFIG_CHANNEL, ConfigRepository
from flagd.config.snapshot import ConfigSnapshot
from flagd.settings import Settings
from flagd.storage.pool import connect
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

Subscriber = asyncio.Queue[ConfigSnapshot | None]


class ConfigWatcher:
    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, *, on_keys_changed: Callable[[], None]
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._on_keys_changed = on_keys_changed
        self._snapshot: ConfigSnapshot | None = None
        self._dirty = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribers: set[Subscriber] = set()

    @property
    def snapshot(self) -> ConfigSnapshot:
        assert self._snapshot is not None, "the watcher has not started"
        return self._snapshot

    @property
    def loaded(self) -> bool:
        """Whether the configuration has been read from the database at least once."""
        return self._snapshot is not None and not self._snapshot.placeholder

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            # An unmigrated or unreachable database must not stop the server from starting: it
            # serves an empty flag set, says so on /readyz, and keeps trying.
            logger.warning(
                "the flag configuration could not be loaded yet (%r); serving no flags until it can", exc
            )
            self._snapshot = ConfigSnapshot.placeholder_snapshot()
        try:
            await self._listen()
        except Exception as exc:
            logger.warning("listening for configuration changes failed (%s); will retry", exc)
        self._tasks = [asyncio.create_task(self._reload_when_dirty()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        for subscriber in list(self._subscribers):
            _offer(subscriber, None)  # ends open streams, so shutdown does not wait for them
        if self._listener is not None:
            await self._listener.close()

    def subscribe(self) -> Subscriber:
        subscriber: Subscriber = asyncio.Queue(maxsize=1)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def refresh(self) -> None:
        """Load the stored configuration; if its version differs, serve it and announce it."""
        async with self._pool.acquire() as conn:
            stored = await ConfigRepository(conn).load()
        if self.loaded and self._snapshot is not None and stored.version == self._snapshot.version:
            return
        self._snapshot = ConfigSnapshot.build(stored)
        logger.info("serving flag configuration version %d", stored.version)
        for subscriber in list(self._subscribers):
            _offer(subscriber, self._snapshot)

    async def refresh_after_write(self) -> None:
        """Read-your-writes after a committed change; never raises, since the change is already made.

        If the reload fails, the reload task retries it (and so does the poll).
        """
        try:
            await self.refresh()
        except Exception:
            logger.exception("reloading the flag configuration after a write failed; retrying")
            self._dirty.set()

    async def _listen(self) -> None:
        listener = await connect(self._settings)
        await listener.add_listener(CONFIG_CHANNEL, self._config_changed)
        await listener.add_listener(KEYS_CHANNEL, self._keys_changed)
        self._listener = listener

    def _config_changed(self, *args: Any) -> None:
        self._dirty.set()

    def _keys_changed(self, *args: Any) -> None:
        self._on_keys_changed()

    async def _reload_when_dirty(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.refresh()
            except Exception:
                logger.exception("reloading the flag configuration failed; retrying in a second")
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.config_poll_seconds)
            try:
                if self._listener is None or self._listener.is_closed():
                    logger.warning("the notification connection was lost; reconnecting")
                    await self._listen()
                    self._on_keys_changed()
                    self._dirty.set()
                    continue
                async with self._pool.acquire() as conn:
                    version = await ConfigRepository(conn).version()
                if version != self.snapshot.version or not self.loaded:
                    self._dirty.set()
            except Exception as exc:
                logger.warning("checking the flag configuration version failed: %s", exc)


def _offer(subscriber: Subscriber, item: ConfigSnapshot | None) -> None:
    """Hand the newest item to a subscriber; a slow one skips versions it has not read yet."""
    with contextlib.suppress(asyncio.QueueEmpty):
        subscriber.get_nowait()
    subscriber.put_nowait(item)
