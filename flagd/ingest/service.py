"""Event ingestion in one worker: the limits from settings, the writer, and its upkeep.

Upkeep runs beside the writer: the stats counters are added to the database every
`COUNTS_SECONDS`, and the daily partitions are prepared at start and every hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg

from flagd.ingest.counters import Counters
from flagd.ingest.decode import DecodeLimits
from flagd.ingest.fields import EventLimits
from flagd.ingest.partitions import ensure_partitions
from flagd.ingest.server_exposures import ServerExposures
from flagd.ingest.writer import EventWriter, WriterLimits
from flagd.settings import Settings
from flagd.storage.pool import connect
from flagd.tracking.tallies import PlanTallies

logger = logging.getLogger(__name__)

COUNTS_SECONDS = 2.0
PARTITION_SECONDS = 3600.0
DAYS_AHEAD = 7


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How big a batch of POST /v1/events may be, as sent and once read."""

    max_body_bytes: int
    body_setting: str
    """The variable that sets `max_body_bytes`, named when a body is refused."""
    decode: DecodeLimits
    events: EventLimits


class Ingest:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self._pool = pool
        event_limits = EventLimits(
            max_events=settings.events_max_batch,
            max_properties_bytes=settings.events_max_properties_bytes,
            max_future_skew=timedelta(seconds=settings.events_max_future_skew_seconds),
            max_age=timedelta(days=settings.events_max_age_days),
        )
        decode_limits = DecodeLimits(
            max_inflated_bytes=settings.events_max_inflated_bytes, max_events=settings.events_max_batch
        )
        self.limits = BatchLimits(
            settings.events_max_body_bytes, "FLAGD_EVENTS_MAX_BODY_BYTES", decode_limits, event_limits
        )
        # Never looser than any key's (a client limit set above the general one has the general one).
        client, client_batch = (
            "FLAGD_CLIENT_EVENTS_MAX_BATCH",
            min(settings.client_events_max_batch, settings.events_max_batch),
        )
        self.client_limits = BatchLimits(
            min(settings.client_events_max_body_bytes, settings.events_max_body_bytes),
            "FLAGD_CLIENT_EVENTS_MAX_BODY_BYTES",
            replace(decode_limits, max_events=client_batch, batch_setting=client),
            replace(
                event_limits,
                max_events=client_batch,
                max_value=settings.client_events_max_value,
                batch_setting=client,
            ),
        )
        """What a batch sent with a client key may hold: fewer events, a smaller body, bounded values."""
        self.counters = Counters()
        self.tracking = PlanTallies()
        """Tracking-plan violations and the observed schema's sample (flagd.tracking.tallies)."""
        self.writer = EventWriter(
            lambda: connect(settings),
            WriterLimits(
                max_queued_events=settings.events_max_queued,
                max_queued_bytes=settings.events_max_queued_bytes,
                max_commit_events=max(20_000, settings.events_max_batch),
                commit_timeout=settings.events_commit_timeout,
            ),
            self.counters,
        )
        self.exposures = ServerExposures(self.writer)
        self._upkeep: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.prepare_partitions()
        except (asyncpg.PostgresError, OSError) as exc:
            # Migrations pending, say: /readyz reports that; upkeep tries again every hour.
            logger.warning("event partitions could not be prepared: %s", exc)
        await self.writer.start()
        self._upkeep = asyncio.create_task(self._run_upkeep(), name="flagd-event-upkeep")

    async def stop(self) -> None:
        await self.writer.stop()
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
        with contextlib.suppress(Exception):
            await self._flush_counts()

    async def prepare_partitions(self) -> None:
        """Create the partitions from the oldest acceptable day to DAYS_AHEAD days ahead."""
        today = datetime.now(UTC).date()
        async with self._pool.acquire() as conn:
            created = await ensure_partitions(conn, today, self.settings.events_max_age_days + 1, DAYS_AHEAD)
        if created:
            logger.info("created event partitions %s .. %s", created[0], created[-1])

    async def _flush_counts(self) -> None:
        async with self._pool.acquire(timeout=COUNTS_SECONDS) as conn:
            await asyncio.wait_for(self.counters.flush(conn), COUNTS_SECONDS * 5)
            await asyncio.wait_for(self.tracking.flush(conn), COUNTS_SECONDS * 5)

    async def _run_upkeep(self) -> None:
        last_partitions = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(COUNTS_SECONDS)
            try:
                await self._flush_counts()
                if asyncio.get_running_loop().time() - last_partitions >= PARTITION_SECONDS:
                    await self.prepare_partitions()
                    last_partitions = asyncio.get_running_loop().time()
            except Exception as exc:  # the database may be down; the next round tries again
                logger.debug("event upkeep failed, will retry: %s", exc)
