"""Violation counts and the observed schema in PostgreSQL: added to every few seconds, read by the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from flagd.storage.types import Connection
from flagd.tracking.observed import NameSeen

_ADD_VIOLATIONS = """
INSERT INTO event_plan_violations (day, name, code, mode, count, last_seen)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])
ON CONFLICT (day, name, code, mode) DO UPDATE SET
    count = event_plan_violations.count + EXCLUDED.count,
    last_seen = greatest(event_plan_violations.last_seen, EXCLUDED.last_seen)
"""
_ADD_NAMES = """
INSERT INTO event_schema (name, events, first_seen, last_seen)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[])
ON CONFLICT (name) DO UPDATE SET
    events = event_schema.events + EXCLUDED.events,
    first_seen = least(event_schema.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(event_schema.last_seen, EXCLUDED.last_seen)
"""
# Examples: the stored ones, then new distinct ones, at most 5 (MAX_EXAMPLES) in all.
_ADD_PROPERTIES = """
INSERT INTO event_schema_properties AS p (name, property, type, seen, first_seen, last_seen, examples)
SELECT n, pr, t, s, f, l, e::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[])
    AS u(n, pr, t, s, f, l, e)
ON CONFLICT (name, property, type) DO UPDATE SET
    seen = p.seen + EXCLUDED.seen,
    first_seen = least(p.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(p.last_seen, EXCLUDED.last_seen),
    examples = CASE WHEN jsonb_array_length(p.examples) >= 5 THEN p.examples ELSE
        (SELECT coalesce(jsonb_agg(v ORDER BY o), '[]') FROM (
            SELECT v, min(o) AS o FROM jsonb_array_elements(p.examples || EXCLUDED.examples)
                WITH ORDINALITY AS x(v, o) GROUP BY v ORDER BY min(o) LIMIT 5) AS kept)
    END
"""


@dataclass(frozen=True, slots=True)
class ViolationCount:
    day: date
    name: str
    code: str
    mode: str
    count: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class ObservedProperty:
    property: str
    type: str
    seen: int
    first_seen: datetime
    last_seen: datetime
    examples: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    name: str
    events: int
    first_seen: datetime
    last_seen: datetime
    properties: tuple[ObservedProperty, ...]


class TrackingRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add_violations(self, counts: Mapping[tuple[date, str, str, str], tuple[int, datetime]]) -> None:
        if not counts:
            return
        keys = list(counts)
        await self._conn.execute(
            _ADD_VIOLATIONS,
            *([k[i] for k in keys] for i in range(4)),
            [counts[k][0] for k in keys],
            [counts[k][1] for k in keys],
        )

    async def add_observations(self, names: Mapping[str, NameSeen]) -> None:
        seen = {n: e for n, e in names.items() if e.first is not None and e.last is not None}
        if not seen:
            return
        await self._conn.execute(
            _ADD_NAMES,
            list(seen),
            [e.events for e in seen.values()],
            [e.first for e in seen.values()],
            [e.last for e in seen.values()],
        )
        rows = [
            (name, prop, kind, tally.seen, tally.first, tally.last, orjson.dumps(tally.examples).decode())
            for name, entry in seen.items()
            for (prop, kind), tally in sorted(entry.properties.items())
        ]
        if rows:
            await self._conn.execute(_ADD_PROPERTIES, *([row[i] for row in rows] for i in range(7)))

    async def violations(self, since: date, limit: int) -> list[ViolationCount]:
        rows = await self._conn.fetch(
            "SELECT day, name, code, mode, count, last_seen FROM event_plan_violations WHERE day >= $1 "
            "ORDER BY day, name, code, mode LIMIT $2",
            since,
            limit,
        )
        return [ViolationCount(*row) for row in rows]

    async def observed(self, name: str | None, limit: int) -> list[ObservedEvent]:
        names = await self._conn.fetch(
            "SELECT name, events, first_seen, last_seen FROM event_schema "
            "WHERE $1::text IS NULL OR name = $1 ORDER BY name LIMIT $2",
            name,
            limit,
        )
        props = await self._conn.fetch(
            "SELECT name, property, type, seen, first_seen, last_seen, examples::text FROM event_schema_properties "
            "WHERE name = ANY($1::text[]) ORDER BY name, property, type",
            [row["name"] for row in names],
        )
        by_name: dict[str, list[ObservedProperty]] = {}
        for row in props:
            by_name.setdefault(row["name"], []).append(
                ObservedProperty(
                    row["property"],
                    row["type"],
                    row["seen"],
                    row["first_seen"],
                    row["last_seen"],
                    tuple(orjson.loads(row["examples"])),
                )
            )
        return [
            ObservedEvent(
                row["name"],
                row["events"],
                row["first_seen"],
                row["last_seen"],
                tuple(by_name.get(row["name"], ())),
            )
            for row in names
        ]
