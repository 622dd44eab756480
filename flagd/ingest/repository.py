"""Reads of what ingestion stored: the daily counters (GET /v1/admin/events/stats) and the newest events
(`flagd events tail`). The caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flagd.ingest.events import Kind
from flagd.storage.types import Connection

# Track events and exposures in one order, (received_at, id), so a reader can page through both with one
# cursor. $2 bounds occurred_at to the kept partitions; $6 leaves out rows too new to be surely committed.
_RECENT = """
SELECT * FROM (
    SELECT 'track' AS kind, event_id::text AS id, received_at, occurred_at AS at, name, NULL::integer AS phase,
           unit, value, NULL AS variant, properties::text AS data, NULL AS source
    FROM events WHERE received_at >= $1 AND received_at < $6 AND occurred_at > $2 AND ($3::text IS NULL OR name = $3)
      AND ($8::text IS NULL OR unit = $8)
    UNION ALL
    SELECT 'exposure', event_id::text, received_at, exposed_at, experiment, phase, unit, NULL, variant,
           attributes::text, source
    FROM exposures WHERE received_at >= $1 AND received_at < $6 AND ($3::text IS NULL OR experiment = $3)
      AND ($8::text IS NULL OR unit = $8)
) recent
WHERE ($4::text IS NULL OR kind = $4) AND (received_at, id) > ($1, $7)
ORDER BY received_at, id LIMIT $5
"""


@dataclass(frozen=True, slots=True)
class DayCount:
    """Events of one kind and name stored on one day: track events by event name, exposures by experiment."""

    day: date
    kind: Kind
    name: str
    count: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class DayRejections:
    day: date
    code: str
    count: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class StoredEvent:
    kind: Kind
    id: str
    received_at: datetime
    at: datetime
    """When it happened: a track event's timestamp, an exposure's."""
    name: str
    """The event name (track) or the experiment key (exposure)."""
    unit: str
    data: str | None
    """Properties (track) or attributes (exposure) as JSON text, None when there are none."""
    value: float | None = None
    phase: int | None = None
    variant: str | None = None
    source: str | None = None


class EventRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def counts(self, since: date, limit: int) -> list[DayCount]:
        """Stored events per day, kind and name from `since` on, newest day first."""
        rows = await self._conn.fetch(
            "SELECT day, kind, name, count, last_seen FROM event_counts WHERE day >= $1 "
            "ORDER BY day DESC, kind, name LIMIT $2",
            since,
            limit,
        )
        return [DayCount(r["day"], r["kind"], r["name"], r["count"], r["last_seen"]) for r in rows]

    async def rejections(self, since: date, limit: int) -> list[DayRejections]:
        """Refused events per day and code from `since` on, newest day first."""
        rows = await self._conn.fetch(
            "SELECT day, code, count, last_seen FROM event_rejections WHERE day >= $1 "
            "ORDER BY day DESC, code LIMIT $2",
            since,
            limit,
        )
        return [DayRejections(r["day"], r["code"], r["count"], r["last_seen"]) for r in rows]

    async def recent(
        self,
        after: tuple[datetime, str],
        *,
        received_before: datetime,
        occurred_after: datetime,
        name: str | None,
        kind: Kind | None,
        limit: int,
        unit: str | None = None,
    ) -> list[StoredEvent]:
        """Events after the cursor `after` (received_at, id) and received before `received_before`, in that
        order; only of `kind`, `name` and `unit` when given."""
        rows = await self._conn.fetch(
            _RECENT, after[0], occurred_after, name, kind, limit, received_before, after[1], unit
        )
        return [
            StoredEvent(
                kind=r["kind"],
                id=r["id"],
                received_at=r["received_at"],
                at=r["at"],
                name=r["name"],
                unit=r["unit"],
                data=r["data"],
                value=r["value"],
                phase=r["phase"],
                variant=r["variant"],
                source=r["source"],
            )
            for r in rows
        ]
