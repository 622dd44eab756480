"""Hourly reductions of `events` for the data-health rules (SQL; the caller owns the transaction).

`reduce_hours` replaces the reductions of [start, end) by what the events table holds now: per name and
hour the events and the repeats (an event within a second of the same unit's previous event of the same
name), and per property the events by JSON type of its value, for the MAX_KEYS commonest keys. The scan
is bounded by the range (daily partitions of `events`), which the detector keeps to at most a day.
"""

from __future__ import annotations

from datetime import datetime

from flagd.storage.types import Connection

MAX_KEYS = 64
"""Properties reduced per name and hour (the commonest): dynamic keys cannot grow the tables without bound."""


async def reduce_hours(conn: Connection, start: datetime, end: datetime) -> int:
    """Reduce the hours of [start, end); the name-hours written."""
    await conn.execute("DELETE FROM data_health_hours WHERE hour >= $1 AND hour < $2", start, end)
    await conn.execute("DELETE FROM data_health_properties WHERE hour >= $1 AND hour < $2", start, end)
    written: int = await conn.fetchval(
        "WITH e AS (SELECT name, occurred_at, occurred_at - lag(occurred_at) OVER "
        "  (PARTITION BY name, unit ORDER BY occurred_at) AS gap FROM events "
        "  WHERE occurred_at >= $1 AND occurred_at < $2), "
        "ins AS (INSERT INTO data_health_hours (name, hour, events, repeats) "
        "  SELECT name, date_trunc('hour', occurred_at, 'UTC'), count(*), "
        "    count(*) FILTER (WHERE gap < interval '1 second') FROM e GROUP BY 1, 2 RETURNING 1) "
        "SELECT count(*) FROM ins",
        start,
        end,
    )
    await conn.execute(
        "INSERT INTO data_health_properties (name, hour, key, type, count) "
        "SELECT name, hour, key, type, n FROM ("
        "  SELECT name, hour, key, type, n, dense_rank() OVER (PARTITION BY name, hour ORDER BY total DESC, key) AS r"
        "  FROM (SELECT name, hour, key, type, n, sum(n) OVER (PARTITION BY name, hour, key) AS total FROM ("
        "    SELECT e.name, date_trunc('hour', e.occurred_at, 'UTC') AS hour, p.key, jsonb_typeof(p.value) AS type,"
        "      count(*) AS n"
        "    FROM events e, jsonb_each(CASE WHEN jsonb_typeof(e.properties) = 'object' THEN e.properties"
        "      ELSE '{}'::jsonb END) p"
        "    WHERE e.occurred_at >= $1 AND e.occurred_at < $2 GROUP BY 1, 2, 3, 4) typed) totals) ranked "
        "WHERE r <= $3",
        start,
        end,
        MAX_KEYS,
    )
    return written


async def forget_before(conn: Connection, before: datetime) -> None:
    """Drop the reductions older than any baseline reads."""
    await conn.execute("DELETE FROM data_health_hours WHERE hour < $1", before)
    await conn.execute("DELETE FROM data_health_properties WHERE hour < $1", before)
