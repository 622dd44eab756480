"""Memory and answer time of event ingestion while PostgreSQL is down.

    .venv/bin/python bench/ingest_outage.py [--seconds 30] [--senders 16] [--batch 500]

Starts its own embedded PostgreSQL (it has to stop it) and `flagd serve --workers 2`,
stores a few batches, stops PostgreSQL, and then `--senders` concurrent clients post msgpack
batches of `--batch` events as fast as they are answered, for `--seconds`. Every 0.2 s it
reads each worker's resident memory (VmRSS; VmHWM at the end is the peak). Then it starts
PostgreSQL again and waits until a batch is accepted.

It prints each worker's peak resident memory, the answers by status, the p50/p99/max answer
time during the outage, and how long recovery took. Targets (issue 11): every worker under
300 MB, every answer within 100 ms, and accepting again by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack
from common import serve
from sse_latency import make_keys, wait_ready

from flagd.storage.embedded import EmbeddedPostgres


def body(batch: int) -> bytes:
    now = int(datetime.now(UTC).timestamp() * 1000)
    events = [
        {
            "kind": "track",
            "event_id": str(uuid.uuid4()),
            "timestamp": now,
            "event": "purchase",
            "unit": f"u{i}",
        }
        for i in range(batch)
    ]
    packed: bytes = msgpack.packb({"events": events})
    return packed


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing's resource tracker is a child too, and is left out)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def post(http: httpx.AsyncClient, content: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    response = await http.post("/v1/events", content=content)
    return response.status_code, time.perf_counter() - started


def sender_process(
    base: str, key: str, args: argparse.Namespace, count: int, start_at: float, out: Any
) -> None:
    out.put(asyncio.run(_senders(base, key, args, count, start_at)))


async def _senders(
    base: str, key: str, args: argparse.Namespace, count: int, start_at: float
) -> tuple[Counter[int], list[float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/msgpack"}
    bodies = [body(args.batch) for _ in range(16)]
    statuses: Counter[int] = Counter()
    seconds: list[float] = []
    # The client's own garbage collection would show up as slow answers: it is off while measuring.
    gc.collect()
    gc.disable()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop_at = time.monotonic() + args.seconds
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:

        async def sender(index: int) -> None:
            n = index
            while time.monotonic() < stop_at:
                status, took = await post(http, bodies[n % len(bodies)])
                statuses[status] += 1
                seconds.append(took)
                n += 1

        await asyncio.gather(*(sender(i) for i in range(count)))
    return statuses, seconds


async def warm_up(base: str, key: str, batch: int) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/msgpack"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
        for _ in range(10):
            status, _ = await post(http, body(batch))
            assert status == 200, status


async def recover(base: str, key: str) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/msgpack"}
    restarted = time.monotonic()
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
        while True:
            status, _ = await post(http, body(10))
            if status == 200:
                return time.monotonic() - restarted
            await asyncio.sleep(0.1)


def outage(
    base: str, key: str, args: argparse.Namespace, embedded: EmbeddedPostgres, server_pid: int
) -> None:
    asyncio.run(warm_up(base, key, args.batch))
    print("stopping PostgreSQL", flush=True)
    embedded.stop()
    out: Any = multiprocessing.Queue()
    start_at = time.time() + 1.0
    per_process = [
        args.senders // args.processes + (i < args.senders % args.processes) for i in range(args.processes)
    ]
    processes = [
        multiprocessing.Process(target=sender_process, args=(base, key, args, count, start_at, out))
        for count in per_process
    ]
    for process in processes:
        process.start()
    rss: dict[int, int] = {}
    stop_at = time.time() + 1.0 + args.seconds
    while time.time() < stop_at:
        for worker in workers_of(server_pid):
            rss[worker] = max(rss.get(worker, 0), memory_kb(worker, "VmRSS"))
        time.sleep(0.2)  # the memory sampling interval of this bench; nothing is asserted on timing
    results = [out.get() for _ in processes]
    for process in processes:
        process.join()
    peaks = {w: memory_kb(w, "VmHWM") for w in workers_of(server_pid)}
    print("starting PostgreSQL again", flush=True)
    embedded.start()
    recovery = asyncio.run(recover(base, key))
    statuses: Counter[int] = sum((r[0] for r in results), Counter())
    seconds = [s for r in results for s in r[1]]
    quantiles = statistics.quantiles(seconds, n=100)
    print(
        f"answers while PostgreSQL was down ({args.seconds:g} s, {args.senders} senders in "
        f"{args.processes} processes): {dict(statuses)}"
    )
    print(
        f"answer time: p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms (target: all within 100 ms)"
    )
    for worker in sorted(peaks):
        print(
            f"worker {worker}: peak resident memory {peaks[worker] / 1024:.1f} MB (VmHWM), "
            f"largest sample during the outage {rss.get(worker, 0) / 1024:.1f} MB (target < 300 MB)"
        )
    print(f"accepting again {recovery:.2f} s after PostgreSQL was started")


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="flagd-outage-") as work:
        embedded = EmbeddedPostgres(Path(work) / "data")
        url = embedded.start()
        try:
            _, key = asyncio.run(make_keys(url))
            server, base = serve(url, workers=2, log_level=os.environ.get("BENCH_LOG_LEVEL", "error"))
            try:
                asyncio.run(wait_ready(base))
                outage(base, key, args, embedded, server.pid)
            finally:
                server.terminate()
                server.wait(30)
        finally:
            embedded.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--processes", type=int, default=4, help="sender processes the senders are spread over"
    )
    main(parser.parse_args())
