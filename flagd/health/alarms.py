"""The data-health alarms: their stored form, and the open → resolved lifecycle applied after each judged hour.

A finding (flagd.health.rules) with no open alarm of its kind, event and subject opens one and writes a
notification `data.<kind>` to the outbox in the same transaction; an open alarm whose rule no longer fires
in the hour judged resolves, with a notification of the same kind whose `state` is "resolved".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import asyncpg
from uuid_utils.compat import uuid7

from flagd.health.rules import Finding
from flagd.notify.outbox import enqueue
from flagd.storage.types import Connection


@dataclass(frozen=True, slots=True)
class Alarm:
    id: UUID
    kind: str
    rule: str
    event: str
    subject: str
    state: str
    since: datetime
    opened_at: datetime
    last_hour: datetime
    resolved_at: datetime | None
    expected: float
    observed: float
    summary: str
    advice: str
    details: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        """The API's and the notifications' form (camelCase, like the rest of flagd's JSON)."""
        return {
            "id": str(self.id),
            "kind": self.kind,
            "rule": self.rule,
            "event": self.event,
            "subject": self.subject,
            "state": self.state,
            "since": self.since.isoformat(),
            "openedAt": self.opened_at.isoformat(),
            "lastHour": self.last_hour.isoformat(),
            "resolvedAt": self.resolved_at.isoformat() if self.resolved_at else None,
            "expected": self.expected,
            "observed": self.observed,
            "summary": self.summary,
            "advice": self.advice,
            "details": self.details,
        }


def _alarm(row: Any) -> Alarm:
    values = dict(row)
    values["details"] = dict(values["details"] or {})  # the pool's jsonb codec decodes it
    return Alarm(**values)


async def list_alarms(conn: Connection, *, state: str | None, event: str | None, limit: int) -> list[Alarm]:
    """The alarms, open ones first, newest first."""
    rows = await conn.fetch(
        "SELECT * FROM data_health_alarms WHERE ($1::text IS NULL OR state = $1) "
        "AND ($2::text IS NULL OR event = $2) ORDER BY state = 'open' DESC, opened_at DESC, id LIMIT $3",
        state,
        event,
        limit,
    )
    return [_alarm(r) for r in rows]


async def open_for_events(conn: Connection, events: Iterable[str]) -> list[Alarm]:
    rows = await conn.fetch(
        "SELECT * FROM data_health_alarms WHERE state = 'open' AND event = ANY($1) "
        "ORDER BY event, kind, subject",
        sorted(events),
    )
    return [_alarm(r) for r in rows]


async def open_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Open alarms per (kind, event), for the /metrics gauge."""
    rows = await conn.fetch(
        "SELECT kind, event, count(*) FROM data_health_alarms WHERE state = 'open' GROUP BY 1, 2"
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}


@dataclass(frozen=True, slots=True)
class Changes:
    opened: tuple[Alarm, ...]
    resolved: tuple[Alarm, ...]


async def apply_findings(
    conn: Connection,
    findings: Sequence[Finding],
    undecided: Set[tuple[str, str, str]],
    judged: Iterable[str],
    hour: datetime,
    now: datetime,
    details: dict[tuple[str, str, str], dict[str, Any]] | None = None,
) -> Changes:
    """`conn` has flagd's JSON codecs (flagd.storage.pool). Open, update and resolve the alarms of the `judged` event names after `hour` was judged (in the
    caller's transaction); an `undecided` one (too few events in the hour to judge it) stays as it is."""
    names = set(judged)
    outbox = cast(asyncpg.Connection, conn)  # a pool's proxy behaves as its connection
    current = {(a.kind, a.event, a.subject): a for a in await open_for_events(conn, names)}
    found = {f.identity: f for f in findings}
    opened, resolved = [], []
    for identity, finding in found.items():
        if identity in current:
            await conn.execute(
                "UPDATE data_health_alarms SET rule = $2, last_hour = $3, expected = $4, observed = $5, "
                "summary = $6, advice = $7 WHERE id = $1",
                current[identity].id,
                finding.rule,
                hour,
                finding.expected,
                finding.observed,
                finding.summary,
                finding.advice,
            )
            continue
        row = await conn.fetchrow(
            "INSERT INTO data_health_alarms (id, kind, rule, event, subject, state, since, opened_at, last_hour, "
            "expected, observed, summary, advice, details) "
            "VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $9, $10, $11, $12, $13::jsonb) RETURNING *",
            UUID(str(uuid7())),
            finding.kind,
            finding.rule,
            finding.event,
            finding.subject,
            finding.since,
            now,
            hour,
            finding.expected,
            finding.observed,
            finding.summary,
            finding.advice,
            (details or {}).get(identity, {}),
        )
        alarm = _alarm(row)
        await enqueue(outbox, f"data.{alarm.kind}", alarm.event, alarm.wire())
        opened.append(alarm)
    for identity, alarm in current.items():
        if identity in found or identity in undecided:
            continue
        row = await conn.fetchrow(
            "UPDATE data_health_alarms SET state = 'resolved', resolved_at = $2 WHERE id = $1 RETURNING *",
            alarm.id,
            now,
        )
        done = _alarm(row)
        await enqueue(outbox, f"data.{done.kind}", done.event, done.wire())
        resolved.append(done)
    return Changes(tuple(opened), tuple(resolved))


async def top_repeaters(
    conn: Connection, event: str, start: datetime, end: datetime, limit: int = 5
) -> list[str]:
    """The units that fired `event` again within a second most often in [start, end): what to check first."""
    rows = await conn.fetch(
        "SELECT unit FROM (SELECT unit, occurred_at - lag(occurred_at) OVER (PARTITION BY unit ORDER BY occurred_at) "
        "AS gap FROM events WHERE name = $1 AND occurred_at >= $2 AND occurred_at < $3) e "
        "WHERE gap < interval '1 second' GROUP BY unit ORDER BY count(*) DESC, unit LIMIT $4",
        event,
        start,
        end,
        limit,
    )
    return [r[0] for r in rows]
