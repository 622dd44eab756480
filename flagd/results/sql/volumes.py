"""Metric event volumes for the health checks: events per name and day, and names never seen."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from flagd.storage.types import Connection


async def daily_events(conn: Connection, names: Iterable[str], since: date) -> dict[str, dict[date, int]]:
    """Track events per day of each name, from `since` on (every name listed, with no days if none)."""
    wanted = sorted(names)
    rows = await conn.fetch(
        "SELECT name, day, count FROM event_counts WHERE kind = 'track' AND name = ANY($1) AND day >= $2",
        wanted,
        since,
    )
    volumes: dict[str, dict[date, int]] = {name: {} for name in wanted}
    for row in rows:
        volumes[row["name"]][row["day"]] = int(row["count"])
    return volumes


async def never_arrived(conn: Connection, names: Iterable[str]) -> tuple[str, ...]:
    """The names no event has ever had."""
    rows = await conn.fetch(
        "SELECT n FROM unnest($1::text[]) AS n WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.name = n)",
        sorted(names),
    )
    return tuple(sorted(r["n"] for r in rows))


EVENTS_COUNTED = 10_000
"""`events_since` counts up to this many: enough to say events arrive, bounded whatever the volume."""


async def events_since(conn: Connection, names: Iterable[str], since: datetime) -> int:
    """Events of these names received since `since` (at most EVENTS_COUNTED)."""
    counted: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE name = ANY($1::text[]) AND received_at >= $2 LIMIT $3) s",
        sorted(names),
        since,
        EVENTS_COUNTED,
    )
    return counted
