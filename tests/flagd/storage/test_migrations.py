from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from flagd.storage.migrations import (
    MigrationError,
    apply_migrations,
    load_migrations,
    schema_status,
)


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


def test_should_load_shipped_migrations_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].label == "0001_instance"


def test_should_ignore_files_that_are_not_sql(tmp_path: Path) -> None:
    folder = write(tmp_path, {"0001_a.sql": "SELECT 1", "README.md": "notes"})
    assert [m.label for m in load_migrations(folder)] == ["0001_a"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_a.sql": "SELECT 1"}, "must be named NNNN_lowercase_words.sql"),
        ({"0001_Add.sql": "SELECT 1"}, "must be named NNNN_lowercase_words.sql"),
        ({"0001_a.sql": "SELECT 1", "0001_b.sql": "SELECT 2"}, "two migration files share number 0001"),
        ({"0001_a.sql": "SELECT 1", "0003_c.sql": "SELECT 3"}, "migration 0002 is missing"),
        ({"0002_b.sql": "SELECT 2"}, "migration 0001 is missing"),
    ],
)
def test_should_reject_badly_numbered_migration_files(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(MigrationError, match=message):
        load_migrations(write(tmp_path, files))


async def test_should_apply_pending_migrations_once_and_record_them(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = write(
        tmp_path,
        {
            "0001_items.sql": "CREATE TABLE items (id int)",
            "0002_more.sql": "ALTER TABLE items ADD COLUMN n int",
        },
    )
    migrations = load_migrations(folder)
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await apply_migrations(conn, migrations)
        second = await apply_migrations(conn, migrations)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'"
        )
        status = await schema_status(conn, migrations)
    finally:
        await conn.close()
    assert [m.label for m in first] == ["0001_items", "0002_more"]
    assert second == []
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in migrations
    ]
    assert {r["column_name"] for r in columns} == {"id", "n"}
    assert status.up_to_date
    assert status.current == 2


async def test_should_apply_only_new_migrations_on_an_older_schema(
    empty_database_url: str, tmp_path: Path
) -> None:
    old = load_migrations(write(tmp_path / "v1", {"0001_items.sql": "CREATE TABLE items (id int)"}))
    new = load_migrations(
        write(
            tmp_path / "v2",
            {"0001_items.sql": "CREATE TABLE items (id int)", "0002_more.sql": "CREATE TABLE more (id int)"},
        )
    )
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, old)
        before = await schema_status(conn, new)
        applied = await apply_migrations(conn, new)
    finally:
        await conn.close()
    assert (before.current, before.latest, before.up_to_date) == (1, 2, False)
    assert [m.label for m in applied] == ["0002_more"]


async def test_should_run_each_migration_once_when_two_servers_migrate_together(
    empty_database_url: str, tmp_path: Path
) -> None:
    # Without the lock both would run CREATE TABLE and one would fail with "already exists";
    # pg_sleep widens the window in which the second one would start.
    folder = write(tmp_path, {"0001_slow.sql": "SELECT pg_sleep(0.3); CREATE TABLE once (id int);"})
    migrations = load_migrations(folder)
    first, second = await asyncpg.connect(empty_database_url), await asyncpg.connect(empty_database_url)
    try:
        results = await asyncio.gather(
            apply_migrations(first, migrations), apply_migrations(second, migrations)
        )
        count = await first.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await first.close()
        await second.close()
    assert sorted(len(r) for r in results) == [0, 1]
    assert count == 1


async def test_should_leave_no_trace_of_a_failing_migration(empty_database_url: str, tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "0001_ok.sql": "CREATE TABLE ok (id int)",
            "0002_bad.sql": "CREATE TABLE half (id int); SELECT 1/0;",
        },
    )
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_migrations(conn, load_migrations(folder))
        status = await schema_status(conn, load_migrations(folder))
        half = await conn.fetchval("SELECT to_regclass('half')")
        locks = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    finally:
        await conn.close()
    assert status.current == 1
    assert half is None
    assert locks == 0


async def test_should_refuse_a_migration_edited_after_it_was_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    original = load_migrations(write(tmp_path / "a", {"0001_items.sql": "CREATE TABLE items (id int)"}))
    edited = load_migrations(write(tmp_path / "b", {"0001_items.sql": "CREATE TABLE items (id bigint)"}))
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, original)
        with pytest.raises(MigrationError, match="0001_items was changed after it was applied"):
            await apply_migrations(conn, edited)
    finally:
        await conn.close()


async def test_should_refuse_a_database_newer_than_this_server(
    empty_database_url: str, tmp_path: Path
) -> None:
    newer = load_migrations(
        write(
            tmp_path / "new",
            {"0001_a.sql": "CREATE TABLE a (id int)", "0002_b.sql": "CREATE TABLE b (id int)"},
        )
    )
    older = load_migrations(write(tmp_path / "old", {"0001_a.sql": "CREATE TABLE a (id int)"}))
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, newer)
        with pytest.raises(MigrationError, match="schema version 2, newer than this flagd knows"):
            await apply_migrations(conn, older)
    finally:
        await conn.close()


async def test_should_report_version_zero_for_a_database_never_migrated(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        status = await schema_status(conn, load_migrations())
    finally:
        await conn.close()
    assert status.current == 0
    assert not status.up_to_date
