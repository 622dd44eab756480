"""kill -9 of the server while a rollout's transition is inside its transaction: after a restart the
transition has happened exactly once (log, audit, notification and the served flag agree)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from flagd.auth.keys import Scope
from flagd.config.service import FlagService
from flagd.rollouts.service import RolloutService
from flagd.settings import Settings
from flagd.storage.pool import open_pool
from tests.flagd.rollouts.traffic import FLAG_SET, definition
from tests.support import bearer, create_key, flagd_env, free_port

T = TypeVar("T")

WAITING = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO notifications%'"


def _serve(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = flagd_env(DATABASE_URL=database_url, FLAGD_ROLLOUTS_MONITOR_SECONDS="0.1", FLAGD_ACCESS_LOG="false")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flagd", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its results processes too, so kill -9 reaches them all
        )


async def _until(what: str, check: Callable[[], Awaitable[T | None]], seconds: float = 30.0) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)  # polling another process; nothing asserts the delay
    raise AssertionError(f"{what} within {seconds} s")


async def test_should_make_a_transition_exactly_once_across_kill_9(
    database_url: str, settings: Settings, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    pool = await open_pool(settings)
    try:
        async with pool.acquire() as c, c.transaction():
            await FlagService(c, "ops").apply(FLAG_SET, prune=False, dry_run=False)
            await RolloutService(c, "ops").start("r", definition(50, 100, min_units=0, seconds=0))
    finally:
        await pool.close()
    sdk = await create_key(database_url, Scope.SDK, "app")
    blocker = await asyncpg.connect(database_url)
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("LOCK TABLE notifications IN EXCLUSIVE MODE")  # the transition's last write waits
    port = free_port()
    server = _serve(database_url, port, tmp_path / "flagd.log")
    try:
        backend = await _until(
            "the transition never reached its notification", lambda: conn.fetchval(WAITING)
        )
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    finally:
        await lock.rollback()
        await blocker.close()
    gone = "the killed server's transaction never ended"
    await _until(gone, lambda: _gone(conn, backend))
    assert await conn.fetchval("SELECT state FROM rollouts WHERE key = 'r'") == "running"  # rolled back
    server = _serve(database_url, port, tmp_path / "flagd.log")
    try:
        await _until("the restarted server never held it", lambda: _state_is(conn, "held"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=bearer(sdk)) as http:
            audited = await conn.fetchval("SELECT config_version FROM audit_log WHERE action = 'hold'")

            async def served() -> dict[str, Any] | None:
                with contextlib.suppress(httpx.TransportError):
                    answer = await http.get("/v1/flags")
                    if int(answer.headers["ETag"].strip('"').removeprefix("cfg-")) >= audited:
                        found: dict[str, Any] = answer.json()
                        return found
                return None

            document = await _until("the server never served the held rollout", served)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM rollout_transitions WHERE action = 'hold') AS log, "
        "(SELECT count(*) FROM audit_log WHERE entity = 'rollout' AND action = 'hold') AS audit, "
        "(SELECT count(*) FROM notifications WHERE kind = 'rollout.held') AS notified"
    )
    assert counts is not None
    assert dict(counts) == {"log": 1, "audit": 1, "notified": 1}
    flag = document["flags"]["checkout"]
    assert flag["metadata"]["experimentKey"] == "rollout:r"  # held: still served at its stage's split
    assert flag["targeting"]["if"][1]["fractional"][1] == ["new", 5000]


async def _gone(conn: asyncpg.Connection, pid: object) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def _state_is(conn: asyncpg.Connection, state: str) -> bool:
    return bool(await conn.fetchval("SELECT state = $1 FROM rollouts WHERE key = 'r'", state))
