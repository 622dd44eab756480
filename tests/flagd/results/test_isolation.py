"""Results run in results processes with a bound: past it a request is refused at once, never queued.

A results request whose roll-ups were never built waits for their catch-up lock; the test holds those
locks, so the request stays in its results process for as long as the test wants.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg
import httpx
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.results.sql.rollup import metric_sources
from flagd.settings import Settings
from tests.flagd.results.test_results_recompute import start_pricing
from tests.flagd.results.test_rollup import POLICY, catalog_of
from tests.support import bearer, create_key, running_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One results process and no request waiting for it: a second results request is refused at once."""
    return replace(settings, results_processes=1, results_max_waiting=0)


@pytest.fixture
async def results_key(database_url: str) -> str:
    return await create_key(database_url, Scope.RESULTS, "pm-impatient")


@asynccontextmanager
async def rollups_held(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Every catch-up lock of the pricing experiment's phase 1, held until the block ends."""
    plan = (await catalog_of(conn)).plan("pricing")
    assert plan is not None
    keys = {s.key for m in plan.metrics for s in metric_sources(m.resolved, POLICY.pre_seconds)}
    async with conn.transaction():
        for key in sorted(keys):
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", "pricing", f"1/{key}"
            )
        yield


async def waiting_on_a_lock(conn: asyncpg.Connection) -> None:
    """Until another session waits for an advisory lock (the results process's catch-up)."""
    for _ in range(500):
        if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no results process ever waited for the roll-up locks")


async def test_should_refuse_results_past_the_bound_at_once_and_keep_evaluating(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    watcher = await asyncpg.connect(database_url)
    try:
        async with rollups_held(conn):
            first = asyncio.create_task(results_client.get("/v1/experiments/pricing/results"))
            await waiting_on_a_lock(watcher)
            busy = await results_client.get("/v1/experiments/pricing/results/timeseries")
            assert busy.status_code == 503, busy.text
            assert busy.json()["error"]["code"] == "results_busy"
            assert busy.headers["retry-after"] == "2"
            assert "FLAGD_RESULTS_PROCESSES" in busy.json()["error"]["message"]
            assert (await results_client.get("/v1/experiments")).status_code == 503
            evaluated = await sdk.post(
                "/ofrep/v1/evaluate/flags/page", json={"context": {"targetingKey": "u1"}}
            )
            assert evaluated.status_code == 200, evaluated.text
            assert not first.done()
    finally:
        await watcher.close()
    answered = await first
    assert answered.status_code == 200, answered.text
    assert answered.json()["units"]
    assert (await results_client.get("/v1/experiments/pricing/results")).status_code == 200


async def test_should_answer_a_results_request_that_takes_too_long_with_503_and_free_its_place(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
    settings: Settings,
    results_key: str,
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    impatient = replace(settings, results_timeout_seconds=1.0, results_max_waiting=1)
    async with (
        running_server(create_app(impatient)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30.0, headers=bearer(results_key)) as http,
    ):
        async with rollups_held(conn):
            late = await http.get("/v1/experiments/pricing/results")
            assert late.status_code == 503, late.text
            assert late.json()["error"]["code"] == "results_timeout"
            assert "FLAGD_RESULTS_TIMEOUT_SECONDS" in late.json()["error"]["message"]
        # The abandoned job ends once the locks are free; then the process takes requests again.
        for _ in range(100):
            answered = await http.get("/v1/experiments/pricing/results")
            if answered.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert answered.status_code == 200, answered.text
