"""OFREP latency with the results watcher off, then watching every second, then off again: one run, one database.

    .venv/bin/python bench/watcher.py [--seconds 20] [--rate 20] [--units 12500]

Sets up, through a server with the watcher off (`flagd serve`, one worker pinned to CPU 0 with everything it
spawns; embedded PostgreSQL unless DATABASE_URL is set): 4 running experiments, each with a conversion
primary metric and a sum guardrail, and --units exposed units each with their track events through
POST /v1/events (about 100,000 events in all with the defaults). Then three phases, each a server of its own
on that database:

1. off:   FLAGD_RESULTS_WATCH_SECONDS=0;
2. on:    FLAGD_RESULTS_WATCH_SECONDS=1, measured once its first round has watched every experiment;
3. off again, so that drift between phases shows.

In each, this process (CPU 1) evaluates a simple flag over OFREP at --rate per second for --seconds and records
every latency. It prints p50/p99/max per phase (also from when each request was due), the p99 ratio of on to
the off phases, and the watcher's rounds per experiment during the on phase (from experiment_watch).
Target: p99 with the watcher on within 1.5x of off and under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from common import database, serve
from results_isolation import Phase, normal_client, summary
from sse_latency import make_keys, wait_ready

EXPERIMENTS = 4
BATCH = 5_000


def document() -> dict[str, Any]:
    flags: dict[str, Any] = {
        "simple": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
    }
    experiments: dict[str, Any] = {}
    for i in range(EXPERIMENTS):
        key = f"watched-{i}"
        flags[key] = {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a"}
        experiments[key] = {
            "flag": key,
            "variants": {"a": 1, "b": 1},
            "metrics": [
                {"metric": "converted", "role": "primary"},
                {"metric": "revenue", "role": "guardrail"},
            ],
        }
    return {
        "flags": flags,
        "metrics": {
            "converted": {"type": "conversion", "event": "signup", "direction": "increase"},
            "revenue": {"type": "sum", "event": "purchase", "direction": "increase"},
        },
        "experiments": experiments,
    }


def events(units: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for e in range(EXPERIMENTS):
        for i in range(units):
            unit = f"user-{e}-{i}"
            exposed = now - timedelta(seconds=rng.randrange(10, 120))
            out.append(
                {
                    "kind": "exposure",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": exposed.isoformat(),
                    "experiment": f"watched-{e}",
                    "phase": 1,
                    "variant": "ab"[i % 2],
                    "unit": unit,
                }
            )
            names = ["signup"] if rng.random() < 0.3 else []
            names += ["purchase"] * rng.choice((0, 0, 1, 2))
            for name in names:
                at = exposed + timedelta(seconds=rng.uniform(1, 9))
                track: dict[str, Any] = {
                    "kind": "track",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": at.isoformat(),
                    "event": name,
                    "unit": unit,
                }
                if name == "purchase":
                    track["value"] = round(rng.expovariate(1 / 40), 2)
                out.append(track)
    return out


async def set_up(base: str, admin_key: str, sdk_key: str, units: int) -> int:
    admin = {"Authorization": f"Bearer {admin_key}"}
    sdk = {"Authorization": f"Bearer {sdk_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, timeout=300.0) as http:
        applied = await http.put("/v1/admin/flag-set", json=document(), headers=admin)
        if applied.status_code != 200:
            raise SystemExit(f"applying the experiments failed: {applied.status_code} {applied.text[:2000]}")
        for e in range(EXPERIMENTS):
            started = await http.post(f"/v1/admin/experiments/watched-{e}/start", headers=admin)
            if started.status_code != 200:
                raise SystemExit(f"starting watched-{e} failed: {started.status_code} {started.text}")
        batch = events(units)
        for i in range(0, len(batch), BATCH):
            sent = await http.post(
                "/v1/events", content=orjson.dumps({"events": batch[i : i + BATCH]}), headers=sdk
            )
            if sent.status_code != 200 or sent.json()["rejected"]:
                raise SystemExit(f"sending events failed: {sent.status_code} {sent.text[:2000]}")
    return len(batch)


def start_server(
    url: str, workdir: Path, name: str, watch_seconds: float
) -> tuple[subprocess.Popen[bytes], str]:
    """One worker pinned to CPU 0 (its results processes too), its output in `name`.log."""
    with open(workdir / f"{name}.log", "wb") as log:  # the server keeps its own descriptor
        server, base = serve(
            url,
            workers=1,
            env={"FLAGD_RESULTS_WATCH_SECONDS": str(watch_seconds)},
            prefix=("taskset", "-c", "0"),
            log=log,
        )
    asyncio.run(wait_ready(base))
    return server, base


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def rounds(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT experiment, rounds FROM experiment_watch")
    finally:
        await conn.close()
    return {r["experiment"]: r["rounds"] for r in rows}


WATCHED_WITHIN_SECONDS = 300.0


async def until_watched(url: str) -> dict[str, int]:
    """Until the watcher's first round has looked at every experiment; the rounds then."""
    deadline = time.monotonic() + WATCHED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        seen = await rounds(url)
        if len(seen) == EXPERIMENTS:
            return seen
        await asyncio.sleep(0.5)
    raise SystemExit(f"the watcher did not look at every experiment within {WATCHED_WITHIN_SECONDS:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=20.0, help="OFREP requests per second")
    parser.add_argument("--units", type=int, default=12_500, help="exposed units per experiment")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with (
        tempfile.TemporaryDirectory(prefix="flagd-watcher-bench-") as directory,
        database(Path(directory)) as url,
    ):
        workdir = Path(directory)
        admin_key, sdk_key = asyncio.run(make_keys(url))
        server, base = start_server(url, workdir, "setup", 0)
        try:
            started = time.perf_counter()
            sent = asyncio.run(set_up(base, admin_key, sdk_key, args.units))
            print(
                f"set up: {EXPERIMENTS} experiments, {sent:,} events in {time.perf_counter() - started:.1f} s"
            )
        finally:
            stop(server)
        phases: list[tuple[str, Phase]] = []
        for name, watch in (("off", 0.0), ("on (every 1 s)", 1.0), ("off again", 0.0)):
            server, base = start_server(url, workdir, name.split()[0], watch)
            try:
                before = asyncio.run(until_watched(url)) if watch else {}
                phases.append((name, asyncio.run(normal_client(base, sdk_key, args.seconds, args.rate))))
                if watch:
                    after = asyncio.run(rounds(url))
                    looks = {k: after[k] - before.get(k, 0) for k in sorted(after)}
                    print(f"watcher rounds per experiment during the on phase: {looks}")
            finally:
                stop(server)
        print(f"{'phase':<24} {'requests':>8} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
        p99 = {}
        for name, phase in phases:
            p99[name] = summary(name, phase.latencies)[1]
            summary(f"  {name}, from due", phase.late)
            if set(phase.statuses) != {200}:
                print(f"  statuses: {dict(phase.statuses)}")
        off = max(p99["off"], p99["off again"])
        print(f"p99 on / worse off: {p99['on (every 1 s)'] / off:.2f}")
        for log in sorted(workdir.glob("*.log")):
            if "Traceback" in log.read_text(errors="replace"):
                print(f"a traceback in {log.name}: see it before trusting these figures")


if __name__ == "__main__":
    main()
