"""The QA view of one unit: its newest events, each with the plan's verdict and whether it fired again.

Read by GET /v1/events/live and the page /events/live (flagd.routes.live_events), which polls it every two
seconds with the cursor of its last answer. The verdicts are TailCheck's (flagd.tracking.tail), the same
that `flagd events tail --unit U --check` prints.

What one read costs is bounded whatever it is asked: at most `limit` (≤ MAX_LIMIT) events of one unit, from
at most WINDOW back (a first read, or an older cursor, starts there), and at most MAX_CONTEXT earlier events
of the unit received within CONTEXT before the first, which TailCheck is fed first so that an event that
fired again just after the previous page still says so.

The cursor: events are read in the order they were received, (received_at, id), like `tail`. An event
becomes visible when its group commit ends, normally milliseconds after it was received, so a reader that
moved its cursor past every row it saw could skip one that committed late. The cursor therefore stays before
the events received in the last SETTLE, which the next read sends again (with the same id: the page keeps
one row per kind and id). The read shows new events at once and never skips one that committed within SETTLE.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flagd.errors import InvalidParameter
from flagd.http.params import shown
from flagd.ingest.repository import StoredEvent
from flagd.storage.types import Connection
from flagd.tracking.check import CompiledPlan, UnplannedMode
from flagd.tracking.tail import REPEAT_SECONDS, TailCheck

MAX_LIMIT = 200
DEFAULT_LIMIT = 100
MAX_UNIT = 256
"""Units are at most this long (POST /v1/events refuses longer ones: invalid_unit)."""
WINDOW = timedelta(hours=1)
CONTEXT = timedelta(minutes=1)
MAX_CONTEXT = 200
SETTLE = timedelta(seconds=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CURSOR = re.compile(
    r"([0-9]{1,17})\.((?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?)", re.ASCII
)
_LATEST_CURSOR = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND

# One unit's events received from $2 on and before the position ($3, $4) when given, newest first. $5 bounds
# occurred_at to the kept partitions (as flagd.ingest.repository's tail read does).
_NEWEST = """
SELECT * FROM (
    SELECT 'track' AS kind, event_id::text AS id, received_at, occurred_at AS at, name, NULL::integer AS phase,
           unit, value, NULL AS variant, properties::text AS data, NULL AS source
    FROM events WHERE unit = $1 AND received_at >= $2 AND occurred_at > $5
    UNION ALL
    SELECT 'exposure', event_id::text, received_at, exposed_at, experiment, phase, unit, NULL, variant,
           attributes::text, source
    FROM exposures WHERE unit = $1 AND received_at >= $2
) recent
WHERE $3::timestamptz IS NULL OR (received_at, id) < ($3, $4::text)
ORDER BY received_at DESC, id DESC LIMIT $6
"""
# One unit's events after the position ($2, $3), oldest first.
_AFTER = """
SELECT * FROM (
    SELECT 'track' AS kind, event_id::text AS id, received_at, occurred_at AS at, name, NULL::integer AS phase,
           unit, value, NULL AS variant, properties::text AS data, NULL AS source
    FROM events WHERE unit = $1 AND received_at >= $2 AND occurred_at > $4
    UNION ALL
    SELECT 'exposure', event_id::text, received_at, exposed_at, experiment, phase, unit, NULL, variant,
           attributes::text, source
    FROM exposures WHERE unit = $1 AND received_at >= $2
) recent
WHERE (received_at, id) > ($2, $3::text)
ORDER BY received_at, id LIMIT $5
"""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a read stopped: the (received_at, id) of the last event it is sure of ("" before any id)."""

    received_at: datetime
    id: str = ""

    def encode(self) -> str:
        return f"{(self.received_at - _EPOCH) // _MICROSECOND}.{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Position:
        match = _CURSOR.fullmatch(raw) if len(raw) <= 60 else None
        if match is None or int(match.group(1)) > _LATEST_CURSOR:
            raise InvalidParameter(
                "after must be the cursor of an earlier answer of this endpoint (its `cursor` member), "
                f"got {shown(raw)}",
                code="invalid_cursor",
            )
        return cls(_EPOCH + int(match.group(1)) * _MICROSECOND, match.group(2))


