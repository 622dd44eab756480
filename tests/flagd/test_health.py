from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.settings import Settings
from flagd.storage.migrations import load_migrations
from tests.support import (
    TIMEOUT,
    bearer,
    create_key,
    database_name,
    drop_database,
    flag_definition,
    running_server,
)


async def test_should_answer_healthz_without_touching_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_should_be_ready_with_schema_version_and_instance_id(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["schemaVersion"] == load_migrations()[-1].version
    assert body["instanceId"] == await conn.fetchval("SELECT instance_id::text FROM instance")


async def test_should_apply_migrations_at_start_on_an_empty_database(
    empty_database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=empty_database_url, data_dir=tmp_path)
    async with (
        running_server(create_app(settings)) as live,
        httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http,
    ):
        response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json()["schemaVersion"] == load_migrations()[-1].version


async def test_should_not_be_ready_when_migrations_are_pending(
    empty_database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=empty_database_url, data_dir=tmp_path, migrate_on_start=False)
    async with (
        running_server(create_app(settings)) as live,
        httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http,
    ):
        response = await http.get("/readyz")
        alive = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "schema_out_of_date"
    assert "run `flagd migrate`" in response.json()["error"]["message"]
    assert alive.status_code == 200


async def test_should_not_be_ready_when_the_database_goes_away(
    pg_admin_url: str, settings: Settings, database_url: str
) -> None:
    app = create_app(replace(settings, db_pool_min_size=0))
    async with running_server(app) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        assert (await http.get("/readyz")).status_code == 200
        await drop_database(pg_admin_url, database_name(database_url))
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert "not reachable" in response.json()["error"]["message"]


async def test_should_keep_evaluating_and_answer_503_for_database_work_when_the_database_is_gone(
    pg_admin_url: str, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    sdk_key = await create_key(database_url, Scope.SDK)
    admin_key = await create_key(database_url, Scope.ADMIN)
    unseen_key = await create_key(database_url, Scope.SDK, "never used before the outage")
    app = create_app(replace(settings, db_pool_min_size=0))
    async with running_server(app) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        created = await http.post(
            "/v1/admin/flags",
            json={"key": "a", "definition": flag_definition()},
            headers=bearer(admin_key),
        )
        assert created.status_code == 201
        before = await http.post("/ofrep/v1/evaluate/flags/a", json={}, headers=bearer(sdk_key))
        await drop_database(pg_admin_url, database_name(database_url))
        during = await http.post("/ofrep/v1/evaluate/flags/a", json={}, headers=bearer(sdk_key))
        unseen = await http.post("/ofrep/v1/evaluate/flags/a", json={}, headers=bearer(unseen_key))
        write = await http.get("/v1/admin/flags", headers=bearer(admin_key))
    assert before.status_code == during.status_code == 200  # evaluation runs from memory
    assert during.json() == before.json()
    for response in (unseen, write):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
