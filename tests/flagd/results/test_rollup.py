"""The per-unit roll-ups stay equal to a reduction of the raw events as data keeps arriving.

Events go in through POST /v1/events in two rounds; each results request catches the roll-ups up.
The second round has everything that forces a unit to be recomputed: new events of known units,
an earlier first exposure, a second variant (the unit leaves the analysis), new units, and events
timestamped before their unit's exposure. After each round, every metric's sums read from the
roll-ups equal the same reduction run over the raw events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from flagd.config.repository import ConfigRepository
from flagd.experiments.catalog import Catalog, ResolvedMetric
from flagd.results.cache import ReductionCache
from flagd.results.keeper import KEEPER_LOCK_KEY, ResultsKeeper
from flagd.results.model import PhaseData, Reduction
from flagd.results.phase_reader import PhaseReader
from flagd.results.sql.days import day_reductions
from flagd.results.sql.reduce import reduce_metric, reduce_rolled_by
from flagd.results.sql.rollup import RollupPolicy, metric_sources, rollup_states
from flagd.settings import Settings
from flagd.storage.pool import init_connection, open_pool
from tests.flagd.results.test_results_recompute import at, post_all, start_pricing

POLICY = RollupPolicy(pre_seconds=14 * 86_400)


async def catalog_of(conn: asyncpg.Connection) -> Catalog:
    """The stored configuration's catalog, as a worker's snapshot holds it."""
    await init_connection(conn)  # the server's codecs, which the stored configuration reads with
    stored = await ConfigRepository(conn).load()
    return Catalog.build(stored.version, stored.document(), stored.experiments, stored.lifecycles)


async def raw_reduction(conn: asyncpg.Connection, experiment: str, metric: ResolvedMetric) -> Reduction:
    """The metric's sums in phase 1 from the raw events, everything stored counted."""
    end = datetime.now(UTC) + timedelta(days=1)
    return await reduce_metric(conn, experiment, 1, metric, end=end, pre_seconds=POLICY.pre_seconds)


async def assert_rollups_match_raw(conn: asyncpg.Connection) -> int:
    """Every metric's roll-up sums equal the raw reduction; the number of metrics compared."""
    plan = (await catalog_of(conn)).plan("pricing")
    assert plan is not None
    compared = 0
    for role in plan.metrics:
        metric = role.resolved
        keys = tuple(s.key for s in metric_sources(metric, POLICY.pre_seconds))
        rolled = (await reduce_rolled_by(conn, "pricing", 1, metric, keys, attribute=None))[""]
        raw = await raw_reduction(conn, "pricing", metric)
        assert rolled.cap == raw.cap or abs((rolled.cap or 0) - (raw.cap or 0)) < 1e-9, metric.key
        assert set(rolled.variants) == set(raw.variants), metric.key
        for variant, sums in raw.variants.items():
            mine = rolled.variants[variant]
            assert mine.n == sums.n, (metric.key, variant)
            for field in ("y", "y2", "d", "d2", "yd", "x", "x2", "xy"):
                assert abs(getattr(mine, field) - getattr(sums, field)) < 1e-6 * (
                    1 + abs(getattr(sums, field))
                ), (
                    metric.key,
                    variant,
                    field,
                )
        compared += 1
    return compared


def exposure(unit: str, variant: str, moment: datetime, experiment: str = "pricing") -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.uuid4()),
        "timestamp": at(moment),
        "experiment": experiment,
        "phase": 1,
        "variant": variant,
        "unit": unit,
    }


def track(
    unit: str,
    name: str,
    moment: datetime,
    value: float | None = None,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": at(moment),
        "event": name,
        "unit": unit,
    }
    if value is not None:
        event["value"] = value
    if properties is not None:
        event["properties"] = properties
    return event


