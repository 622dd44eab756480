"""Group commit: many requests' events, one transaction, and an answer only after it commits.

Requests hand their validated events to `EventWriter.write` and wait. One flusher task per
worker takes everything queued (up to `max_commit_events`), copies it into temporary staging
tables with binary COPY, moves it into `events` and `exposures` with one `INSERT ... SELECT ...
ON CONFLICT` each, commits, and only then wakes the requests: 200 means committed. While it
commits, the next requests queue up, so the number of commits follows the database's speed,
not the number of requests.

Bounds: the queue holds at most `max_queued_events` events and about `max_queued_bytes` bytes of
them (an event is counted as its text plus EVENT_OVERHEAD); beyond that, and whenever the database is
known to be down, `write` refuses at once (503 with Retry-After) instead of holding memory.
A failed commit fails every request in it (nothing of it is stored, or, if the connection died
during COMMIT, perhaps all of it: a retry is then deduplicated by event id, so either way a
retry stores each event once). A background probe reconnects and the writer accepts again.

Server-side exposures (`offer`) take the same path without a waiting request: at most once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from asyncpg.transaction import Transaction

from flagd import metrics
from flagd.errors import DatabaseUnavailable, FlagdError, ServiceUnavailable
from flagd.ingest.counters import Counters
from flagd.ingest.events import Event
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_events (
    event_id uuid, occurred_at timestamptz,
    name text, unit text, value double precision, properties text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_exposures (
    experiment text, phase integer, unit text, variant text, event_id uuid,
    exposed_at timestamptz, attributes text, source text
) ON COMMIT DELETE ROWS;
"""
_TRACK_COLUMNS = ("event_id", "occurred_at", "name", "unit", "value", "properties")
_EXPOSURE_COLUMNS = (
    "experiment",
    "phase",
    "unit",
    "variant",
    "event_id",
    "exposed_at",
    "attributes",
    "source",
)

# Sorted by key, so two workers' overlapping writes take row locks in one order (no deadlock).
# The counts of what was new feed the stats counters. received_at is the storing transaction's start
# (now()): it commits within the commit timeout of that, which is what lets the results roll-ups find
# what was stored since they last caught up (flagd.results.rollup).
_MOVE_EVENTS = """
WITH stored AS (
    INSERT INTO events (event_id, occurred_at, received_at, name, unit, value, properties)
    SELECT event_id, occurred_at, now(), name, unit, value, properties::jsonb
    FROM staging_events ORDER BY event_id, occurred_at
    ON CONFLICT DO NOTHING
    RETURNING name, occurred_at
)
SELECT name, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS count FROM stored GROUP BY 1, 2
"""

# The first exposure of each (experiment, phase, unit) by time wins; a different variant, in this
# group or against the stored row, marks the unit. Rows update only when something changes.
_MOVE_EXPOSURES = """
WITH stored AS (
    INSERT INTO exposures AS e (experiment, phase, unit, variant, event_id, exposed_at, received_at,
                                attributes, multiple_variants, source)
    SELECT DISTINCT ON (experiment, phase, unit)
        experiment, phase, unit, variant, event_id, exposed_at, now(), attributes::jsonb,
        min(variant) OVER w <> max(variant) OVER w, source
    FROM staging_exposures
    WINDOW w AS (PARTITION BY experiment, phase, unit)
    ORDER BY experiment, phase, unit, exposed_at, event_id
    ON CONFLICT (experiment, phase, unit) DO UPDATE SET
        variant = CASE WHEN EXCLUDED.exposed_at < e.exposed_at THEN EXCLUDED.variant ELSE e.variant END,
        event_id = CASE WHEN EXCLUDED.exposed_at < e.exposed_at THEN EXCLUDED.event_id ELSE e.event_id END,
        attributes = CASE WHEN EXCLUDED.exposed_at < e.exposed_at THEN EXCLUDED.attributes ELSE e.attributes END,
        source = CASE WHEN EXCLUDED.exposed_at < e.exposed_at THEN EXCLUDED.source ELSE e.source END,
        exposed_at = least(EXCLUDED.exposed_at, e.exposed_at),
        received_at = EXCLUDED.received_at,
        multiple_variants = e.multiple_variants OR EXCLUDED.multiple_variants OR EXCLUDED.variant <> e.variant
    WHERE EXCLUDED.exposed_at < e.exposed_at
       OR (NOT e.multiple_variants AND (EXCLUDED.multiple_variants OR EXCLUDED.variant <> e.variant))
    RETURNING experiment, exposed_at, (xmax = 0) AS inserted
)
SELECT experiment AS name, (exposed_at AT TIME ZONE 'UTC')::date AS day, count(*) AS count
FROM stored WHERE inserted GROUP BY 1, 2
"""

