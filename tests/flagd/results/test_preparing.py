"""A running experiment's first look while its roll-ups are built in the background: 202 "preparing, N%
done" at once, never a wait, and the results once the woken keeper has built them."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace

import asyncpg
import httpx
import pytest

from flagd.auth.keys import Scope
from flagd.settings import Settings
from tests.flagd.results.test_results_recompute import start_pricing
from tests.flagd.web.test_sessions import logged_in
from tests.support import LiveServer, create_key


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Every phase counts as large: its first roll-ups are built in the background. The keeper's timed
    # rounds are far apart, so only the request's wake-up can build them.
    return replace(settings, results_inline_build_units=0, results_rollup_seconds=3_600)


async def test_should_answer_preparing_at_once_and_the_results_once_the_keeper_built_the_rollups(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 60, database_url)
    assert await conn.fetchval("SELECT count(*) FROM results_rollups") == 0
    first = await results_client.get("/v1/experiments/pricing/results")
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["experiment"] == "pricing"
    assert body["state"] == "preparing"
    assert 0 <= body["preparing"]["percentDone"] < 100
    assert body["preparing"]["rollups"] == 4  # purchase (two windows), visit, survey
    assert body["message"].startswith(f"preparing, {body['preparing']['percentDone']}% done")

    deadline = time.monotonic() + 60
    answer = first
    while answer.status_code == 202 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        answer = await results_client.get("/v1/experiments/pricing/results")
    assert answer.status_code == 200, answer.text
    assert await conn.fetchval("SELECT count(*) FROM results_rollups") == body["preparing"]["rollups"]
    assert answer.json()["metrics"]


async def test_should_list_an_experiment_being_prepared_without_its_headline(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    listed = await results_client.get("/v1/experiments")
    assert listed.status_code == 200, listed.text
    (pricing,) = [e for e in listed.json()["experiments"] if e["key"] == "pricing"]
    assert pricing["headline"] is None
    series = await results_client.get("/v1/experiments/pricing/results/timeseries")
    assert series.status_code in (200, 202), series.text


async def test_should_show_the_page_preparing_with_its_progress_and_reload_it(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, server: LiveServer, database_url: str
) -> None:
    await start_pricing(admin, sdk, 30, database_url)
    http = await logged_in(server, await create_key(database_url, Scope.RESULTS, "pm"))
    try:
        page = await http.get("/experiments/pricing")
        assert page.status_code == 202, page.text
        assert re.search(r"Preparing results, \d+% done", page.text)
        assert '<meta http-equiv="refresh" content="3">' in page.text
    finally:
        await http.aclose()
