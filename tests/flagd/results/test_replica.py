"""Where results reads go with FLAGD_RESULTS_DATABASE_URL when the replica cannot serve them; the streaming
replica itself is exercised in tests/flagd/storage/test_many_hosts.py."""

from __future__ import annotations

import asyncpg
import pytest

from flagd.results.replica import REPLICA_READ_ERRORS, Replica, open_status_pool, replica_status
from tests.support import free_port


async def test_should_read_on_the_primary_while_the_replica_is_unreachable(conn: asyncpg.Connection) -> None:
    replica = Replica(f"postgresql://postgres@127.0.0.1:{free_port()}/flagd", connect_timeout=2)
    assert await replica.reads_after_writes(conn) is conn
    assert await replica.reads_after_writes(conn) is conn  # not tried again at once
    assert replica.drain_counts() == {"unreachable": 2}
    assert replica.drain_counts() == {}


async def test_should_read_a_server_that_is_not_a_standby_as_it_is(
    conn: asyncpg.Connection, database_url: str
) -> None:
    replica = Replica(database_url, connect_timeout=2)
    try:
        chosen = await replica.reads_after_writes(conn)
        assert chosen is not conn
        assert await chosen.fetchval("SELECT current_database()") == await conn.fetchval(
            "SELECT current_database()"
        )
        assert replica.drain_counts() == {"replica": 1}
    finally:
        await replica.close()


async def test_should_report_an_unreachable_replica_without_failing(conn: asyncpg.Connection) -> None:
    pool = await open_status_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/flagd", connect_timeout=1)
    try:
        status = await replica_status(conn, pool)
    finally:
        await pool.close()
    assert status.reachable is False
    assert status.error


async def test_should_report_a_primary_at_the_replica_url_as_no_standby(
    conn: asyncpg.Connection, database_url: str
) -> None:
    pool = await open_status_pool(database_url, connect_timeout=2)
    try:
        status = await replica_status(conn, pool)
    finally:
        await pool.close()
    assert (status.reachable, status.standby, status.lag_bytes) == (True, False, None)


async def test_should_hand_a_job_to_the_primary_when_the_replica_goes_away_during_it(
    conn: asyncpg.Connection, database_url: str
) -> None:
    replica = Replica(database_url, connect_timeout=2)
    try:
        replica.begin_job()
        assert not replica.failed(asyncpg.SerializationError("not read there yet"))
        chosen = await replica.reads_after_writes(conn)
        chosen.terminate()  # the replica's connection is gone (as when the replica stops)
        with pytest.raises(REPLICA_READ_ERRORS) as raised:
            await chosen.fetchval("SELECT 1")
        assert replica.failed(raised.value)
        assert replica.drain_counts() == {"replica": 1, "failed": 1}
        # Not tried again at once: the next job reads on the primary.
        replica.begin_job()
        assert await replica.reads_after_writes(conn) is conn
    finally:
        await replica.close()
