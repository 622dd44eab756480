"""Faults while senders post events with retries; each test asserts on the database afterwards.

Senders behave as a careful client does: a batch is resent, unchanged, until it gets a 200
(after a 503, a refused connection, or a lost answer). So in the end every event must be
stored, and exactly once; and no event may get a 200 without being stored.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import msgpack
import pytest

from flagd.auth.guard import UNREACHABLE_SECONDS, Authenticator
from flagd.auth.keys import Scope
from flagd.errors import DatabaseUnavailable
from flagd.storage.embedded import EmbeddedPostgres
from tests.support import TIMEOUT, FlagdProcess, bearer, create_key, flagd_env, free_port

SENDERS = 8
BATCHES_PER_SENDER = 30
EVENTS_PER_BATCH = 100


@dataclass
class Traffic:
    acknowledged: set[uuid.UUID] = field(default_factory=set)
    unavailable: list[httpx.Response] = field(default_factory=list)
    unavailable_seconds: list[float] = field(default_factory=list)
    transport_errors: int = 0

    @property
    def batches(self) -> int:
        return len(self.acknowledged) // EVENTS_PER_BATCH


def batch_of(sender: int, number: int) -> list[dict[str, object]]:
    now = int(datetime.now(UTC).timestamp() * 1000)
    return [
        {
            "kind": "track",
            "event_id": str(uuid.uuid4()),
            "timestamp": now,
            "event": "purchase",
            "unit": f"s{sender}-b{number}-e{i}",
            "value": float(i),
        }
        for i in range(EVENTS_PER_BATCH)
    ]


async def send_all(base: str, key: str, traffic: Traffic, deadline: float) -> int:
    """Every sender posts its batches in turn, each until it is acknowledged; the number of events."""

    async def sender(index: int) -> None:
        async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=15.0) as http:
            for number in range(BATCHES_PER_SENDER):
                events = batch_of(index, number)
                body = msgpack.packb({"events": events})
                while True:
                    assert time.monotonic() < deadline, "the batch was never acknowledged"
                    started = time.monotonic()
                    try:
                        response = await http.post(
                            "/v1/events", content=body, headers={"Content-Type": "application/msgpack"}
                        )
                    except httpx.TransportError:
                        traffic.transport_errors += 1
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code == 200:
                        assert response.json() == {"accepted": EVENTS_PER_BATCH, "rejected": []}
                        traffic.acknowledged.update(uuid.UUID(str(e["event_id"])) for e in events)
                        break
                    assert response.status_code == 503, response.text
                    traffic.unavailable.append(response)
                    traffic.unavailable_seconds.append(time.monotonic() - started)
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(sender(i) for i in range(SENDERS)))
    return SENDERS * BATCHES_PER_SENDER * EVENTS_PER_BATCH


async def when(condition: Callable[[], bool], wait: float = 60.0) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


async def assert_stored_exactly_once(database_url: str, traffic: Traffic, total: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT event_id FROM events")
    finally:
        await conn.close()
    stored = [r["event_id"] for r in rows]
    assert len(stored) == len(set(stored)), "an event is stored twice"
    assert traffic.acknowledged <= set(stored), "an acknowledged event is not stored"
    assert len(stored) == total == len(traffic.acknowledged)


def serve(database_url: str, port: int, log: Path) -> FlagdProcess:
    env = flagd_env(DATABASE_URL=database_url, FLAGD_ACCESS_LOG="false", FLAGD_LOG_LEVEL="warning")
    return FlagdProcess(["serve", "--port", str(port)], env, log)


async def serving_with_senders(
    database_url: str, log: Path, deadline: float
) -> tuple[FlagdProcess, str, Traffic, asyncio.Task[int]]:
    """A server on its own port, and senders posting to it until every batch is acknowledged."""
    key = await create_key(database_url, Scope.SDK)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(database_url, port, log)
    await asyncio.to_thread(server.wait_ready, base)
    traffic = Traffic()
    return (
        server,
        base,
        traffic,
        asyncio.create_task(send_all(base, key, traffic, time.monotonic() + deadline)),
    )


@dataclass(frozen=True)
class Interrupted:
    traffic: Traffic
    total: int
    at_batches: int
    """Batches acknowledged when the first server had ended."""
    exit_code: int


async def interrupted_and_replaced(
    database_url: str, tmp_path: Path, interrupt: Callable[[subprocess.Popen[bytes]], None]
) -> Interrupted:
    """Senders post until every batch is acknowledged; after 20 batches the server is interrupted, and once
    it has ended a new one takes its port."""
    server, base, traffic, sending = await serving_with_senders(database_url, tmp_path / "first.log", 120)
    port = int(base.rsplit(":", 1)[1])
    replacement: FlagdProcess | None = None
    try:
        await when(lambda: traffic.batches >= 20)
        interrupt(server.process)
        code = await asyncio.to_thread(server.process.wait, 60)
        at_batches = traffic.batches
        replacement = serve(database_url, port, tmp_path / "second.log")
        await asyncio.to_thread(replacement.wait_ready, base)
        total = await sending
    finally:
        sending.cancel()
        if replacement is not None:
            await asyncio.to_thread(replacement.stop)
    return Interrupted(traffic, total, at_batches, code)


async def test_should_store_every_acknowledged_event_exactly_once_across_a_kill_9(
    database_url: str, tmp_path: Path
) -> None:
    # SIGKILL: no shutdown, no flush, requests in flight are cut.
    run = await interrupted_and_replaced(database_url, tmp_path, lambda process: process.kill())
    assert run.at_batches < SENDERS * BATCHES_PER_SENDER, "the kill came after the last batch"
    assert run.traffic.transport_errors > 0, "no request saw the kill"
    await assert_stored_exactly_once(database_url, run.traffic, run.total)


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL cluster of this test's own, to stop and start."""
    directory = Path(tempfile.mkdtemp(prefix="flagd-fault-"))
    embedded = EmbeddedPostgres(directory)
    try:
        yield embedded
    finally:
        embedded.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_should_refuse_with_503_while_postgres_is_down_and_recover(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await asyncio.to_thread(own_postgres.start)
    await migrate(url, tmp_path)
    server, base, traffic, sending = await serving_with_senders(url, tmp_path / "serve.log", 180)
    try:
        await when(lambda: traffic.batches >= 20)
        await asyncio.to_thread(own_postgres.stop)
        stopped_at = traffic.batches
        down_until = time.monotonic() + 3.0  # long enough for the writer to probe a few times
        await when(lambda: len(traffic.unavailable) >= 50 and time.monotonic() > down_until)
        acknowledged_while_down = traffic.batches - stopped_at
        await asyncio.to_thread(own_postgres.start)
        total = await sending
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            health = await http.get(f"{base}/readyz", timeout=5)
    finally:
        sending.cancel()
        code = await asyncio.to_thread(server.stop)
    assert code == 0, server.output
    # Warnings are expected (asyncpg's pool logs its failed reconnects with a traceback); errors are not.
    assert " ERROR " not in server.output, server.output
    # Batches in flight when PostgreSQL stopped may still have committed; nothing after.
    assert acknowledged_while_down <= SENDERS
    assert all(r.headers.get("retry-after", "").isdigit() for r in traffic.unavailable)
    assert {r.json()["error"]["code"] for r in traffic.unavailable} <= {"database_unavailable", "queue_full"}
    assert health.status_code == 200
    # Shown with `pytest -s`: how quickly a refusal came while the database was down.
    slowest = max(traffic.unavailable_seconds)
    print(f"\n{len(traffic.unavailable)} refusals, slowest {slowest * 1000:.1f} ms")
    await assert_stored_exactly_once(url, traffic, total)


async def migrate(url: str, tmp_path: Path) -> None:
    """Migrate the new cluster with `flagd migrate`, so keys can be created before a server starts."""
    process = FlagdProcess(["migrate"], flagd_env(DATABASE_URL=url), tmp_path / "migrate.log")
    assert await asyncio.to_thread(process.process.wait, 60) == 0, process.output


async def test_should_keep_confirmed_keys_and_fail_fast_for_others_while_postgres_is_down(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await asyncio.to_thread(own_postgres.start)
    await migrate(url, tmp_path)
    known, unknown = await create_key(url, Scope.SDK), await create_key(url, Scope.SDK)
    pool = await asyncpg.create_pool(url, min_size=0, max_size=2)
    try:
        auth = Authenticator(pool, ttl=0.0, negative_ttl=0.0)  # every check goes to the database
        assert (await auth.authenticate_token(known, Scope.SDK)).scope is Scope.SDK
        await asyncio.to_thread(own_postgres.stop)
        # A key the database confirmed stays good while it cannot be asked (nothing can revoke it).
        assert (await auth.authenticate_token(known, Scope.SDK)).scope is Scope.SDK
        with pytest.raises(DatabaseUnavailable):
            await auth.authenticate_token(unknown, Scope.SDK)
        await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(UNREACHABLE_SECONDS)
        assert (await auth.authenticate_token(unknown, Scope.SDK)).scope is Scope.SDK
    finally:
        await pool.close()
