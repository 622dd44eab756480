"""A normal client's OFREP latency alone, then while a second client loops the heaviest results requests.

    .venv/bin/python bench/results_isolation.py [--seconds 20] [--rate 20]

Starts `flagd serve` (one worker, pinned to CPU 0 with everything it spawns; embedded PostgreSQL unless
DATABASE_URL is set; the results keeper slowed to once a day, so that every roll-up and reduction is the
work of a request), then sets up through the API:

- an experiment `wide` on a flag with 300 variants (the most the definition allows, if that is fewer), with a
  conversion and a sum metric, started; 3,000 units exposed through POST /v1/events with an exposure
  attribute `seg` of 30 values, and track events of both metrics;
- 60 small experiments (2 variants, started, a few exposures each), so that GET /v1/experiments lists 61.

Then:

1. the normal client (this process, CPU 1) evaluates a simple flag over OFREP at --rate per second for
   --seconds and records every latency;
2. the same again while an attacker process (also CPU 1) sends, one after another in a loop, with a results
   key: GET /v1/experiments/wide/results?segment=seg, the page /experiments/wide?segment=seg (logged in
   through /login), GET /v1/experiments, the page /experiments/wide, and the journey signup → purchase
   broken down by `seg` (GET /v1/journeys/funnel and the page /journeys), recording each one's status,
   time and size.

It prints p50/p99/max for both phases and their p99 ratio (also counted from when each request was due, which
a client that waits for its answer otherwise hides), and per attacker request its count, statuses,
median and max time and largest size. Targets: p99 under attack within 2x of p99 alone and under 20 ms;
the slowest OFREP answer under attack under 50 ms; no 5xx but 503 (counted, with their Retry-After); no
traceback in the server log.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import database, free_port, results_key
from sse_latency import make_keys, wait_ready

WANTED_VARIANTS = 300
UNITS = 3_000
SEGMENTS = 30
SMALL_EXPERIMENTS = 60
SMALL_UNITS = 5
BATCH = 5_000  # FLAGD_EVENTS_MAX_BATCH's default; 5,000 of these events are about 1.3 MB of JSON
NORMAL_CONTEXT = {"context": {"targetingKey": "user-1"}}
ATTACKS = (
    ("results ?segment=seg", "/v1/experiments/wide/results?segment=seg", True),
    ("page ?segment=seg", "/experiments/wide?segment=seg", False),
    ("list /v1/experiments", "/v1/experiments", True),
    ("page /experiments/wide", "/experiments/wide", False),
    ("journey by seg", "/v1/journeys/funnel?step=signup&step=purchase&breakdown=exposure:wide:seg", True),
    ("page /journeys by seg", "/journeys?step=signup&step=purchase&breakdown=exposure:wide:seg", False),
)
"""(name, path, with the key as a header? else with the session cookie)."""


def document(variants: int) -> dict[str, Any]:
    names = [f"v{i:03d}" for i in range(variants)]
    flags: dict[str, Any] = {
        "simple": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        "wide": {"state": "ENABLED", "variants": {n: n for n in names}, "defaultVariant": names[0]},
    }
    metrics = [{"metric": "converted", "role": "primary"}, {"metric": "revenue", "role": "secondary"}]
    experiments: dict[str, Any] = {
        "wide": {"flag": "wide", "variants": dict.fromkeys(names, 1), "metrics": metrics}
    }
    for i in range(SMALL_EXPERIMENTS):
        key = f"small-{i:02d}"
        flags[key] = {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a"}
        experiments[key] = {"flag": key, "variants": {"a": 1, "b": 1}, "metrics": metrics}
    return {
        "flags": flags,
        "metrics": {
            "converted": {"type": "conversion", "event": "signup", "direction": "increase"},
            "revenue": {
                "type": "sum",
                "event": "purchase",
                "direction": "increase",
                "winsorisation": {"percentile": 99},
            },
        },
        "experiments": experiments,
    }


def events(variants: int) -> list[dict[str, Any]]:
    """Exposures of `wide` and of the small experiments over the last 6 hours, then their track events."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []

    def exposure(experiment: str, unit: str, variant: str, at: datetime, attributes: dict[str, str]) -> None:
        out.append(
            {
                "kind": "exposure",
                "event_id": str(uuid.uuid4()),
                "timestamp": at.isoformat(),
                "experiment": experiment,
                "phase": 1,
                "variant": variant,
                "unit": unit,
                "attributes": attributes,
            }
        )

    def track(name: str, unit: str, at: datetime, value: float | None) -> None:
        event: dict[str, Any] = {
            "kind": "track",
            "event_id": str(uuid.uuid4()),
            "timestamp": at.isoformat(),
            "event": name,
            "unit": unit,
        }
        if value is not None:
            event["value"] = value
        out.append(event)

    for i in range(UNITS):
        unit = f"user-{i}"
        # Within the clock skew allowed around the phase's start (a moment ago): exposures of earlier times
        # would be refused as outside the phase.
        exposed = now - timedelta(seconds=rng.randrange(10, 240))
        exposure("wide", unit, f"v{i % variants:03d}", exposed, {"seg": f"s{i % SEGMENTS:02d}"})
        later = int((now - exposed).total_seconds()) - 1
        if rng.random() < 0.3:
            track("signup", unit, exposed + timedelta(seconds=rng.randrange(1, later)), None)
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            value = round(rng.expovariate(1 / 40), 2)
            track("purchase", unit, exposed + timedelta(seconds=rng.randrange(1, later)), value)
        if rng.random() < 0.2:  # before exposure: CUPED's covariate
            track("purchase", unit, exposed - timedelta(seconds=rng.randrange(60, 86_400)), 25.0)
    for e in range(SMALL_EXPERIMENTS):
        for u in range(SMALL_UNITS):
            at = now - timedelta(seconds=rng.randrange(10, 240))
            exposure(f"small-{e:02d}", f"small-user-{u}", "ab"[u % 2], at, {})
    return out


