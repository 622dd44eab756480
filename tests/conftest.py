"""Shared fixtures: a real PostgreSQL for the whole session, a fresh database per test.

With DATABASE_URL set, tests create their databases on that server (the role needs
CREATEDB); otherwise one embedded cluster is started for the session. A migrated
template database is built once, and each test gets its own copy of it, so tests
never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.ingest.partitions import ensure_partitions
from flagd.ingest.service import DAYS_AHEAD
from flagd.settings import Settings
from flagd.storage.embedded import EmbeddedPostgres
from flagd.storage.migrations import apply_migrations, load_migrations
from tests.support import LiveServer, bearer, create_key, database_url_for, drop_database, running_server


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    # Its own directory, not one of pytest's numbered ones: pytest prunes those at the start of a
    # session, and a second concurrent session would delete this cluster from under this one.
    # A short path also keeps the Unix socket under the kernel's 107-byte limit.
    directory = Path(tempfile.mkdtemp(prefix="flagd-test-pg-"))
    embedded = EmbeddedPostgres(directory)
    url = embedded.start()
    try:
        yield database_url_for(url, "postgres")
    finally:
        embedded.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(pg_admin_url: str) -> Iterator[str]:
    name = f"flagd_test_template_{uuid.uuid4().hex[:8]}"

    async def build() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(database_url_for(pg_admin_url, name))
        try:
            await apply_migrations(conn, load_migrations())
            # The event partitions a server would prepare at start, made once for every copy.
            defaults = Settings()
            await ensure_partitions(
                conn, datetime.now(UTC).date(), defaults.events_max_age_days + 1, DAYS_AHEAD
            )
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(drop_database(pg_admin_url, name))


async def fresh_database(admin_url: str, template: str) -> str:
    name = f"flagd_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return name


@pytest.fixture
async def database_url(pg_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A database of its own for this test, with every migration applied."""
    name = await fresh_database(pg_admin_url, template_database)
    yield database_url_for(pg_admin_url, name)
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def empty_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A database of its own for this test, with no migrations applied."""
    name = await fresh_database(pg_admin_url, "template0")
    yield database_url_for(pg_admin_url, name)
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        port=0,
        data_dir=tmp_path / "data",
        db_pool_max_size=4,
        config_poll_seconds=0.5,
        sse_heartbeat_seconds=1.0,
        results_fresh_seconds=0,  # a test reads what it just posted
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running_server(create_app(settings)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        yield http


@pytest.fixture
async def admin_key(database_url: str) -> str:
    return await create_key(database_url, Scope.ADMIN, "admin-test")


@pytest.fixture
async def sdk_key(database_url: str) -> str:
    return await create_key(database_url, Scope.SDK, "sdk-test")


@pytest.fixture
async def admin(server: LiveServer, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server that sends an admin key."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, headers=bearer(admin_key)) as http:
        yield http


@pytest.fixture
async def sdk(server: LiveServer, sdk_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server that sends an sdk key."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, headers=bearer(sdk_key)) as http:
        yield http
