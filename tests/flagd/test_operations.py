"""Operations under load: SIGTERM loses no acknowledged event; a worker killed with SIGKILL comes back while
the server keeps answering."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx

from flagd.auth.keys import Scope
from tests.flagd.ingest.test_faults import (
    BATCHES_PER_SENDER,
    SENDERS,
    assert_stored_exactly_once,
    interrupted_and_replaced,
    when,
)
from tests.support import bearer, create_key, serving_workers


async def test_should_store_every_acknowledged_event_across_a_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    # Graceful: in-flight requests finish, queued events commit.
    run = await interrupted_and_replaced(
        database_url, tmp_path, lambda process: process.send_signal(signal.SIGTERM)
    )
    assert run.exit_code == 0
    assert run.at_batches < SENDERS * BATCHES_PER_SENDER, "the SIGTERM came after the last batch"
    await assert_stored_exactly_once(database_url, run.traffic, run.total)


def workers_of(pid: int) -> set[int]:
    """uvicorn's worker processes (multiprocessing's resource tracker is a child too, and is left out)."""
    children = {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    return {c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()}


async def test_should_keep_answering_and_restart_a_worker_killed_under_load(
    database_url: str, tmp_path: Path
) -> None:
    key = await create_key(database_url, Scope.SDK)
    server, base = await serving_workers(
        database_url, tmp_path / "serve.log", FLAGD_ACCESS_LOG="false", FLAGD_LOG_LEVEL="info"
    )
    try:
        before = workers_of(server.process.pid)
        assert len(before) == 2
        answered: list[tuple[float, int]] = []
        failed: list[float] = []
        stop = asyncio.Event()

        async def load() -> None:
            async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=5.0) as http:
                while not stop.is_set():
                    try:
                        response = await http.post(
                            "/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u"}}
                        )
                        answered.append((time.monotonic(), response.status_code))
                    except httpx.TransportError:
                        failed.append(time.monotonic())

        loaders = [asyncio.create_task(load()) for _ in range(8)]
        await when(lambda: len(answered) >= 200)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await when(lambda: len(workers_of(server.process.pid) - before) == 1, wait=60)
        await when(lambda: sum(1 for t, _ in answered if t > killed_at + 0.5) >= 200)
        stop.set()
        await asyncio.gather(*loaders)
        after = workers_of(server.process.pid)
        assert victim not in after
        assert len(after) == 2  # the killed worker was replaced
        assert {status for _, status in answered} == {200}
        # Only requests in flight on the killed worker may fail (one per connection at most).
        assert len(failed) <= 8
        assert "Started server process" in server.output
    finally:
        await asyncio.to_thread(server.stop)
