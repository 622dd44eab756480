"""How long the results endpoint takes as data grows, cold and warm.

    .venv/bin/python bench/results.py [--units 100000 1000000 3000000] [--events-per-unit 10]

For each size: a fresh database (embedded PostgreSQL unless DATABASE_URL is set) gets an
experiment with 3 variants and 8 metrics (a conversion, a winsorised sum, a count, a ratio, an
NPS survey, the event-level p90 of the visits' load time (a quantile metric), a retention over
two events, days 7 to 14, and a two-step funnel, visit then purchase within 7 days; `--baseline` leaves
the last three out for a baseline in the same run), then
`--units` units exposed over 30 days and about `--events-per-unit` track
events each, written with COPY straight into the real tables (events through its daily
partitions) and VACUUMed (as autovacuum would). Then `flagd serve` starts and the results endpoint is timed: cold (the
first request after the server started, with PostgreSQL's caches as the load left them) and
warm (the median of 5 more).

It prints one row per size: units, events, load time, cold and warm seconds. Targets (issue 12):
1 million units / 10 million events under 2 s warm and 10 s cold.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from common import database, results_key, serve
from sse_latency import make_keys, wait_ready
from uuid_utils.compat import uuid7

from flagd.ingest.partitions import ensure_partitions

DOCUMENT: dict[str, Any] = {
    "flags": {
        "page": {"state": "ENABLED", "variants": {"a": "a", "b": "b", "c": "c"}, "defaultVariant": "a"}
    },
    "metrics": {
        "bought": {
            "type": "conversion",
            "event": "purchase",
            "direction": "increase",
            "window_seconds": 604800,
        },
        "revenue": {
            "type": "sum",
            "event": "purchase",
            "direction": "increase",
            "winsorisation": {"percentile": 99},
        },
        "visits": {"type": "count", "event": "visit", "direction": "increase"},
        "revenue-per-visit": {
            "type": "ratio",
            "numerator": "revenue",
            "denominator": "visits",
            "direction": "increase",
        },
        "nps": {"type": "nps", "event": "survey", "direction": "increase"},
        "load-p90": {
            "type": "quantile",
            "event": "visit",
            "quantile": 0.9,
            "level": "event",
            "direction": "decrease",
        },
        "visit-to-purchase": {
            "type": "funnel",
            "steps": [{"event": "visit"}, {"event": "purchase"}],
            "window_seconds": 604800,
            "direction": "increase",
        },
        "returned": {
            "type": "retention",
            "events": ["visit", "purchase"],
            "from_day": 7,
            "to_day": 14,
            "direction": "increase",
        },
    },
    "experiments": {
        "big": {
            "flag": "page",
            "variants": {"a": 1, "b": 1, "c": 1},
            "metrics": [
                {"metric": "bought", "role": "primary"},
                {"metric": "revenue", "role": "secondary"},
                {"metric": "visits", "role": "secondary"},
                {"metric": "revenue-per-visit", "role": "secondary"},
                {"metric": "nps", "role": "guardrail"},
                {"metric": "load-p90", "role": "guardrail"},
                {"metric": "returned", "role": "secondary"},
                {"metric": "visit-to-purchase", "role": "secondary"},
            ],
        }
    },
}
ISSUE_23 = frozenset({"load-p90", "returned", "visit-to-purchase"})
"""The metrics `--baseline` leaves out."""
CHUNK = 200_000


async def load(url: str, units: int, per_unit: int) -> tuple[int, float]:
    """The experiment, its exposures and events, written with COPY; (events written, seconds)."""
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        await ensure_partitions(conn, now.date(), 45, 7)
        rng = random.Random(1)
        first = now - timedelta(days=30)
        stored = now - timedelta(hours=1)  # received_at: a backfill, stored before the roll-ups were built
        written = 0
        exposures: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for i in range(units):
            unit = f"user-{i}"
            variant = "abc"[i % 3]
            exposed = first + timedelta(seconds=rng.randrange(0, 29 * 86_400))
            exposures.append(("big", 1, unit, variant, uuid7(), exposed, stored, None, False, "client"))
            for _ in range(rng.randrange(0, 2 * per_unit + 1)):
                name = rng.choices(("visit", "purchase", "survey"), (8, 1.5, 0.5))[0]
                # From 5 days before exposure to 10 days after it, and never in the future.
                latest = min(10 * 86_400, int((now - exposed).total_seconds()))
                at = exposed + timedelta(seconds=rng.randrange(-5 * 86_400, latest))
                value = (
                    round(rng.expovariate(1 / 40), 2)
                    if name == "purchase"
                    else (float(rng.randrange(11)) if name == "survey" else round(rng.lognormvariate(6, 0.5)))
                )  # a visit's value: its page's load time in ms
                events.append((uuid7(), at, stored, name, unit, value, None))
            if len(events) >= CHUNK or i == units - 1:
                await conn.copy_records_to_table(
                    "events",
                    records=events,
                    columns=["event_id", "occurred_at", "received_at", "name", "unit", "value", "properties"],
                )
                written += len(events)
                events = []
            if len(exposures) >= CHUNK or i == units - 1:
                await conn.copy_records_to_table(
                    "exposures",
                    records=exposures,
                    columns=[
                        "experiment",
                        "phase",
                        "unit",
                        "variant",
                        "event_id",
                        "exposed_at",
                        "received_at",
                        "attributes",
                        "multiple_variants",
                        "source",
                    ],
                )
                exposures = []
        # What autovacuum does after a bulk load: statistics, and the BRIN summaries of received_at.
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("VACUUM (ANALYZE) exposures")
    finally:
        await conn.close()
    return written, time.perf_counter() - started


def document(retention: bool) -> dict[str, Any]:
    """DOCUMENT, or without the metrics issue 23 added (a baseline)."""
    if retention:
        return DOCUMENT
    metrics = {k: v for k, v in DOCUMENT["metrics"].items() if k not in ISSUE_23}
    big = dict(DOCUMENT["experiments"]["big"])
    big["metrics"] = [m for m in big["metrics"] if m["metric"] not in ISSUE_23]
    return {**DOCUMENT, "metrics": metrics, "experiments": {"big": big}}


async def define(base: str, admin: str, retention: bool) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=base, timeout=60.0, headers=headers) as http:
        assert (await http.put("/v1/admin/flag-set", json=document(retention))).status_code == 200
        assert (await http.post("/v1/admin/experiments/big/start")).status_code == 200


async def timed(base: str, token: str) -> tuple[float, list[float]]:
    """The first answer's seconds (a first build answers 202 "preparing" until the keeper has built the
    roll-ups: the seconds until the results), and 5 more."""
    async with httpx.AsyncClient(base_url=base, timeout=600.0) as http:
        headers = {"Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        response = await http.get("/v1/experiments/big/results", headers=headers)
        while response.status_code == 202:
            await asyncio.sleep(0.25)
            response = await http.get("/v1/experiments/big/results", headers=headers)
        cold = time.perf_counter() - started
        assert response.status_code == 200, response.text
        warm = []
        for _ in range(5):
            started = time.perf_counter()
            response = await http.get("/v1/experiments/big/results", headers=headers)
            warm.append(time.perf_counter() - started)
    return cold, warm


async def more_events(url: str, count: int) -> None:
    """`count` new purchases of exposed units, stored as the writer stores them (received now)."""
    conn = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "events",
            records=[(uuid7(), now, now, "purchase", f"user-{i * 97}", 12.5, None) for i in range(count)],
            columns=["event_id", "occurred_at", "received_at", "name", "unit", "value", "properties"],
        )
    finally:
        await conn.close()


@dataclass
class Size:
    units: int
    events: int = 0
    load: float = 0.0
    build: float = 0.0
    cold: float = 0.0
    warm: float = 0.0
    catch_up: float = 0.0


def one_size(units: int, per_unit: int, retention: bool = True) -> Size:
    size = Size(units)
    with tempfile.TemporaryDirectory(prefix="flagd-results-") as work, database(Path(work)) as url:
        admin, _ = asyncio.run(make_keys(url))
        size.events, size.load = asyncio.run(load(url, units, per_unit))
        token = asyncio.run(results_key(url))
        # The background keeper is slowed down so that every look below is the request's own work.
        # The first look builds every roll-up: on a loaded machine at a million units that takes longer than
        # the default 120 s request timeout, so the build look may take up to an hour.
        # Fresh seconds 0: every look catches up first, so "+1%" includes the new events.
        build_env = {
            "FLAGD_RESULTS_ROLLUP_SECONDS": "86400",
            "FLAGD_RESULTS_TIMEOUT_SECONDS": "3600",
            "FLAGD_RESULTS_FRESH_SECONDS": "0",
        }
        server, base = serve(url, workers=1, env=build_env)
        try:
            asyncio.run(wait_ready(base))
            asyncio.run(define(base, admin, retention))
            size.build, _ = asyncio.run(timed(base, token))  # the first look builds the roll-ups
            server.terminate()
            server.wait(30)
            env = {"FLAGD_RESULTS_ROLLUP_SECONDS": "86400", "FLAGD_RESULTS_FRESH_SECONDS": "0"}
            server, base = serve(url, workers=1, env=env)
            asyncio.run(wait_ready(base))  # cold: a new server process, nothing in its memory
            size.cold, warm = asyncio.run(timed(base, token))
            size.warm = statistics.median(warm)
            asyncio.run(more_events(url, units // 100))
            size.catch_up, _ = asyncio.run(timed(base, token))
        finally:
            server.terminate()
            server.wait(30)
    return size


def main(args: argparse.Namespace) -> None:
    print(
        f"{'units':>10} {'events':>11} {'load s':>7} {'build s':>8} {'cold s':>7} {'warm s':>7} {'+1% s':>7}",
        flush=True,
    )
    for units in args.units:
        s = one_size(units, args.events_per_unit, not args.baseline)
        print(
            f"{s.units:>10,} {s.events:>11,} {s.load:>7.1f} {s.build:>8.2f} {s.cold:>7.2f} {s.warm:>7.2f} "
            f"{s.catch_up:>7.2f}",
            flush=True,
        )
    print(
        "build: from the first look until the results (the keeper builds the per-unit roll-ups in the "
        "background meanwhile, the looks answer 202 preparing); "
        "cold: the first request of a new server process; warm: the median of 5 more; +1%: the request "
        "after 1% more events (a catch-up of the touched units)"
    )
    print("targets: 1,000,000 units / 10,000,000 events under 2 s warm and 10 s cold")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--events-per-unit", type=int, default=10)
    parser.add_argument(
        "--baseline", action="store_true", help="the five metrics before issue 23 (no quantile, no retention)"
    )
    main(parser.parse_args())
