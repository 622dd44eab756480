"""What one read of the QA view (GET /v1/events/live, the page's poll every 2 s) costs while other units send.

    .venv/bin/python bench/live_events.py [--per-hour 100000 300000 1000000] [--reads 30]

For each volume, stores that many track events of other units received over the last hour (and 50 of the
followed unit), then times `read_live` (flagd.tracking.live) as the endpoint calls it: a
first read (the unit's newest 100 of the last hour) and a poll with the cursor of a moment ago. The read filters
the unit out of the last hour's events through the received-time BRIN index (events have no index on unit), so
its cost grows with the hour's volume, not with the unit's; and rows newer than the last (auto)vacuum are in block
ranges the index has not summarised, which every read scans. Each volume is timed fresh and after VACUUM. On
DATABASE_URL if set, else an embedded PostgreSQL.

With `--beside-ofrep`, then: `flagd serve` (one worker) on the largest volume's events, OFREP evaluated at 200/s
for `--seconds` alone, then again while two clients read GET /v1/events/live (first reads, the heaviest) back to
back (a `live_busy` answer, 503, retried after 50 ms), then alone again; prints p50/p99/max of each and the reads made. Exits 1 if p99 beside the reads is above
2x the worse p99 alone (and 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from common import database, serve
from sse_latency import make_keys, wait_ready
from webhooks import FLAG, _evaluate, _figures

from flagd.ingest.partitions import ensure_partitions
from flagd.storage.migrations import apply_migrations, load_migrations
from flagd.tracking.check import CompiledPlan
from flagd.tracking.live import LiveQuery, Position, read_live
from flagd.tracking.plan import read_plan

PLAN = CompiledPlan.compile(
    read_plan(
        {"events": {"signup": {"properties": {"plan": {"type": "string", "enum": ["free", "pro"]}}}}}, []
    )
)
_FILL = """
INSERT INTO events (event_id, occurred_at, received_at, name, unit, value, properties)
SELECT gen_random_uuid(), at, at, 'signup', unit, NULL, '{"plan": "pro"}'::jsonb FROM (
    SELECT $1::timestamptz - (i * $2::interval) AS at, 'other-' || (i % 50000)::text AS unit
    FROM generate_series(1, $3) AS i
    UNION ALL
    SELECT $1::timestamptz - (i * interval '70 seconds'), 'qa-device' FROM generate_series(1, 50) AS i
) rows ORDER BY at
"""


async def run(url: str, volumes: list[int], reads: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, load_migrations())
        now = datetime.now(UTC)
        await ensure_partitions(conn, now.date(), 2, 1)
        for volume in volumes:
            # In the order they arrive, as a server stores them (what the BRIN index relies on).
            await conn.execute("TRUNCATE events")
            await conn.execute(_FILL, now, timedelta(hours=1) / volume, volume)
            await conn.execute("ANALYZE events")
            # Fresh rows are in block ranges the BRIN index has not summarised yet (autovacuum does that
            # later), so every one of them is read; VACUUM summarises them.
            for summarised in (False, True):
                if summarised:
                    await conn.execute("VACUUM events")
                first = await _timed(conn, LiveQuery("qa-device", None, 100), reads)
                cursor = Position(now - timedelta(seconds=5))
                poll = await _timed(conn, LiveQuery("qa-device", cursor, 100), reads)
                print(
                    f"{volume:>9,} events in the hour, {'summarised' if summarised else 'fresh     '}: "
                    f"first read median {first[0]:6.1f} ms (p95 {first[1]:6.1f}), "
                    f"poll median {poll[0]:6.1f} ms (p95 {poll[1]:6.1f})"
                )
    finally:
        await conn.close()


async def _timed(conn: asyncpg.Connection, query: LiveQuery, reads: int) -> tuple[float, float]:
    took = []
    for _ in range(reads):
        start = time.perf_counter()
        page = await read_live(
            conn, query, plan=PLAN, unplanned="observe", now=datetime.now(UTC), max_age_days=30
        )
        took.append((time.perf_counter() - start) * 1000)
        assert page.unit == query.unit
    took.sort()
    return statistics.median(took), took[int(0.95 * (len(took) - 1))]


async def beside_ofrep(url: str, seconds: float) -> int:
    """OFREP latency alone, beside back-to-back live reads, and alone again, on the events `run` left."""
    admin_key, sdk_key = await make_keys(url)
    server, base = serve(url, workers=1)
    try:
        await wait_ready(base)
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {admin_key}"}
        ) as admin:
            assert (
                await admin.post("/v1/admin/flags", json={"key": "bench", "definition": FLAG})
            ).status_code == 201
            alone = _figures(await _evaluate(base, sdk_key, seconds, 200))
            stop = asyncio.Event()
            reads, busy = [0], [0]

            async def reader() -> None:
                async with httpx.AsyncClient(
                    base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
                ) as http:
                    while not stop.is_set():
                        answer = await http.get(
                            "/v1/events/live", params={"unit": "qa-device", "limit": "200"}
                        )
                        if answer.status_code == 503:  # live_busy: one read at a time per worker
                            busy[0] += 1
                            await asyncio.sleep(0.05)
                            continue
                        assert answer.status_code == 200, answer.text
                        reads[0] += 1

            readers = [asyncio.create_task(reader()) for _ in range(2)]
            beside = _figures(await _evaluate(base, sdk_key, seconds, 200))
            stop.set()
            await asyncio.gather(*readers)
            again = _figures(await _evaluate(base, sdk_key, seconds, 200))
    finally:
        server.terminate()
        server.wait(30)
    for label, (p50, p99, most) in (("alone", alone), ("beside live reads", beside), ("alone again", again)):
        print(f"OFREP {label:<18} p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {most:.2f} ms")
    worse = max(alone[1], again[1])
    print(
        f"{reads[0]} live reads in {seconds:g} s ({busy[0]} answered live_busy); "
        f"p99 beside them / the worse alone: {beside[1] / worse:.2f}"
    )
    return 1 if beside[1] > max(2 * worse, 5.0) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-hour", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--beside-ofrep", action="store_true")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flagd-bench-") as workdir, database(Path(workdir)) as url:
        asyncio.run(run(url, sorted(args.per_hour), args.reads))
        return asyncio.run(beside_ofrep(url, args.seconds)) if args.beside_ofrep else 0


if __name__ == "__main__":
    sys.exit(main())