async def set_up(base: str, admin_key: str, sdk_key: str) -> int:
    """The experiments, started, and their events; the number of variants of `wide`."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    sdk = {"Authorization": f"Bearer {sdk_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, timeout=120.0) as http:
        variants = WANTED_VARIANTS
        while True:
            applied = await http.put("/v1/admin/flag-set", json=document(variants), headers=admin)
            if applied.status_code == 200:
                break
            if variants <= 2 or applied.status_code != 422:
                raise SystemExit(
                    f"applying the experiments failed: {applied.status_code} {applied.text[:2000]}"
                )
            print(f"{variants} variants refused ({applied.text[:300]}); trying fewer", flush=True)
            variants = max(2, variants * 3 // 4)
        # `wide` last: the most recently started experiments get a headline in GET /v1/experiments.
        for key in [*(f"small-{i:02d}" for i in range(SMALL_EXPERIMENTS)), "wide"]:
            started = await http.post(f"/v1/admin/experiments/{key}/start", headers=admin)
            if started.status_code != 200:
                raise SystemExit(f"starting {key} failed: {started.status_code} {started.text}")
        batch = events(variants)
        sends = [
            http.post("/v1/events", content=orjson.dumps({"events": batch[i : i + BATCH]}), headers=sdk)
            for i in range(0, len(batch), BATCH)
        ]
        for sent in await asyncio.gather(*sends):
            if sent.status_code != 200 or sent.json()["rejected"]:
                raise SystemExit(f"sending events failed: {sent.status_code} {sent.text[:2000]}")
        listed = await http.get("/v1/experiments", headers=admin)
        if listed.status_code != 200:
            raise SystemExit(f"listing the experiments failed: {listed.status_code} {listed.text[:2000]}")
        print(
            f"set up: `wide` with {variants} variants, {len(batch):,} events in {len(sends)} batches, "
            f"{len(listed.json()['experiments'])} experiments listed",
            flush=True,
        )
    return variants


def log_in(http: httpx.Client, token: str) -> None:
    form = http.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if form.status_code != 200 or found is None:
        raise SystemExit(f"no login form: {form.status_code}")
    answer = http.post("/login", data={"key": token, "csrf": found.group(1), "next": "/experiments"})
    if answer.status_code != 303 or "flagd_session" not in http.cookies:
        raise SystemExit(f"the login failed: {answer.status_code} {answer.text[:500]}")


def attack(base: str, token: str, stop: Any, underway: Any, results: Any) -> None:
    os.sched_setaffinity(0, {1})
    records: list[tuple[str, int, float, int, str | None]] = []
    with httpx.Client(base_url=base, timeout=600.0) as http:
        log_in(http, token)
        underway.set()
        n = 0
        while not stop.is_set():
            name, path, with_key = ATTACKS[n % len(ATTACKS)]
            headers = {"Authorization": f"Bearer {token}"} if with_key else {}
            sent = time.perf_counter()
            response = http.get(path, headers=headers)
            took = (time.perf_counter() - sent) * 1000
            records.append(
                (name, response.status_code, took, len(response.content), response.headers.get("retry-after"))
            )
            n += 1
    results.put(records)


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    """ms from sending each request to its answer."""
    late: list[float] = field(default_factory=list)
    """ms from when each request was due (every 1/rate s) to its answer: what a closed-loop client does not
    count while it waits (coordinated omission)."""
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: Counter[str | None] = field(default_factory=Counter)
    """The Retry-After of each 503."""


async def normal_client(base: str, sdk_key: str, seconds: float, rate: float) -> Phase:
    phase = Phase()
    interval = 1.0 / rate
    body = orjson.dumps(NORMAL_CONTEXT)
    headers = {"Authorization": f"Bearer {sdk_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, timeout=600.0, headers=headers) as http:
        for _ in range(200):  # warm up the connection and the caches
            await http.post("/ofrep/v1/evaluate/flags/simple", content=body)
        start = time.perf_counter()
        next_at = start
        while time.perf_counter() - start < seconds:
            sent = time.perf_counter()
            response = await http.post("/ofrep/v1/evaluate/flags/simple", content=body)
            done = time.perf_counter()
            phase.latencies.append((done - sent) * 1000)
            phase.late.append((done - next_at) * 1000)
            phase.statuses[response.status_code] += 1
            if response.status_code == 503:
                phase.retry_after[response.headers.get("retry-after")] += 1
            if response.status_code != 200 and response.status_code < 500:
                raise SystemExit(f"normal request failed: {response.status_code} {response.text}")
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return phase


def summary(name: str, latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(f"{name:<24} {len(ordered):>8} {p50:>9.2f} {p99:>9.2f} {ordered[-1]:>9.2f}")
    return p50, p99, ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=20.0, help="normal requests per second")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with (
        tempfile.TemporaryDirectory(prefix="flagd-results-isolation-") as workdir,
        database(Path(workdir)) as url,
    ):
        admin_key, sdk_key = asyncio.run(make_keys(url))
        token = asyncio.run(results_key(url))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "FLAGD_LOG_LEVEL": "warning",
            "FLAGD_RESULTS_ROLLUP_SECONDS": "86400",
        }
        with open(Path(workdir) / "server.log", "wb") as log:
            server = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "0",
                    sys.executable,
                    "-m",
                    "flagd",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                asyncio.run(wait_ready(base))
                started = time.perf_counter()
                variants = asyncio.run(set_up(base, admin_key, sdk_key))
                print(f"set-up took {time.perf_counter() - started:.1f} s", flush=True)
                alone = asyncio.run(normal_client(base, sdk_key, args.seconds, args.rate))
                stop, underway = multiprocessing.Event(), multiprocessing.Event()
                queue: multiprocessing.Queue[list[tuple[str, int, float, int, str | None]]] = (
                    multiprocessing.Queue()
                )
                attacker = multiprocessing.Process(target=attack, args=(base, token, stop, underway, queue))
                attacker.start()
                if not underway.wait(120):
                    raise SystemExit("the attacker did not log in within 120 s")
                attacked = asyncio.run(normal_client(base, sdk_key, args.seconds, args.rate))
                stop.set()
                records = queue.get(timeout=900)
                attacker.join()
            except BaseException:
                server.terminate()
                server.wait(30)
                print((Path(workdir) / "server.log").read_text(errors="replace")[-4000:], file=sys.stderr)
                raise
            finally:
                server.terminate()
                server.wait(30)
        server_log = (Path(workdir) / "server.log").read_text(errors="replace")

    print(f"\n`wide`: {variants} variants, {UNITS:,} units, {SEGMENTS} values of `seg`")
    print(f"{'normal client (ms)':<24} {'requests':>8} {'p50':>9} {'p99':>9} {'max':>9}")
    _, p99_alone, _ = summary("alone", alone.latencies)
    _, p99_attacked, worst = summary("under attack", attacked.latencies)
    ratio = p99_attacked / p99_alone
    print(f"p99 under attack / alone: {ratio:.2f}x")
    print("from when each request was due (no coordinated omission; not a target):")
    summary("  alone", alone.late)
    summary("  under attack", attacked.late)
    print(f"normal client statuses: alone {dict(alone.statuses)}, under attack {dict(attacked.statuses)}")

    print(
        f"\n{'attacker request':<24} {'count':>6} {'median ms':>10} {'max ms':>10} {'max bytes':>11}  statuses"
    )
    by_name: dict[str, list[tuple[int, float, int, str | None]]] = defaultdict(list)
    for name, status, took, size, retry_after in records:
        by_name[name].append((status, took, size, retry_after))
    for name, _, _ in ATTACKS:
        rows = by_name.get(name, [])
        if not rows:
            print(f"{name:<24} {0:>6}")
            continue
        statuses = Counter(status for status, _, _, _ in rows)
        times = [took for _, took, _, _ in rows]
        print(
            f"{name:<24} {len(rows):>6} {statistics.median(times):>10.1f} {max(times):>10.1f} "
            f"{max(size for _, _, size, _ in rows):>11,}  {dict(sorted(statuses.items()))}"
        )
    unavailable = [retry for _, status, _, _, retry in records if status == 503]
    unavailable_ofrep = alone.retry_after + attacked.retry_after
    other_5xx = sum(1 for _, status, _, _, _ in records if status >= 500 and status != 503) + sum(
        count
        for status, count in (alone.statuses + attacked.statuses).items()
        if status >= 500 and status != 503
    )
    print(
        f"503 answers: {len(unavailable)} to the attacker (Retry-After: {dict(Counter(unavailable)) or '-'}), "
        f"{unavailable_ofrep.total()} to the normal client (Retry-After: {dict(unavailable_ofrep) or '-'})"
    )
    checks = {
        "p99 under attack within 2x of alone": ratio <= 2.0,
        "p99 under attack under 20 ms": p99_attacked < 20.0,
        "slowest OFREP answer under attack under 50 ms": worst < 50.0,
        "no 5xx answer but 503": other_5xx == 0,
        "no traceback in the server log": "Traceback" not in server_log,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if "Traceback" in server_log:
        print(server_log[server_log.index("Traceback") :][:3000])
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
