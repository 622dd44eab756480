"""Several worker processes: a change made through one reaches stream clients of every worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import orjson

from flagd.auth.keys import Scope
from tests.support import FlagdProcess, bearer, create_key, flag_definition, flagd_env, free_port

MAX_STREAMS = 64


async def _next_version(lines: AsyncIterator[str]) -> int:
    async for line in lines:
        if line.startswith("data:"):
            version: int = orjson.loads(line[5:])["version"]
            return version
    raise AssertionError("the stream ended")


async def test_should_deliver_a_change_to_streams_on_every_worker(database_url: str, tmp_path: Path) -> None:
    admin_key = await create_key(database_url, Scope.ADMIN)
    sdk_key = await create_key(database_url, Scope.SDK)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = flagd_env(DATABASE_URL=database_url, FLAGD_LOG_FORMAT="json")
    server = FlagdProcess(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready, base)
        # A worker still starting accepts nothing: the kernel would hand every connection to the other.
        await asyncio.to_thread(server.wait_workers, 2)
        async with httpx.AsyncClient(base_url=base, timeout=30.0) as http:
            streams: list[AbstractAsyncContextManager[httpx.Response]] = []
            responses: list[httpx.Response] = []
            # Which worker accepts a connection is the kernel's choice: open streams until both have some.
            while len({r.headers["x-flagd-worker"] for r in responses}) < 2 and len(streams) < MAX_STREAMS:
                stream = http.stream("GET", "/v1/flags/stream", headers=bearer(sdk_key))
                streams.append(stream)
                responses.append(await stream.__aenter__())
            try:
                readers = [r.aiter_lines() for r in responses]
                initial = [await _next_version(lines) for lines in readers]
                created = await http.post(
                    "/v1/admin/flags",
                    json={"key": "a", "definition": flag_definition()},
                    headers=bearer(admin_key),
                )
                assert created.status_code == 201
                changed = await asyncio.wait_for(
                    asyncio.gather(*(_next_version(lines) for lines in readers)), 10
                )
            finally:
                for opened in streams:
                    await opened.__aexit__(None, None, None)
    finally:
        code = await asyncio.to_thread(server.stop)
    assert code == 0, server.output
    assert len({r.headers["x-flagd-worker"] for r in responses}) == 2, f"{len(streams)} streams, one worker"
    assert set(initial) == {0}
    assert set(changed) == {1}
