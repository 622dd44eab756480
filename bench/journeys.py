"""How long the journey report takes over 30 days of events.

    .venv/bin/python bench/journeys.py [--events 10000000] [--units 1000000]

A fresh database (embedded PostgreSQL unless DATABASE_URL is set) gets `--events` track events of
`--units` units over the last 30 days, generated inside PostgreSQL (INSERT ... SELECT from
generate_series, 1 million rows a statement, through the daily partitions and both indexes) and
VACUUMed (as autovacuum would): the names visit (50%), add_to_cart (25%), checkout_started (15%) and
order_paid (10%), each at a random moment of the 30 days, visits carrying a `country` property.
Then `flagd serve` starts and GET /v1/journeys/funnel over the 30 days (window 7d) is timed for three
queries: 4 steps, 4 steps broken down by the visit's country, and 2 steps; each cold (the first
request of its kind, whose results process may still be starting) and warm (the median of 3 more).

It prints the load time and one row per query. Target (issue 23): 30 days and 10 million events
under 5 s.
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
import httpx
from common import database, results_key, serve
from sse_latency import make_keys, wait_ready

from flagd.ingest.partitions import ensure_partitions

CHUNK = 1_000_000
STEPS = ("visit", "add_to_cart", "checkout_started", "order_paid")
_INSERT = """
INSERT INTO events (event_id, occurred_at, received_at, name, unit, value, properties)
SELECT gen_random_uuid(), at, at, name, 'user-' || (i % $3), NULL,
       CASE WHEN name = 'visit' THEN jsonb_build_object('country', (ARRAY['NL','BE','DE','FR','ES'])[1 + i % 5]) END
FROM (
    SELECT i, $1::timestamptz + random() * ($2::timestamptz - $1::timestamptz) AS at,
           CASE WHEN r < 0.5 THEN 'visit' WHEN r < 0.75 THEN 'add_to_cart'
                WHEN r < 0.9 THEN 'checkout_started' ELSE 'order_paid' END AS name
    FROM (SELECT i, random() AS r FROM generate_series($4::bigint, $5::bigint) AS i) g
) e
"""


async def load(url: str, events: int, units: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        await ensure_partitions(conn, now.date(), 35, 7)
        first = now - timedelta(days=30)
        for low in range(0, events, CHUNK):
            high = min(low + CHUNK, events) - 1
            await conn.execute(_INSERT, first, now - timedelta(seconds=1), units, low, high)
            print(f"  {high + 1:,} events written ({time.perf_counter() - started:.0f} s)", flush=True)
        await conn.execute("VACUUM (ANALYZE) events")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def timed(base: str, token: str, query: str) -> tuple[float, float, dict[str, object]]:
    async with httpx.AsyncClient(
        base_url=base, timeout=600.0, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        looks = []
        body: dict[str, object] = {}
        for _ in range(4):
            started = time.perf_counter()
            response = await http.get(f"/v1/journeys/funnel?{query}")
            looks.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            body = response.json()
    return looks[0], statistics.median(looks[1:]), body


def main(args: argparse.Namespace) -> None:
    today = datetime.now(UTC).date()
    days = f"from={today - timedelta(days=30)}&to={today}&window=7d"
    four = "&".join(f"step={s}" for s in STEPS)
    queries = {
        "4 steps": f"{four}&{days}",
        "4 steps by country": f"{four}&{days}&breakdown=property:country",
        "2 steps": f"step=visit&step=order_paid&{days}",
    }
    with tempfile.TemporaryDirectory(prefix="flagd-journeys-") as work, database(Path(work)) as url:
        asyncio.run(make_keys(url))
        loaded = asyncio.run(load(url, args.events, args.units))
        print(
            f"{args.events:,} events of {args.units:,} units over 30 days loaded in {loaded:.0f} s",
            flush=True,
        )
        token = asyncio.run(results_key(url))
        # A statement timeout well past the target, so a slow run is measured rather than cut off.
        server, base = serve(url, workers=1, env={"FLAGD_RESULTS_TIMEOUT_SECONDS": "600"})
        try:
            asyncio.run(wait_ready(base))
            print(f"{'query':<20} {'cold s':>7} {'warm s':>7}  entered -> completed")
            for label, query in queries.items():
                cold, warm, body = asyncio.run(timed(base, token, query))
                everyone = body["allUnits"]
                assert isinstance(everyone, dict)
                steps = everyone["steps"]
                print(
                    f"{label:<20} {cold:>7.2f} {warm:>7.2f}  {everyone['entered']:,} -> {steps[-1]['units']:,}",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(30)
    print("target: 30 days and 10,000,000 events under 5 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=1_000_000)
    main(parser.parse_args())
