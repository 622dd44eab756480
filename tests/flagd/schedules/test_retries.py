"""A schedule whose transaction fails for another reason than its change (here: the config lock held past
FLAGD_SCHEDULES_TIMEOUT_SECONDS) stays pending and is retried, and after MAX_ATTEMPTS it fails with the
error instead of holding up the schedules due after it. One executor, driven round by round."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from flagd.schedules.executor import MAX_ATTEMPTS, ScheduleExecutor
from flagd.settings import Settings
from flagd.storage.pool import open_pool


async def _nothing() -> None:
    return None


async def test_should_retry_a_failing_schedule_then_fail_it_and_run_the_next(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, schedules_timeout_seconds=0.1)
    pool = await open_pool(settings)
    blocker = await asyncpg.connect(database_url)
    try:
        await blocker.execute(
            "INSERT INTO flags (key, definition) VALUES ('a', $1::text::json), ('b', $1::text::json)",
            '{"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"}',
        )
        await blocker.execute(
            "INSERT INTO schedules (action, target, due_at, created_by) VALUES "
            "('enable_flag', 'a', now() - interval '1 minute', 'test'), ('enable_flag', 'b', now(), 'test')"
        )
        executor = ScheduleExecutor(settings, pool, _nothing)
        async with blocker.transaction():
            await blocker.execute("SELECT version FROM config_state FOR UPDATE")
            for attempt in range(1, MAX_ATTEMPTS + 1):
                with pytest.raises((asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError)):
                    await executor.run_once()
                row = await blocker.fetchrow("SELECT status, attempts FROM schedules WHERE target = 'a'")
                assert row is not None
                assert (row["status"], row["attempts"]) == (
                    "pending" if attempt < MAX_ATTEMPTS else "failed",
                    attempt,
                )
        failed = await blocker.fetchrow("SELECT error, executed_at FROM schedules WHERE target = 'a'")
        assert failed is not None
        assert f"failed to execute it {MAX_ATTEMPTS} times" in failed["error"]
        assert "due to" in failed["error"]  # lock timeout or statement timeout, whichever fires first
        assert failed["executed_at"] is not None
        # The lock is free: the next round runs the schedule after it, and nothing of the first was changed.
        done = await executor.run_once()
        assert [(s.target, s.status) for s in done] == [("b", "executed")]
        states = await blocker.fetch("SELECT key, definition->>'state' AS state FROM flags ORDER BY key")
        assert [(s["key"], s["state"]) for s in states] == [("a", "DISABLED"), ("b", "ENABLED")]
        audited = await blocker.fetch("SELECT actor, entity, action FROM audit_log ORDER BY id")
        assert [tuple(a) for a in audited] == [
            ("schedule:1", "schedule", "execute"),
            ("schedule:2", "flag", "update"),
            ("schedule:2", "schedule", "execute"),
        ]
        assert (
            await blocker.fetchval("SELECT count(*) FROM notifications WHERE kind = 'schedule.executed'") == 2
        )
    finally:
        await blocker.close()
        await pool.close()