# Errors of one request's data (not of the database): the group is retried request by request.
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UnicodeEncodeError, ValueError)
# Lock conflicts between workers: the whole group is simply tried again.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass(frozen=True, slots=True)
class WriterLimits:
    max_queued_events: int = 100_000
    max_queued_bytes: int = 64 * 1024 * 1024
    max_commit_events: int = 20_000
    commit_timeout: float = 10.0
    retry_after_seconds: int = 1
    reconnect_seconds: float = 0.5
    max_reconnect_seconds: float = 5.0


class _Pending:
    __slots__ = ("bytes", "exposures", "future", "size", "track")

    def __init__(
        self,
        track: list[tuple[object, ...]],
        exposures: list[tuple[object, ...]],
        future: asyncio.Future[None] | None,
        size_bytes: int,
    ) -> None:
        self.track = track
        self.exposures = exposures
        self.future = future
        self.size = len(track) + len(exposures)
        self.bytes = size_bytes


EVENT_OVERHEAD = 800
"""Bytes a queued event holds beyond its text, with its validated Event and its row (tracemalloc: 781)."""


def split_rows(events: Iterable[Event], source: str = "client") -> _Pending:
    track: list[tuple[object, ...]] = []
    exposures: list[tuple[object, ...]] = []
    size_bytes = 0
    for e in events:
        size_bytes += EVENT_OVERHEAD + len(e.unit) + len(e.payload or "")
        if e.kind == "track":
            track.append((e.event_id, e.timestamp, e.name, e.unit, e.value, e.payload))
        else:
            exposures.append(
                (
                    e.experiment,
                    e.phase,
                    e.unit,
                    e.variant,
                    e.event_id,
                    e.timestamp,
                    e.payload,
                    source,
                )
            )
    return _Pending(track, exposures, None, size_bytes)


