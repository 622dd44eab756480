"""Exactly once, with real servers on one database: a `flagd serve` process killed with SIGKILL while its
executor is inside a schedule's transaction, then a server started after it; a `flagd serve` process and
a server in the test's process polling the same due schedules. Executors poll every 50 ms."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import httpx

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.settings import Settings
from tests.support import (
    FlagdProcess,
    bearer,
    create_key,
    flag_definition,
    flagd_env,
    free_port,
    running_server,
    serving_workers,
)

FAST = {
    "FLAGD_SCHEDULES_POLL_SECONDS": "0.05",
    "FLAGD_ACCESS_LOG": "false",
    "FLAGD_CONFIG_POLL_SECONDS": "0.5",
}


def in_process(database_url: str, data_dir: Path) -> Settings:
    """A server in the test's own process: another host to the `flagd serve` processes."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        access_log=False,
        db_pool_max_size=4,
        config_poll_seconds=0.5,
        schedules_poll_seconds=0.05,
    )


async def start(database_url: str, log: Path) -> tuple[FlagdProcess, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = FlagdProcess(["serve", "--port", str(port)], flagd_env(DATABASE_URL=database_url, **FAST), log)
    await asyncio.to_thread(server.wait_ready, base)
    return server, base


async def until(conn: asyncpg.Connection, query: str, *args: object) -> None:
    """Until `query` answers true (a server in another process is doing the work)."""
    for _ in range(600):
        if await conn.fetchval(query, *args):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never true: {query}")


async def test_should_execute_once_after_the_server_is_killed_inside_the_transaction(
    database_url: str, tmp_path: Path
) -> None:
    admin, sdk = await create_key(database_url, Scope.ADMIN), await create_key(database_url, Scope.SDK)
    first, base = await start(database_url, tmp_path / "first.log")
    conn = await asyncpg.connect(database_url)
    blocker = await asyncpg.connect(database_url)
    try:
        async with httpx.AsyncClient(base_url=base, headers=bearer(admin), timeout=10.0) as http:
            made = await http.post(
                "/v1/admin/flags", json={"key": "kill", "definition": flag_definition(state="DISABLED")}
            )
            assert made.status_code == 201, made.text
            # The test holds the config lock every writer takes: the executor will claim the schedule, then wait.
            holding = blocker.transaction()
            await holding.start()
            await blocker.execute("SELECT version FROM config_state FOR UPDATE")
            scheduled = await http.post(
                "/v1/schedules",
                json={
                    "action": "enable_flag",
                    "target": "kill",
                    "dueAt": "2026-01-01T00:00:00Z",
                    "allowPast": True,
                },
            )
            assert scheduled.status_code == 201, scheduled.text
        schedule_id = scheduled.json()["id"]
        # The row is locked by the executor's transaction, which waits for the config lock.
        await until(
            conn,
            "SELECT NOT EXISTS (SELECT FROM schedules WHERE id = $1 FOR UPDATE SKIP LOCKED)",
            schedule_id,
        )
        await until(
            conn,
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())",
        )
        os.kill(first.process.pid, signal.SIGKILL)
        assert first.process.wait(10) == -signal.SIGKILL
        await holding.rollback()
        assert await conn.fetchval("SELECT status FROM schedules WHERE id = $1", schedule_id) == "pending"

        async with running_server(create_app(in_process(database_url, tmp_path))) as second:
            await until(conn, "SELECT status <> 'pending' FROM schedules WHERE id = $1", schedule_id)
            assert (
                await conn.fetchval("SELECT status FROM schedules WHERE id = $1", schedule_id) == "executed"
            )
            actor = f"schedule:{schedule_id}"
            changes = await conn.fetch(
                "SELECT entity, action FROM audit_log WHERE actor = $1 ORDER BY id", actor
            )
            assert [(c["entity"], c["action"]) for c in changes] == [
                ("flag", "update"),
                ("schedule", "execute"),
            ]
            sent = await conn.fetchval("SELECT count(*) FROM notifications WHERE kind = 'schedule.executed'")
            assert sent == 1
            version = await conn.fetchval("SELECT version FROM config_state")
            async with httpx.AsyncClient(base_url=second.url, headers=bearer(sdk), timeout=10.0) as http:
                for _ in range(200):
                    if (await http.get("/readyz")).json()["configVersion"] >= version:
                        break
                    await asyncio.sleep(0.025)
                served = await http.post(
                    "/ofrep/v1/evaluate/flags/kill", json={"context": {"targetingKey": "u"}}
                )
            assert served.json()["reason"] == "STATIC", served.text
    finally:
        first.stop()
        await blocker.close()
        await conn.close()


async def test_should_execute_each_of_many_due_schedules_once_across_two_servers(
    database_url: str, tmp_path: Path
) -> None:
    count = 30
    admin = await create_key(database_url, Scope.ADMIN)
    process, base = await serving_workers(database_url, tmp_path / "a.log", 1, **FAST)
    conn = await asyncpg.connect(database_url)
    try:
        async with running_server(create_app(in_process(database_url, tmp_path))):
            await _race(conn, base, admin, count)
    finally:
        await conn.close()
        assert process.stop() == 0, process.output


async def _race(conn: asyncpg.Connection, base: str, admin: str, count: int) -> None:
    """`count` flags, a schedule enabling each due at once, and each executed exactly once."""
    flags = {f"f{i}": flag_definition(state="DISABLED") for i in range(count)}
    async with httpx.AsyncClient(base_url=base, headers=bearer(admin), timeout=10.0) as http:
        applied = await http.put("/v1/admin/flag-set", json={"flags": flags})
        assert applied.status_code == 200, applied.text
    # Due together in a moment, while both executors poll.
    await conn.execute(
        "INSERT INTO schedules (action, target, due_at, created_by) "
        "SELECT 'enable_flag', 'f' || i, now() + interval '1 second', 'test' FROM generate_series(0, $1 - 1) i",
        count,
    )
    await until(conn, "SELECT NOT EXISTS (SELECT FROM schedules WHERE status = 'pending')")
    statuses = await conn.fetch("SELECT status, count(*) FROM schedules GROUP BY status")
    assert [(s["status"], s["count"]) for s in statuses] == [("executed", count)]
    executions = await conn.fetchval(
        "SELECT count(DISTINCT entity_key) FILTER (WHERE entity = 'schedule') || '/' || "
        "count(*) FILTER (WHERE entity = 'schedule') || '/' || count(*) FILTER (WHERE entity = 'flag') "
        "FROM audit_log WHERE actor LIKE 'schedule:%'"
    )
    assert executions == f"{count}/{count}/{count}"  # one execution each, one flag change each
    changed = await conn.fetchval(
        "SELECT count(DISTINCT entity_key) FROM audit_log WHERE entity = 'flag' AND actor LIKE 'schedule:%'"
    )
    assert changed == count
    assert await conn.fetchval("SELECT count(*) FROM notifications WHERE kind = 'schedule.executed'") == count
    states = await conn.fetch("SELECT DISTINCT definition->>'state' AS state FROM flags")
    assert [s["state"] for s in states] == ["ENABLED"]
    executors = await conn.fetch("SELECT executed_by, count(*) FROM schedules GROUP BY executed_by")
    print(f"\nexecuted by: {[(e['executed_by'], e['count']) for e in executors]}")  # shown with -s