async def test_should_keep_the_rollups_equal_to_the_raw_reduction_as_events_keep_arriving(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    now = await start_pricing(admin, sdk, 150, database_url)
    first = await results_client.get("/v1/experiments/pricing/results")
    assert first.status_code == 200, first.text
    assert await assert_rollups_match_raw(conn) == 6

    known = await conn.fetch(
        "SELECT unit, variant, exposed_at FROM exposures WHERE NOT multiple_variants LIMIT 4"
    )
    later: list[dict[str, Any]] = []
    moved, switched, more, early = known
    # An earlier first exposure: its window and pre-window move.
    later.append(exposure(moved["unit"], moved["variant"], moved["exposed_at"] - timedelta(hours=6)))
    # A second variant: the unit leaves the analysis.
    other = next(v for v in ("control", "a", "b") if v != switched["variant"])
    later.append(exposure(switched["unit"], other, switched["exposed_at"] + timedelta(minutes=5)))
    # New events of a known unit, after and before its exposure.
    later.append(track(more["unit"], "purchase", more["exposed_at"] + timedelta(hours=1), 123.0))
    later.append(track(more["unit"], "survey", more["exposed_at"] + timedelta(hours=2), 10.0))
    later.append(track(early["unit"], "visit", early["exposed_at"] - timedelta(days=3)))
    # New units.
    for i in range(20):
        unit = f"late-{i}"
        exposed = now - timedelta(hours=10 + i)
        later.append(exposure(unit, ("control", "a", "b")[i % 3], exposed))
        later.append(track(unit, "purchase", exposed + timedelta(hours=1), 10.0 + i))
        later.append(track(unit, "visit", exposed + timedelta(minutes=30)))
    await post_all(sdk, later)

    second = await results_client.get("/v1/experiments/pricing/results")
    assert second.status_code == 200, second.text
    assert second.json()["unitsInSeveralVariants"] == first.json()["unitsInSeveralVariants"] + 1
    assert (
        sum(u["units"] for u in second.json()["units"]) == sum(u["units"] for u in first.json()["units"]) + 19
    )
    assert await assert_rollups_match_raw(conn) == 6
    freshness = second.json()["freshness"]
    assert datetime.fromisoformat(freshness["dataThrough"]) >= datetime.fromisoformat(first.json()["asOf"])
    assert freshness["latestEventReceived"] is not None


async def test_should_answer_from_the_last_catch_up_while_another_holds_the_rollup(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200
    source = metric_sources((await catalog_of(conn)).metrics["visits"], POLICY.pre_seconds)[0]
    before = (await rollup_states(conn, "pricing", 1, [source.key]))[source.key]
    async with conn.transaction():
        # Hold the roll-up as a catch-up would: the request must not wait for it.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", "pricing", f"1/{source.key}"
        )
        answered = await results_client.get("/v1/experiments/pricing/results")
        assert answered.status_code == 200
        held = (await rollup_states(conn, "pricing", 1, [source.key]))[source.key]
        assert held.caught_up_at == before.caught_up_at
    assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200
    after = (await rollup_states(conn, "pricing", 1, [source.key]))[source.key]
    assert after.caught_up_at > before.caught_up_at


async def test_should_keep_running_experiments_up_in_the_background_one_worker_at_a_time(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    settings: Settings,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 60, database_url)
    pool = await open_pool(settings)
    try:
        catalog = await catalog_of(conn)
        keeper = ResultsKeeper(settings, pool, lambda: catalog)
        assert await keeper.run_once() == 1
        # Four sources: purchases within a day, all purchases, visits, survey answers.
        assert await conn.fetchval("SELECT count(*) FROM results_rollups") == 4
        days = await conn.fetchval("SELECT count(DISTINCT day) FROM results_days")
        assert days >= 2  # the simulated exposures began two days ago
        assert await conn.fetchval("SELECT count(*) FROM results_days") == days * 6
        await conn.execute("SELECT pg_advisory_lock($1)", KEEPER_LOCK_KEY)
        try:
            assert await keeper.run_once() is None  # another worker keeps up
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", KEEPER_LOCK_KEY)
    finally:
        await pool.close()

    # The series reads the stored days back: the same as when they were computed.
    await conn.execute("DELETE FROM results_days WHERE day = (SELECT min(day) FROM results_days)")
    computed = await results_client.get("/v1/experiments/pricing/results/timeseries")
    assert computed.status_code == 200, computed.text
    read_back = await results_client.get("/v1/experiments/pricing/results/timeseries")
    assert computed.json()["days"][:-1] == read_back.json()["days"][:-1]
    assert len(computed.json()["days"]) == days + 1  # the past days and today
    # The deleted day was computed again and stored for the metric asked (the primary), not the others.
    assert await conn.fetchval("SELECT count(*) FROM results_days") == days * 6 - 5


async def test_should_reuse_a_reduction_only_while_its_rollups_are_unchanged(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    plan = (await catalog_of(conn)).plan("pricing")
    assert plan is not None
    cache = ReductionCache(capacity=16)

    async def read() -> PhaseData:
        return await PhaseReader(conn, plan, 1, POLICY, cache, datetime.now(UTC) + timedelta(hours=1)).read()

    metrics = len(plan.metrics)
    first = await read()
    assert (cache.hits, cache.misses) == (0, metrics)
    assert (await read()).reductions == first.reductions
    assert (cache.hits, cache.misses) == (metrics, metrics)
    unit = await conn.fetchval("SELECT unit FROM exposures WHERE NOT multiple_variants LIMIT 1")
    await post_all(sdk, [track(unit, "visit", datetime.now(UTC))])
    changed = await read()
    # Only the metrics that read visits miss: "visits" itself, and the ratio over it.
    reading_visits = sum("visit" in m.resolved.event_names for m in plan.metrics)
    assert reading_visits >= 1
    assert (cache.hits, cache.misses) == (2 * metrics - reading_visits, metrics + reading_visits)
    visits = changed.reductions["visits"].variants.values()
    assert sum(v.y for v in visits) == sum(v.y for v in first.reductions["visits"].variants.values()) + 1


async def test_should_drop_the_derived_rows_of_a_deleted_experiment_and_keep_its_events(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM results_unit_values") > 0
    events = await conn.fetchval("SELECT count(*) FROM events")
    assert (await admin.post("/v1/admin/experiments/pricing/stop")).status_code == 200
    deleted = await admin.delete("/v1/admin/experiments/pricing")
    assert deleted.status_code == 204, deleted.text
    for table in (
        "results_unit_values",
        "results_rollups",
        "results_days",
        "results_unit_changes",
        "results_sums",
        "results_reductions",
    ):
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    assert await conn.fetchval("SELECT count(*) FROM events") == events


async def test_should_compute_past_days_within_a_budget_latest_first(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    now = await start_pricing(admin, sdk, 30, database_url)
    metrics = (await catalog_of(conn)).metrics
    days = [now.date() - timedelta(days=offset) for offset in (3, 2, 1)]
    spent = await day_reductions(
        conn,
        "pricing",
        1,
        metrics["visits"],
        days,
        now=now,
        pre_seconds=POLICY.pre_seconds,
        budget_seconds=0.0,
    )
    assert list(spent) == [days[-1]]  # one day at least, the latest
    series = (await results_client.get("/v1/experiments/pricing/results/timeseries")).json()
    assert series["pendingDays"] == []  # small data: every day fits in the request's budget
    assert len(series["days"]) >= 3


async def test_should_count_an_event_whose_transaction_was_open_during_a_catch_up(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 60, database_url)
    assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200
    unit = await conn.fetchval("SELECT unit FROM exposures WHERE NOT multiple_variants LIMIT 1")
    exposed_at = await conn.fetchval("SELECT exposed_at FROM exposures WHERE unit = $1", unit)
    writer = await asyncpg.connect(database_url)
    try:
        # Stored as the event writer stores it: received_at is its transaction's start, and it commits later.
        async with writer.transaction():
            await writer.execute(
                "INSERT INTO events (event_id, occurred_at, received_at, name, unit, value) "
                "VALUES (gen_random_uuid(), $1, now(), 'visit', $2, NULL)",
                exposed_at + timedelta(minutes=30),
                unit,
            )
            # A catch-up while that transaction is open: it cannot see the row, and must not move past it.
            assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200
    finally:
        await writer.close()
    assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200
    assert await assert_rollups_match_raw(conn) == 6
