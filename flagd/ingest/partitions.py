"""Daily partitions of `events`: created ahead of time, dropped whole by `flagd events prune`.

A partition is named `events_pYYYYMMDD` and holds one UTC day of event timestamps. Creating
one moves any rows of its day out of the default partition first (rows land there only for
days that had no partition: pruned days, or days a stopped server did not prepare), so
creation always succeeds. Every worker runs `ensure_partitions` at start and hourly; an
advisory lock makes concurrent runs take turns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flagd.storage.types import Connection

# "flagd-pt" in ASCII, like the migration lock.
PARTITION_LOCK_KEY = 0x666C6167642D7074
_NAME = re.compile(r"^events_p(\d{8})$")


@dataclass(frozen=True, slots=True)
class Pruned:
    dropped: tuple[str, ...]
    default_rows: int
    exposures: int


@dataclass(frozen=True, slots=True)
class Analysed:
    """A running experiment whose current phase began at `phase_started_at`."""

    experiment: str
    phase_started_at: datetime


def partition_name(day: date) -> str:
    return f"events_p{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    match = _NAME.match(name)
    return datetime.strptime(match[1], "%Y%m%d").replace(tzinfo=UTC).date() if match else None


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


async def existing_partitions(conn: Connection) -> dict[date, str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass"
    )
    found = {}
    for row in rows:
        day = partition_day(row["relname"])
        if day is not None:
            found[day] = row["relname"]
    return found


async def ensure_partitions(conn: Connection, today: date, days_back: int, days_ahead: int) -> list[str]:
    """Create the missing partitions from `today - days_back` to `today + days_ahead`; their names."""
    created: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        floor = await _pruned_floor(conn)
        have = await existing_partitions(conn)
        for offset in range(-days_back, days_ahead + 1):
            day = today + timedelta(days=offset)
            if day in have or (floor is not None and day < floor):
                continue
            await _create(conn, day)
            created.append(partition_name(day))
    return created


async def _create(conn: Connection, day: date) -> None:
    await conn.execute("SELECT flagd_create_event_partition($1)", day)


async def _pruned_floor(conn: Connection) -> date | None:
    """The day before which events were pruned: partitions are not recreated below it."""
    value: date | None = await conn.fetchval("SELECT pruned_before FROM events_retention")
    return value


async def analysed_before(conn: Connection, before: date) -> list[Analysed]:
    """The running experiments that analyse events from before `before`: pruning there takes their data."""
    start, _ = _bounds(before)
    rows = await conn.fetch(
        "SELECT key, phase_started_at FROM experiments WHERE state = 'running' "
        "AND phase_started_at < $1 ORDER BY key",
        start,
    )
    return [Analysed(r["key"], r["phase_started_at"]) for r in rows]


async def prune(conn: Connection, before: date) -> Pruned:
    """Drop every partition wholly before `before`, and the older rows of the default partition and exposures."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        dropped = []
        for day, name in sorted((await existing_partitions(conn)).items()):
            if day < before:
                await conn.execute("SELECT flagd_drop_event_partition($1)", name)
                dropped.append(name)
        start, _ = _bounds(before)
        default_rows = await conn.fetchval(
            "WITH gone AS (DELETE FROM events_default WHERE occurred_at < $1 RETURNING 1) SELECT count(*) FROM gone",
            start,
        )
        exposures = await conn.fetchval(
            "WITH gone AS (DELETE FROM exposures WHERE exposed_at < $1 RETURNING 1) SELECT count(*) FROM gone",
            start,
        )
        await conn.execute("DELETE FROM event_counts WHERE day < $1", before)
        await conn.execute("DELETE FROM event_rejections WHERE day < $1", before)
        await conn.execute(
            "INSERT INTO events_retention (pruned_before) VALUES ($1) ON CONFLICT (singleton) "
            "DO UPDATE SET pruned_before = greatest(events_retention.pruned_before, EXCLUDED.pruned_before)",
            before,
        )
    return Pruned(tuple(dropped), int(default_rows), int(exposures))
