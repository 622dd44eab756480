"""Results reads on a streaming read replica (FLAGD_RESULTS_DATABASE_URL), never behind the primary's writes.

A results request first catches its roll-ups up on the primary (those are writes), then reads. On a
replica, a read right after that catch-up could miss it: streaming replication replays the primary's
WAL a little later. So before the reads, `reads_after_writes` takes the primary's current WAL position
(`pg_current_wal_lsn()`, past every commit made so far, the catch-up's included) and waits until the
replica has replayed that far (`pg_last_wal_replay_lsn()`), polling every POLL_SECONDS for at most
WAIT_SECONDS. A replica that is further behind, unreachable or broken is not waited for: that request
reads on the primary, with a warning in the log, and `flagd_results_replica_reads{outcome=...}` counts it,
so a lagging replica makes results slower, never wrong. A server at the URL that is not a standby (the
primary itself, in a small setup) is read as it is.

What stays on the primary whatever the setting: catch-ups, the closed days a series stores, the looks
of the planned design (`flagd.results.looks`, read and written together), rollout pages, and everything
outside results. One replica connection per results process, opened on first use; after a failure it
is tried again RETRY_SECONDS later, not on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import asyncpg

from flagd.storage.pool import DATABASE_UNAVAILABLE_ERRORS, init_connection, redact
from flagd.storage.types import Connection

logger = logging.getLogger(__name__)

WAIT_SECONDS = 1.0
"""How long a results request waits for the replica to replay the primary's writes before reading there."""
POLL_SECONDS = 0.005
RETRY_SECONDS = 5.0
"""After the replica could not be reached, requests read on the primary this long before it is tried again."""

_REPLICA_ERRORS: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError)
"""A replica that is down, restarting, not accepting connections or refusing the query: read on the primary."""

REPLICA_READ_ERRORS: tuple[type[Exception], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
"""What a read on the replica can fail with that is the replica's doing: it went away, or a query was cancelled
by a conflict with recovery (40001, 40P01: replay needed rows or a lock the query held). `Replica.failed` tells
whether it was the replica; the results process then does the job again on the primary."""

_REPLAYED = (
    "SELECT pg_is_in_recovery() AS standby, "
    "coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false) AS replayed"
)


class Replica:
    """A results process's connection to the read replica, and the wait that keeps its reads current."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None
        self._retry_at = 0.0
        self._counts: dict[str, int] = {}
        self._lent = False
        """Whether the replica's connection was handed out in the current job."""

    def begin_job(self) -> None:
        self._lent = False

    def failed(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by a job that read here, is the replica's failure (it went away, or recovery
        cancelled a query): logged, counted as `failed`, and the replica forgotten if it went away. The
        caller then does the job again on the primary."""
        if not self._lent or self._conn is None:
            return False
        conflict = isinstance(exc, (asyncpg.SerializationError, asyncpg.DeadlockDetectedError))
        gone = self._conn.is_closed()
        if not (conflict or gone):
            return False
        logger.warning(
            "a results read on the replica %s failed (%r); doing it again on the primary",
            redact(self._url),
            exc,
        )
        self._count("failed")
        if gone:
            self._conn = None
            self._retry_at = time.monotonic() + RETRY_SECONDS
        return True

    def _count(self, outcome: str) -> None:
        self._counts[outcome] = self._counts.get(outcome, 0) + 1

    def drain_counts(self) -> dict[str, int]:
        """Where the reads went since the last call, by outcome (replica, lagging, unreachable): the job hands
        them to its worker, which counts them in `flagd_results_replica_reads` (a results process's own
        metrics are not scraped)."""
        counts, self._counts = self._counts, {}
        return counts

    async def reads_after_writes(self, primary: Connection) -> Connection:
        """The connection to read on: the replica once it has replayed every commit the primary has made so
        far (within WAIT_SECONDS), else the primary."""
        replica = await self._connection()
        if replica is None:
            self._count("unreachable")
            return primary
        position = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + WAIT_SECONDS
        try:
            while True:
                row = await replica.fetchrow(_REPLAYED, position)
                assert row is not None
                if row["replayed"] or not row["standby"]:
                    self._count("replica")
                    self._lent = True
                    return replica
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_SECONDS)
        except _REPLICA_ERRORS as exc:
            logger.warning("results replica %s failed (%r); reading on the primary", redact(self._url), exc)
            await self._forget()
            self._count("unreachable")
            return primary
        logger.warning(
            "results replica %s had not replayed the primary's WAL to %s after %g s; reading on the primary",
            redact(self._url),
            position,
            WAIT_SECONDS,
        )
        self._count("lagging")
        return primary

    async def _connection(self) -> asyncpg.Connection | None:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if time.monotonic() < self._retry_at:
            return None
        try:
            conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
            await init_connection(conn)
        except _REPLICA_ERRORS as exc:
            logger.warning(
                "cannot connect to the results replica %s (%r); reading on the primary for %g s",
                redact(self._url),
                exc,
                RETRY_SECONDS,
            )
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return None
        self._conn = conn
        return conn

    async def _forget(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=1)
        self._conn = None
        self._retry_at = time.monotonic() + RETRY_SECONDS

    async def close(self) -> None:
        await self._forget()


_STATUS_ERRORS: tuple[type[Exception], ...] = (*_REPLICA_ERRORS, TimeoutError)
STATUS_SECONDS = 1.0
"""How long /readyz waits for the replica's answer (a hanging replica must not make the probe hang)."""


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """The results replica as /readyz reports it. It never makes the server unready: results read on the
    primary while it is unreachable or behind."""

    reachable: bool
    standby: bool | None = None
    """Whether the server is in recovery (a standby); False for a primary (read as it is)."""
    lag_bytes: int | None = None
    """How far the replica's replay is behind the primary's current WAL position."""
    error: str | None = None


async def replica_status(primary: Connection, replica: asyncpg.Pool) -> ReplicaStatus:
    try:
        async with asyncio.timeout(STATUS_SECONDS):
            async with replica.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replayed"
                )
    except _STATUS_ERRORS as exc:
        return ReplicaStatus(reachable=False, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    assert row is not None
    if not row["standby"] or row["replayed"] is None:
        return ReplicaStatus(reachable=True, standby=bool(row["standby"]))
    lag = await primary.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint", row["replayed"]
    )
    return ReplicaStatus(reachable=True, standby=True, lag_bytes=max(int(lag), 0))


async def open_status_pool(url: str, connect_timeout: float) -> asyncpg.Pool:
    """A worker's pool of at most one replica connection, for /readyz; it connects on first use, so a replica
    that is down does not keep the server from starting."""
    return await asyncpg.create_pool(url, min_size=0, max_size=1, timeout=connect_timeout)
