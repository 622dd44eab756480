"""What one read of the QA view (GET /v1/events/live, the page's poll every 2 s) costs while other units send.

    .venv/bin/python bench/live_events.py [--per-hour 100000 300000 1000000] [--reads 30]

For each volume, stores that many track events of other units received over the last hour (and 50 of the
followed unit), then times `read_live` (flagd.tracking.live) as the endpoint calls it: a
first read (the unit's newest 100 of the last hour) and a poll with the cursor of a moment ago. The read filters
the unit out of the last hour's events through the received-time BRIN index (events have no index on unit), so
its cost grows with the hour's volume, not with the unit's; and rows newer than the last (auto)vacuum are in block
ranges the index has not summarised, which every read scans. Each volume is timed fresh and after VACUUM. On
DATABASE_URL if set, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from common import database

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-hour", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flagd-bench-") as workdir, database(Path(workdir)) as url:
        asyncio.run(run(url, sorted(args.per_hour), args.reads))


if __name__ == "__main__":
    main()