class EventWriter:
    def __init__(self, connect: Connect, limits: WriterLimits, counters: Counters) -> None:
        self._connect = connect
        self.limits = limits
        self.counters = counters
        self._pending: deque[_Pending] = deque()
        self._queued = 0
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._down: str | None = None
        """Why the database is unusable, while it is; None while writes are accepted."""
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped_offers = 0
        self.commits = 0

    # --- the request side -------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Events waiting for their group commit."""
        return self._queued

    @property
    def accepting(self) -> bool:
        return self._down is None and not self._closing

    def check_accepting(self, size: int = 0, size_bytes: int = 0) -> None:
        """Refuse at once (503, Retry-After) when the database is down or the queue is full."""
        headers = {"Retry-After": str(self.limits.retry_after_seconds)}
        if self._closing:
            raise ServiceUnavailable(
                "the server is shutting down; retry on another instance", headers=headers
            )
        if self._down is not None:
            raise DatabaseUnavailable(
                f"events cannot be stored now ({self._down}); nothing of this batch was stored, retry after "
                f"{self.limits.retry_after_seconds} s",
                headers=headers,
            )
        if not self._has_room(size, size_bytes):
            raise ServiceUnavailable(
                f"the event queue is full ({self._queued} events waiting); nothing of this batch was stored, "
                f"retry after {self.limits.retry_after_seconds} s",
                code="queue_full",
                headers=headers,
            )

    async def write(self, events: Sequence[Event]) -> None:
        """Return once `events` are committed; raise 503 (nothing stored, or a retry is deduplicated)."""
        pending = split_rows(events)
        if pending.size == 0:
            return
        self.check_accepting(pending.size, pending.bytes)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.future = future
        self._enqueue(pending)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.limits.commit_timeout)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the events were not committed within {self.limits.commit_timeout} s; retry (a retry is "
                "deduplicated by event_id)",
                headers={"Retry-After": str(self.limits.retry_after_seconds)},
            ) from None

    def offer(self, events: Sequence[Event]) -> bool:
        """Queue events nobody waits for (server-side exposures); False when they were dropped."""
        pending = split_rows(events, source="server")
        if not self.accepting or not self._has_room(pending.size, pending.bytes):
            self.dropped_offers += pending.size
            return False
        self._enqueue(pending)
        return True

    def _has_room(self, size: int, size_bytes: int) -> bool:
        return (
            self._queued + size <= self.limits.max_queued_events
            and self._queued_bytes + size_bytes <= self.limits.max_queued_bytes
        )

    def _enqueue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        self._queued += pending.size
        self._queued_bytes += pending.bytes
        self._wake.set()

    # --- the flusher ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flagd-event-writer")

    async def stop(self, grace: float = 5.0) -> None:
        """Commit what is queued (within `grace` seconds), then close."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                await cancel_and_wait(self._task)
        self._fail_all("the server is shutting down")
        await self._close_connection()

    async def _run(self) -> None:
        delay = self.limits.reconnect_seconds
        while True:
            if self._down is not None:
                if self._closing:
                    return
                await asyncio.sleep(delay)
                if await self._probe():
                    delay = self.limits.reconnect_seconds
                else:
                    delay = min(delay * 2, self.limits.max_reconnect_seconds)
                continue
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._take()
            try:
                await self._commit_group(group)
            except Exception as exc:  # any failure of the database fails the group, never the task
                reason = _describe(exc)
                logger.warning("event write failed, refusing events until the database answers: %s", reason)
                self._down = reason
                _settle(group, _unavailable(reason))
                self._fail_all(reason)
                await self._close_connection()

    def _take(self) -> list[_Pending]:
        group: list[_Pending] = []
        size = 0
        while self._pending and (not group or size + self._pending[0].size <= self.limits.max_commit_events):
            pending = self._pending.popleft()
            self._queued -= pending.size
            self._queued_bytes -= pending.bytes
            size += pending.size
            group.append(pending)
        return group

    async def _commit_group(self, group: list[_Pending]) -> None:
        for attempt in range(3):
            try:
                await asyncio.wait_for(self._commit(group), self.limits.commit_timeout)
            except _RETRYABLE:
                if attempt == 2:
                    raise
                continue
            except _DATA_ERRORS as exc:
                if len(group) == 1:
                    logger.error("a batch of events could not be stored: %s", exc)
                    reason = _describe(exc)
                    _settle(group, functools.partial(_write_failed, reason))
                    return
                # One request's data failed the group: store each request on its own.
                for pending in group:
                    await self._commit_group([pending])
                return
            _settle(group, None)
            return

    async def _commit(self, group: list[_Pending]) -> None:
        conn = await self._connection()
        started = time.perf_counter()
        track = [row for pending in group for row in pending.track]
        exposures = [row for pending in group for row in pending.exposures]
        transaction = conn.transaction()
        await transaction.start()
        try:
            counted: list[asyncpg.Record] = []
            if track:
                await conn.copy_records_to_table("staging_events", records=track, columns=_TRACK_COLUMNS)
                counted += await conn.fetch(_MOVE_EVENTS)
            if exposures:
                await conn.copy_records_to_table(
                    "staging_exposures", records=exposures, columns=_EXPOSURE_COLUMNS
                )
                exposed = await conn.fetch(_MOVE_EXPOSURES)
            else:
                exposed = []
        except BaseException:
            await _roll_back(conn, transaction)
            raise
        await transaction.commit()
        self.commits += 1
        metrics.COMMIT_EVENTS.observe(len(track) + len(exposures))
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        stored = sum(int(row["count"]) for row in counted)
        if stored < len(track):
            metrics.EVENTS.labels("track", "deduplicated").inc(len(track) - stored)
        now = datetime.now(UTC)
        for row in counted:
            self.counters.stored("track", row["day"], row["name"], row["count"], now)
        for row in exposed:
            self.counters.stored("exposure", row["day"], row["name"], row["count"], now)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await self._connect()
            try:
                await conn.execute(_STAGING)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return self._conn

    async def _probe(self) -> bool:
        try:
            conn = await asyncio.wait_for(self._connection(), self.limits.commit_timeout)
            await asyncio.wait_for(conn.fetchval("SELECT 1"), self.limits.commit_timeout)
        except Exception as exc:  # still down, whatever the reason
            self._down = _describe(exc)
            await self._close_connection()
            return False
        logger.warning("the database answers again; accepting events")
        self._down = None
        return True

    def _fail_all(self, reason: str) -> None:
        while self._pending:
            pending = self._pending.popleft()
            self._queued -= pending.size
            self._queued_bytes -= pending.bytes
            if pending.future is None:
                self.dropped_offers += pending.size
            _settle([pending], _unavailable(reason))

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


async def _roll_back(conn: asyncpg.Connection, transaction: Transaction) -> None:
    """Roll back, or drop the connection when it cannot (the database gone under a statement leaves
    it mid-operation): PostgreSQL rolls back what a lost connection began, and the statement's own
    error, not the rollback's, is what the caller reports."""
    try:
        await transaction.rollback()
    except Exception:  # the connection is unusable, whatever the reason
        conn.terminate()


def _settle(group: Iterable[_Pending], error: Callable[[], Exception] | None) -> None:
    """Wake the requests of `group`: with success, or each with its own new exception."""
    for pending in group:
        future = pending.future
        if future is None or future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error())


def _unavailable(reason: str) -> Callable[[], Exception]:
    return lambda: DatabaseUnavailable(
        f"the events were not stored ({reason}); retry (a retry is deduplicated by event_id)",
        headers={"Retry-After": "1"},
    )


def _write_failed(reason: str) -> Exception:
    return FlagdError(
        f"the events could not be stored ({reason}); this is a bug in the server, please report it",
        code="event_write_failed",
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the database did not answer in time"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
