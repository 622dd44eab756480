"""Event ingestion end to end, against the raw COPY rate of the same database in the same run.

    .venv/bin/python bench/ingest.py [--seconds 20] [--senders 2] [--concurrency 8] [--batch 500]

Starts `flagd serve --workers 2` (embedded PostgreSQL unless DATABASE_URL is set). Then:

1. `--senders` processes, each with `--concurrency` connections, post msgpack batches of
   `--batch` track events (UUIDv7 ids, as the SDK sends) for `--seconds`, each batch waiting
   for its 200; a batch counts only once acknowledged (committed). Bodies are built before
   the clock starts, so the senders spend their CPU on sending.
2. With the server idle, one asyncpg connection copies as many rows with
   `copy_records_to_table` into a table built like `events` (partitioned by day, the same
   primary key and indexes), in batches of 20,000 rows, each committed.

It prints events/s end to end, p50/p99/max request latency, the raw COPY rows/s and the ratio.
Targets (issue 11): at least 50,000 events/s and 25% of the raw rate (aim: 100,000 and 50%).

With `--plan`, step 1 runs 2 x `--rounds` times in the same run, without a tracking plan and with a 50-event
plan in enforce mode that the sent events match, in ABBA order (without, with, with, without, ...) (issue 25: the plan's check costs at most 10%),
and prints the median rates, their ratio and each pair's, then the check's own cost per event measured in
this process; the raw COPY step is left out.
Everything shares the machine's cores: server workers, PostgreSQL and the senders.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgpack
from common import database, serve
from sse_latency import make_keys, wait_ready
from uuid_utils.compat import uuid7

from flagd.config.repository import ConfigRepository
from flagd.config.service import FlagService
from flagd.ingest.partitions import partition_name
from flagd.settings import Settings
from flagd.storage.pool import connect


def make_bodies(count: int, batch: int, sender: int) -> list[bytes]:
    now = int(datetime.now(UTC).timestamp() * 1000)
    bodies = []
    for number in range(count):
        events = [
            {
                "kind": "track",
                "event_id": str(uuid7()),
                "timestamp": now,
                "event": "purchase" if i % 3 else "checkout",
                "unit": f"user-{sender}-{number}-{i}",
                "value": float(i % 50),
                "properties": {"currency": "EUR"},
            }
            for i in range(batch)
        ]
        bodies.append(msgpack.packb({"events": events}))
    return bodies


def sender_process(
    base: str, key: str, args: argparse.Namespace, index: int, start_at: float, results: Any
) -> None:
    expected = int(150_000 * args.seconds / args.senders / args.batch) + args.concurrency
    bodies = make_bodies(expected, args.batch, index)
    results.put(asyncio.run(_send(base, key, args, bodies, start_at)))


async def _send(
    base: str, key: str, args: argparse.Namespace, bodies: list[bytes], start_at: float
) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    acknowledged = 0
    failures = 0
    work = iter(bodies)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/msgpack"}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop_at = time.monotonic() + args.seconds
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60.0, limits=limits) as http:

        async def lane() -> None:
            nonlocal acknowledged, failures
            for body in work:
                if time.monotonic() >= stop_at:
                    return
                started = time.perf_counter()
                response = await http.post("/v1/events", content=body)
                if response.status_code == 200 and time.monotonic() <= stop_at:
                    acknowledged += response.json()["accepted"]
                    latencies.append(time.perf_counter() - started)
                elif response.status_code != 200:
                    failures += 1

        await asyncio.gather(*(lane() for _ in range(args.concurrency)))
    return acknowledged, latencies, failures


async def raw_copy_rate(database_url: str, rows: int) -> float:
    """Rows/s of copy_records_to_table into a table like `events`, one connection, 20,000 rows a commit."""
    day = datetime.now(UTC).date()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_raw_events")
        await conn.execute(
            "CREATE TABLE bench_raw_events (LIKE events INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at)"
        )
        await conn.execute("ALTER TABLE bench_raw_events ADD PRIMARY KEY (event_id, occurred_at)")
        await conn.execute("CREATE INDEX ON bench_raw_events (name, unit, occurred_at)")
        await conn.execute("CREATE INDEX ON bench_raw_events USING brin (received_at)")
        low = datetime(day.year, day.month, day.day, tzinfo=UTC)
        await conn.execute(
            f"CREATE TABLE bench_raw_{partition_name(day)} PARTITION OF bench_raw_events "
            f"FOR VALUES FROM ('{low.isoformat()}') TO ('{(low + timedelta(days=1)).isoformat()}')"
        )
        now = datetime.now(UTC)
        chunks = []
        for start in range(0, rows, 20_000):
            chunks.append(
                [
                    (
                        uuid7(),
                        now,
                        now,
                        "purchase",
                        f"user-{start + i}",
                        float(i % 50),
                        '{"currency": "EUR"}',
                    )
                    for i in range(min(20_000, rows - start))
                ]
            )
        columns = ["event_id", "occurred_at", "received_at", "name", "unit", "value", "properties"]
        started = time.perf_counter()
        for chunk in chunks:
            async with conn.transaction():
                await conn.copy_records_to_table("bench_raw_events", records=chunk, columns=columns)
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_raw_events")
    finally:
        await conn.close()
    return rows / elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000 if len(values) > 1 else float("nan")


async def count_stored(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        stored: int = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    return stored


async def commits(url: str) -> int:
    """Transactions committed in the database so far (pg_stat_database), to show how requests were coalesced."""
    conn = await asyncpg.connect(url)
    try:
        value: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return value


def bench_plan() -> dict[str, Any]:
    """50 planned events in enforce mode; purchase and checkout (what the senders send) among them, their
    properties typed and enumerated as a real plan would."""
    events: dict[str, Any] = {"$plan": {"naming": "snake_case", "mode": "enforce"}}
    for number in range(48):
        events[f"event_{number:02d}"] = {
            "description": "A planned event the senders do not send.",
            "properties": {"step": {"type": "integer", "min": 0, "max": 10}, "label": {"type": "string"}},
        }
    for name in ("purchase", "checkout"):
        events[name] = {
            "description": "What the senders send.",
            "owner": "bench",
            "value": "required",
            "additional_properties": False,
            "properties": {
                "currency": {
                    "type": "string",
                    "required": True,
                    "enum": ["EUR", "USD", "GBP"],
                    "max_length": 3,
                },
                "coupon": {"type": "string", "pattern": "[A-Z0-9]{4,12}"},
                "items": {"type": "integer", "min": 1, "max": 1000},
            },
        }
    return events


async def set_plan(url: str, events: dict[str, Any]) -> None:
    """Apply (or, with {}, remove) the tracking plan, then give the workers time to reload it."""
    conn = await connect(Settings(database_url=url))
    try:
        async with conn.transaction():
            current = await ConfigRepository(conn).load()
            document = {**current.document(), "events": events}
            await FlagService(conn, "bench").apply(document, prune=True, dry_run=False)
    finally:
        await conn.close()
    await asyncio.sleep(2.0)


def send_round(base: str, sdk_key: str, args: argparse.Namespace) -> tuple[int, list[float], int]:
    results: Any = multiprocessing.Queue()
    start_at = time.time() + 3.0 + 0.00002 * 150_000 * args.seconds / args.senders
    senders = [
        multiprocessing.Process(target=sender_process, args=(base, sdk_key, args, i, start_at, results))
        for i in range(args.senders)
    ]
    for process in senders:
        process.start()
    outcomes = [results.get() for _ in senders]
    for process in senders:
        process.join()
    return (
        sum(o[0] for o in outcomes),
        [lat for o in outcomes for lat in o[1]],
        sum(o[2] for o in outcomes),
    )


def main_plan(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="flagd-bench-") as work, database(Path(work)) as url:
        _, sdk_key = asyncio.run(make_keys(url))
        server, base = serve(url, workers=2, log_level="warning")
        rates: dict[str, list[float]] = {"without a plan": [], "with the 50-event plan (enforce)": []}
        try:
            asyncio.run(wait_ready(base))
            configs = list(zip(rates, ({}, bench_plan()), strict=True))
            for round_number in range(args.rounds):
                # ABBA order: the table grows through the run, so neither side always runs on the larger one.
                for label, plan in configs if round_number % 2 == 0 else configs[::-1]:
                    asyncio.run(set_plan(url, plan))
                    acknowledged, latencies, failures = send_round(base, sdk_key, args)
                    rates[label].append(acknowledged / args.seconds)
                    print(
                        f"{label}: {acknowledged / args.seconds:,.0f} events/s ({failures} not 200, "
                        f"p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms)",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(30)
    without, with_plan = (statistics.median(values) for values in rates.values())
    pairs = [b / a for a, b in zip(*rates.values(), strict=True)]
    print(
        f"median without a plan: {without:,.0f} events/s; with the plan in enforce mode: {with_plan:,.0f} events/s"
    )
    print(
        f"ratio of the medians: {with_plan / without:.1%}, of each pair: "
        f"{', '.join(f'{r:.0%}' for r in pairs)} (target >= 90%)"
    )


def check_cost(events: int = 300_000) -> None:
    """The plan's check alone, in this process: microseconds per matching event and per violating one."""
    from flagd.tracking.check import CompiledPlan
    from flagd.tracking.plan import read_plan

    plan = CompiledPlan.compile(read_plan({"events": bench_plan()}, []))
    shapes: list[dict[str, Any]] = [
        {"currency": "EUR"},
        {"currency": "USD", "items": 3},
        {"currency": "GBP", "coupon": "SAVE2026"},
    ]
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for i in range(events):
            plan.check("purchase", 12.5, shapes[i % 3], "enforce")
        best = min(best, time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(events // 10):
        plan.check("purchase", None, {"currency": "JPY", "items": 0, "extra": 1}, "enforce")
    violating = (time.perf_counter() - started) / (events // 10)
    print(
        f"the check alone: {best / events * 1e6:.2f} us per matching event (best of 5), "
        f"{violating * 1e6:.2f} us per event with 4 violations"
    )


def main(args: argparse.Namespace) -> None:
    if args.plan:
        main_plan(args)
        check_cost()
        return
    with tempfile.TemporaryDirectory(prefix="flagd-bench-") as work, database(Path(work)) as url:
        _, sdk_key = asyncio.run(make_keys(url))
        server, base = serve(url, workers=2, log_level="warning")
        try:
            asyncio.run(wait_ready(base))
            results: Any = multiprocessing.Queue()
            # Time to build the bodies first (about 20 us an event), so that sending starts together.
            start_at = time.time() + 3.0 + 0.00002 * 150_000 * args.seconds / args.senders
            senders = [
                multiprocessing.Process(
                    target=sender_process, args=(base, sdk_key, args, i, start_at, results)
                )
                for i in range(args.senders)
            ]
            for process in senders:
                process.start()
            commits_before = asyncio.run(commits(url))
            outcomes = [results.get() for _ in senders]
            committed = asyncio.run(commits(url)) - commits_before
            for process in senders:
                process.join()
            stored = asyncio.run(count_stored(url))
            acknowledged = sum(o[0] for o in outcomes)
            latencies = [lat for o in outcomes for lat in o[1]]
            failures = sum(o[2] for o in outcomes)
            end_to_end = acknowledged / args.seconds
            raw = asyncio.run(raw_copy_rate(url, max(200_000, min(acknowledged, 1_000_000))))
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"end to end: {end_to_end:,.0f} events/s ({acknowledged:,} acknowledged in {args.seconds:g} s, "
        f"{len(latencies):,} requests of {args.batch}, {failures} not 200; {stored:,} rows stored)"
    )
    print(
        f"request latency: p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )
    print(
        f"database transactions during the run: {committed:,} for {len(latencies):,} requests "
        "(all transactions, the stats counters' and the probes' included)"
    )
    print(f"raw copy_records_to_table, one connection: {raw:,.0f} rows/s")
    print(
        f"ratio: {end_to_end / raw:.0%} of raw (target >= 25%, aim 50%); target >= 50,000 events/s (aim 100,000)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--concurrency", type=int, default=8, help="connections per sender process")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="with --plan: pairs of runs, alternating")
    parser.add_argument(
        "--plan", action="store_true", help="compare the rate without a tracking plan and with a 50-event one"
    )
    main(parser.parse_args())
