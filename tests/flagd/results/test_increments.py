"""A catch-up adds a unit's new events to its row (flagd.results.sql.rollup, incremental sources): the rows
equal those a build from every event gives, in the cases an increment can get wrong — an event at the same
moment as the unit's last value, a later one, one before the exposure, one past the window, a unit's first
event — and a roll-up caught up before rows knew when their last value happened is recomputed whole first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from flagd.results.sql.rollup import Source, catch_up, metric_sources
from tests.flagd.results.test_results_recompute import post_all, start_pricing
from tests.flagd.results.test_rollup import POLICY, catalog_of, track

CONTENT = "unit, variant, post_count, post_sum, post_last, pre_count, pre_sum, post_values"
ROW = CONTENT + ", post_last_at"


async def sources(conn: asyncpg.Connection) -> list[Source]:
    """The pricing experiment's incremental sources (its metrics' events and windows), each once."""
    catalog = await catalog_of(conn)
    plan = catalog.plan("pricing")
    assert plan is not None
    found = {s.key: s for m in plan.metrics for s in metric_sources(m.resolved, POLICY.pre_seconds)}
    return [s for s in found.values() if s.incremental]


async def rows(conn: asyncpg.Connection, source: Source, row: str = ROW) -> list[tuple[Any, ...]]:
    found = await conn.fetch(
        f"SELECT {row} FROM results_unit_values WHERE experiment = 'pricing' AND phase = 1 AND source = $1",
        source.key,
    )
    return sorted(tuple(r) for r in found)


async def rebuilt(conn: asyncpg.Connection, source: Source, row: str = ROW) -> list[tuple[Any, ...]]:
    """The source's rows as a build from every event makes them now (nothing of it kept)."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        for table in ("results_unit_values", "results_rollups"):
            await conn.execute(f"DELETE FROM {table} WHERE source = $1", source.key)
        await catch_up(conn, "pricing", 1, source, wait=True)
        return await rows(conn, source, row)
    finally:
        await transaction.rollback()


async def tricky_events(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """New events of known units that an increment must add exactly."""
    last = await conn.fetch(
        """SELECT DISTINCT ON (e.unit) e.unit, e.occurred_at, e.value, x.exposed_at FROM events e
           JOIN exposures x ON x.experiment = 'pricing' AND x.unit = e.unit AND NOT x.multiple_variants
           WHERE e.name = 'survey' AND e.occurred_at >= x.exposed_at AND e.value IS NOT NULL
           ORDER BY e.unit, e.occurred_at DESC LIMIT 3"""
    )
    assert len(last) == 3
    tie, lower, later = last
    units = await conn.fetch(
        "SELECT unit, exposed_at FROM exposures WHERE NOT multiple_variants ORDER BY unit DESC LIMIT 3"
    )
    events = [
        # The same moment as the unit's last answer, a greater value (the greater is the last) and a smaller.
        track(tie["unit"], "survey", tie["occurred_at"], 10.0),
        track(lower["unit"], "survey", lower["occurred_at"], -1.0),
        track(later["unit"], "survey", later["exposed_at"] + timedelta(hours=20), 3.0),
    ]
    for row in units:
        exposed = row["exposed_at"]
        events += [
            track(row["unit"], "purchase", exposed + timedelta(hours=2), 5.0),  # in every window
            track(row["unit"], "purchase", exposed + timedelta(days=1, hours=1), 7.0),  # past the 1-day one
            track(row["unit"], "purchase", exposed - timedelta(days=2), 9.0),  # the pre-exposure window
            track(row["unit"], "visit", exposed + timedelta(minutes=1)),
        ]
    return events


async def test_should_add_new_events_to_the_rows_exactly_as_a_build_from_every_event(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str
) -> None:
    await start_pricing(admin, sdk, 60, database_url)
    incremental = await sources(conn)
    assert {s.event for s in incremental} == {"purchase", "visit", "survey"}
    for source in incremental:
        await catch_up(conn, "pricing", 1, source, wait=True)
    assert await conn.fetchval("SELECT bool_and(increments) FROM results_rollups")
    await post_all(sdk, await tricky_events(conn))

    statements: list[str] = []

    def logger(record: Any) -> None:
        statements.append(record.query)

    conn.add_query_logger(logger)
    try:
        for source in incremental:
            await catch_up(conn, "pricing", 1, source, wait=True)
    finally:
        conn.remove_query_logger(logger)
    # Each catch-up took the new events as increments (no exposure was rewritten).
    recomputes = [s for s in statements if "INSERT INTO results_unit_changes" in s]
    assert len(recomputes) == len(incremental)
    assert all("NOT t.whole" in s for s in recomputes)
    for source in incremental:
        assert await rows(conn, source) == await rebuilt(conn, source), source.key


async def test_should_recompute_whole_a_rollup_caught_up_before_increments(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str
) -> None:
    await start_pricing(admin, sdk, 60, database_url)
    incremental = await sources(conn)
    for source in incremental:
        await catch_up(conn, "pricing", 1, source, wait=True)
    # As a roll-up caught up before: rows without the moment of their last value, not marked bounded.
    await conn.execute("UPDATE results_unit_values SET post_last_at = NULL")
    await conn.execute("UPDATE results_rollups SET increments = false")
    await post_all(sdk, await tricky_events(conn))
    for source in incremental:
        await catch_up(conn, "pricing", 1, source, wait=True)
        # (rows not touched keep no moment of their last value: compared without it)
        assert await rows(conn, source, CONTENT) == await rebuilt(conn, source, CONTENT), source.key
    assert await conn.fetchval("SELECT bool_and(increments) FROM results_rollups")
    # A row without the moment, touched once the roll-up takes increments, is recomputed whole: an
    # answer at the same moment as its last with a smaller value must not replace it.
    await conn.execute("UPDATE results_unit_values SET post_last_at = NULL")
    await post_all(sdk, await tricky_events(conn))
    for source in incremental:
        await catch_up(conn, "pricing", 1, source, wait=True)
        assert await rows(conn, source, CONTENT) == await rebuilt(conn, source, CONTENT), source.key