@dataclass(frozen=True, slots=True)
class LiveQuery:
    unit: str
    after: Position | None
    limit: int

    @classmethod
    def parse(cls, unit: str | None, after: str | None, limit: int | None) -> LiveQuery:
        if unit is None or unit == "":
            raise InvalidParameter(
                "unit is required: the unit to follow, as the app sends it (a user id or a test device's id)",
                code="unit_required",
            )
        if len(unit) > MAX_UNIT:
            raise InvalidParameter(
                f"unit must be at most {MAX_UNIT} characters, as POST /v1/events accepts units; "
                f"got {len(unit)} characters",
                code="unit_too_long",
            )
        if "\x00" in unit:
            raise InvalidParameter("unit must not hold NUL characters, as POST /v1/events accepts units")
        return cls(unit, None if after is None else Position.decode(after), limit or DEFAULT_LIMIT)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    row: StoredEvent
    verdict: dict[str, Any]
    """TailCheck's: matches, planned, violations, repeatSeconds."""

    def to_json(self) -> dict[str, Any]:
        row, verdict = self.row, self.verdict
        body: dict[str, Any] = {
            "kind": row.kind,
            "id": row.id,
            "at": row.at.isoformat(),
            "receivedAt": row.received_at.isoformat(),
            "name": row.name,
            "unit": row.unit,
        }
        data = orjson.loads(row.data) if row.data else None
        if row.kind == "track":
            body.update(
                value=row.value,
                properties=data or {},
                check={
                    "matches": verdict["matches"],
                    "planned": verdict["planned"],
                    "violations": verdict["violations"],
                },
            )
        else:
            body.update(
                phase=row.phase, variant=row.variant, source=row.source, attributes=data or {}, check=None
            )
        body.update(repeated=verdict["repeatSeconds"] is not None, repeatSeconds=verdict["repeatSeconds"])
        return body


@dataclass(frozen=True, slots=True)
class LivePage:
    unit: str
    events: tuple[LiveEvent, ...]
    cursor: Position
    more: bool
    """More events follow the ones sent: ask again at once with the cursor."""
    plan_exists: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "events": [e.to_json() for e in self.events],
            "cursor": self.cursor.encode(),
            "more": self.more,
            "planExists": self.plan_exists,
            "repeatSeconds": REPEAT_SECONDS,
        }


async def read_live(
    conn: Connection,
    query: LiveQuery,
    *,
    plan: CompiledPlan,
    unplanned: UnplannedMode,
    now: datetime,
    max_age_days: int,
) -> LivePage:
    """The unit's events after the query's cursor (or its newest ones), oldest first, with their verdicts."""
    oldest = now - timedelta(days=max_age_days + 1)
    start = now - WINDOW
    if query.after is None:
        newest = await conn.fetch(_NEWEST, query.unit, start, None, None, oldest, query.limit)
        rows = [_stored(r) for r in reversed(newest)]
        more = False
    else:
        after = query.after if query.after.received_at >= start else Position(start)
        found = await conn.fetch(_AFTER, query.unit, after.received_at, after.id, oldest, query.limit)
        rows = [_stored(r) for r in found]
        more = len(rows) >= query.limit
    checker = TailCheck(plan, unplanned)
    if rows:
        first = rows[0]
        earlier = await conn.fetch(
            _NEWEST, query.unit, first.received_at - CONTEXT, first.received_at, first.id, oldest, MAX_CONTEXT
        )
        for row in reversed(earlier):
            checker.verdict(_stored(row))
    events = tuple(LiveEvent(row, checker.verdict(row)) for row in rows)
    return LivePage(query.unit, events, _cursor(rows, query.after, now), more, plan.exists)


def _cursor(rows: Sequence[StoredEvent], after: Position | None, now: datetime) -> Position:
    """After the last event received before the last SETTLE; else where the read started."""
    settled = [row for row in rows if row.received_at < now - SETTLE]
    if settled:
        return Position(settled[-1].received_at, settled[-1].id)
    if after is not None:
        return after
    return Position(min([now - SETTLE, *(row.received_at for row in rows)]))


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        kind=row["kind"],
        id=row["id"],
        received_at=row["received_at"],
        at=row["at"],
        name=row["name"],
        unit=row["unit"],
        data=row["data"],
        value=row["value"],
        phase=row["phase"],
        variant=row["variant"],
        source=row["source"],
    )
