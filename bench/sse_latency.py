"""How fast a change through the admin API reaches stream clients, with two workers.

    .venv/bin/python bench/sse_latency.py [--changes 30] [--streams 8]

Starts `flagd serve --workers 2` (embedded PostgreSQL unless DATABASE_URL is set),
opens stream clients until both workers hold some, then makes changes through the admin
API one after another. For each change and each stream it measures the time from
sending the admin request to receiving the event that announces the new version, and
prints the distribution per worker. Target (issue 4): every delivery under 1 second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncpg
import httpx
import orjson
from common import database, free_port

from flagd.auth import keys
from flagd.auth.keys import Scope
from flagd.auth.repository import ApiKeyRepository
from flagd.storage.migrations import apply_migrations, load_migrations
from flagd.storage.pool import init_connection


async def make_keys(database_url: str) -> tuple[str, str]:
    """Migrations, and an admin key and an SDK key; their tokens."""
    conn = await asyncpg.connect(database_url)
    try:
        await init_connection(conn)
        await apply_migrations(conn, load_migrations())
        tokens = []
        for scope in (Scope.ADMIN, Scope.SDK):
            new = keys.generate()
            await ApiKeyRepository(conn).create(f"bench-{scope.value}", scope, new)
            tokens.append(new.token)
    finally:
        await conn.close()
    return tokens[0], tokens[1]


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            try:
                if (await http.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not become ready")


async def measure(
    base: str, admin_key: str, sdk_key: str, changes: int, min_streams: int
) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = defaultdict(list)
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as http:
        admin = {"Authorization": f"Bearer {admin_key}"}
        created = await http.post(
            "/v1/admin/flags",
            json={
                "key": "bench",
                "definition": {"state": "ENABLED", "variants": {"v0": 0}, "defaultVariant": "v0"},
            },
            headers=admin,
        )
        created.raise_for_status()
        opened: list[AbstractAsyncContextManager[httpx.Response]] = []
        responses: list[httpx.Response] = []
        while (
            len(responses) < min_streams or len({r.headers["x-flagd-worker"] for r in responses}) < 2
        ) and len(responses) < 64:
            stream = http.stream("GET", "/v1/flags/stream", headers={"Authorization": f"Bearer {sdk_key}"})
            opened.append(stream)
            responses.append(await stream.__aenter__())
        workers = [r.headers["x-flagd-worker"] for r in responses]
        readers = [r.aiter_lines() for r in responses]
        try:
            for lines in readers:  # the event each stream sends on connect
                await _next_version(lines)
            for change in range(1, changes + 1):
                sent = time.perf_counter()
                updated = await http.put(
                    "/v1/admin/flags/bench",
                    json={
                        "definition": {
                            "state": "ENABLED",
                            "variants": {f"v{change}": change},
                            "defaultVariant": f"v{change}",
                        }
                    },
                    headers={**admin, "If-Match": str(change)},
                )
                updated.raise_for_status()

                async def arrival(lines: AsyncIterator[str], worker: str, sent: float = sent) -> None:
                    await _next_version(lines)
                    latencies[worker].append((time.perf_counter() - sent) * 1000)

                await asyncio.wait_for(
                    asyncio.gather(
                        *(arrival(lines, worker) for lines, worker in zip(readers, workers, strict=True))
                    ),
                    timeout=10,
                )
        finally:
            for each in opened:
                await each.__aexit__(None, None, None)
    return latencies


async def _next_version(lines: AsyncIterator[str]) -> int:
    async for line in lines:
        if line.startswith("data:"):
            version: int = orjson.loads(line[5:])["version"]
            return version
    raise SystemExit("a stream ended")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--streams", type=int, default=8)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="flagd-sse-"))
    stack = contextlib.ExitStack()
    database_url = stack.enter_context(database(workdir))
    server = None
    try:
        admin_key, sdk_key = asyncio.run(make_keys(database_url))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "FLAGD_ACCESS_LOG": "false"}
        with (workdir / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "flagd", "serve", "--port", str(port), "--workers", "2"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base))
        latencies = asyncio.run(measure(base, admin_key, sdk_key, args.changes, args.streams))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        stack.close()

    every = [value for values in latencies.values() for value in values]
    print(
        f"{args.changes} changes, {len(every)} deliveries over {len(latencies)} workers (2 worker processes)"
    )
    print(f"{'worker':10} {'deliveries':>10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for worker, values in sorted(latencies.items()):
        ordered = sorted(values)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(f"{worker:10} {len(values):10d} {statistics.median(values):8.1f} {p95:8.1f} {max(values):8.1f}")
    worst = max(every)
    ok = worst < 1000 and len(latencies) == 2
    print(f"{'PASS' if ok else 'FAIL'}  slowest delivery {worst:.1f} ms < 1000 ms, on both workers")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
