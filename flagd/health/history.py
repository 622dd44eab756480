"""What the rules read for the hour judged, from the hourly reductions (flagd.health.reduce): bounded by
the number of event names judged and the hours `hours_needed` lists."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from flagd.health.judging import EventHistory, hours_needed
from flagd.health.rules import BASELINE_DAYS, PropertyCounts, Share
from flagd.storage.types import Connection


async def judged_names(conn: Connection, hour: datetime, limit: int) -> list[str]:
    """The `limit` event names with the most events over the baseline days up to `hour`, and every name
    with an open alarm (so it can resolve)."""
    rows = await conn.fetch(
        "(SELECT name FROM data_health_hours WHERE hour > $1 AND hour <= $2 GROUP BY name "
        " ORDER BY sum(events) DESC, name LIMIT $3) "
        "UNION SELECT event FROM data_health_alarms WHERE state = 'open'",
        hour - timedelta(days=BASELINE_DAYS),
        hour,
        limit,
    )
    return sorted(r[0] for r in rows)


async def histories(conn: Connection, names: list[str], hour: datetime) -> list[EventHistory]:
    since = hour - timedelta(days=BASELINE_DAYS)
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    for row in await conn.fetch(
        "SELECT name, hour, events FROM data_health_hours WHERE name = ANY($1) AND hour = ANY($2)",
        names,
        hours_needed(hour),
    ):
        counts[row["name"]][row["hour"]] = int(row["events"])
    first: dict[str, datetime] = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT name, min(hour) FROM data_health_hours WHERE name = ANY($1) GROUP BY name", names
        )
    }
    totals = {
        r["name"]: r
        for r in await conn.fetch(
            "SELECT name, sum(events) FILTER (WHERE hour = $3) AS events, "
            "sum(repeats) FILTER (WHERE hour = $3) AS repeats, "
            "sum(events) FILTER (WHERE hour < $3) AS base_events, "
            "sum(repeats) FILTER (WHERE hour < $3) AS base_repeats "
            "FROM data_health_hours WHERE name = ANY($1) AND hour >= $2 AND hour <= $3 GROUP BY name",
            names,
            since,
            hour,
        )
    }
    typed: dict[str, dict[str, tuple[dict[str, int], dict[str, int]]]] = defaultdict(dict)
    for row in await conn.fetch(
        "SELECT name, key, type, coalesce(sum(count) FILTER (WHERE hour = $3), 0) AS now, "
        "coalesce(sum(count) FILTER (WHERE hour < $3), 0) AS before "
        "FROM data_health_properties WHERE name = ANY($1) AND hour >= $2 AND hour <= $3 GROUP BY 1, 2, 3",
        names,
        since,
        hour,
    ):
        now, before = typed[row["name"]].setdefault(row["key"], ({}, {}))
        now[row["type"]], before[row["type"]] = int(row["now"]), int(row["before"])
    found = []
    for name in names:
        if name not in first:
            continue
        total = totals.get(name)
        events = int(total["events"] or 0) if total else 0
        base_events = int(total["base_events"] or 0) if total else 0
        found.append(
            EventHistory(
                name=name,
                first_hour=first[name],
                counts=counts.get(name, {}),
                repeats=Share(int(total["repeats"] or 0) if total else 0, events),
                baseline_repeats=Share(int(total["base_repeats"] or 0) if total else 0, base_events),
                properties={
                    key: (PropertyCounts(events, now), PropertyCounts(base_events, before))
                    for key, (now, before) in typed.get(name, {}).items()
                    if sum(before.values())  # a property new this hour is the tracking plan's news, not drift
                },
            )
        )
    return found
