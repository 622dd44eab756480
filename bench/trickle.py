"""A normal client's OFREP latency while 1,100 connections trickle requests that never complete, against a server
whose open-file limit is 1,024.

    .venv/bin/python bench/trickle.py [--sockets 1100] [--limit 1024] [--seconds 20] [--rate 200]

Starts `flagd serve` (one worker pinned to CPU 0, its open-file limit set to --limit, soft and hard, with
prlimit; embedded PostgreSQL unless DATABASE_URL is set), loads a flag, then:

1. the normal client (this process, CPU 1) evaluates a flag over OFREP at --rate for 5 s alone, on a kept-alive
   connection, and once every 0.1 s on a new connection;
2. the same for --seconds while an attacker process (also CPU 1) holds --sockets connections to 127.0.0.1: each
   sends the start of a request and then one header line a second, never the blank line that ends the headers;
   whenever the server closes one, the attacker opens another at once;
3. the attacker stops replacing them and waits (at most the header timeout and 3 s) for the server to close the
   ones still open.

Traffic goes to 127.0.0.1 only. Prints p50/p99/max of both phases, every status the normal client got, the
server's open descriptors (sampled every 0.1 s), how many trickling connections the server closed and after how
long, the server's own count of closings by reason (/metrics), and how many trickling connections it never
closed. Exits 1 if a normal request failed or got anything but 200, if p99 under the trickle is above 50 ms, if
a trickling connection lived longer than FLAGD_HEADER_TIMEOUT_SECONDS (plus 1 s for the accept queue), or if
one was never closed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import database, serve
from prometheus_client.parser import text_string_to_metric_families
from sse_latency import make_keys, wait_ready

HEADER_TIMEOUT = 10.0  # FLAGD_HEADER_TIMEOUT_SECONDS's default, which this bench documents
ACCEPT_MARGIN = 1.0
FLAGS = {
    "flags": {"banner": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}}
}
BODY = orjson.dumps({"context": {"targetingKey": "user-1"}})


async def _trickler(port: int, replace: asyncio.Event, lives: list[float], refused: Counter[str]) -> None:
    """One attacking connection after another: open, send half a request, add a header line each second,
    note how long the server took to close it; a new one each time, until `replace` is cleared."""
    while replace.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            refused[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        opened = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        async def dribble(writer: asyncio.StreamWriter = writer) -> None:
            n = 0
            while True:
                await asyncio.sleep(1.0)
                writer.write(b"X-Trickle-%d: x\r\n" % n)
                n += 1

        dribbling = asyncio.create_task(dribble())
        try:
            await reader.read()  # b"" when the server closes the connection
        except OSError:
            pass
        finally:
            dribbling.cancel()
            lives.append(time.monotonic() - opened)
            writer.close()


def attack(port: int, sockets: int, seconds: float, underway: Any, results: Any) -> None:
    os.sched_setaffinity(0, {1})

    async def run() -> dict[str, Any]:
        replace = asyncio.Event()
        replace.set()
        lives: list[float] = []
        refused: Counter[str] = Counter()
        tasks = [asyncio.create_task(_trickler(port, replace, lives, refused)) for _ in range(sockets)]
        await asyncio.sleep(1.0)
        underway.set()
        await asyncio.sleep(seconds)
        replace.clear()  # from here, a closed connection is not replaced
        stopped = time.monotonic()
        _, pending = await asyncio.wait(tasks, timeout=HEADER_TIMEOUT + 3.0)
        for task in pending:
            task.cancel()
        return {
            "lives": lives,
            "never_closed": len(pending),
            "drain_seconds": time.monotonic() - stopped,
            "connect_errors": dict(refused),
        }

    results.put(asyncio.run(run()))


async def normal_client(base: str, sdk_key: str, seconds: float, rate: float) -> dict[str, Any]:
    """Evaluations on a kept-alive connection at `rate`, and one on a new connection every 0.1 s."""
    headers = {"Authorization": f"Bearer {sdk_key}", "Content-Type": "application/json"}
    kept: list[float] = []
    fresh: list[float] = []
    statuses: Counter[str] = Counter()

    async def one(http: httpx.AsyncClient, into: list[float]) -> None:
        sent = time.perf_counter()
        try:
            response = await http.post("/ofrep/v1/evaluate/flags/banner", content=BODY)
            statuses[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
        into.append((time.perf_counter() - sent) * 1000)

    async def kept_alive() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
            for _ in range(100):  # warm up the connection and the caches
                await http.post("/ofrep/v1/evaluate/flags/banner", content=BODY)
            start = time.perf_counter()
            next_at = start
            while time.perf_counter() - start < seconds:
                await one(http, kept)
                next_at += 1.0 / rate
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def new_connections() -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
                await one(http, fresh)
            await asyncio.sleep(0.1)

    await asyncio.gather(kept_alive(), new_connections())
    return {"kept": kept, "fresh": fresh, "statuses": statuses}


def summary(name: str, latencies: list[float]) -> float:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(f"{name:<34} {len(ordered):>8} {statistics.median(ordered):>9.2f} {p99:>9.2f} {ordered[-1]:>9.2f}")
    return p99


def descriptors(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


async def sample_descriptors(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], descriptors(pid))
        await asyncio.sleep(0.1)


async def under_trickle(
    base: str, sdk_key: str, seconds: float, rate: float, pid: int
) -> tuple[dict[str, Any], int]:
    stop = asyncio.Event()
    peak = [0]
    sampler = asyncio.create_task(sample_descriptors(pid, stop, peak))
    measured = await normal_client(base, sdk_key, seconds, rate)
    stop.set()
    await sampler
    return measured, peak[0]


def closings(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10.0).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "flagd_connections_closed_total":
                found[sample.labels["reason"]] = sample.value
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=1100)
    parser.add_argument("--limit", type=int, default=1024, help="the server's open-file limit")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="normal requests per second")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="flagd-trickle-") as workdir, database(Path(workdir)) as url:
        admin_key, sdk_key = asyncio.run(make_keys(url))
        prefix = ["prlimit", f"--nofile={args.limit}:{args.limit}", "taskset", "-c", "0"]
        with open(Path(workdir) / "server.log", "wb") as log:
            server, base = serve(url, workers=1, env={"FLAGD_METRICS": "open"}, prefix=prefix, log=log)
            port = int(base.rsplit(":", 1)[1])
            try:
                asyncio.run(wait_ready(base))
                httpx.put(
                    f"{base}/v1/admin/flag-set", json=FLAGS, headers={"Authorization": f"Bearer {admin_key}"}
                ).raise_for_status()
                alone, idle_fds = asyncio.run(under_trickle(base, sdk_key, 5.0, args.rate, server.pid))
                underway = multiprocessing.Event()
                results: multiprocessing.Queue[dict[str, Any]] = multiprocessing.Queue()
                attacker = multiprocessing.Process(
                    target=attack, args=(port, args.sockets, args.seconds, underway, results)
                )
                attacker.start()
                if not underway.wait(60):
                    raise SystemExit("the attacker did not start")
                attacked, peak_fds = asyncio.run(
                    under_trickle(base, sdk_key, args.seconds, args.rate, server.pid)
                )
                trickled = results.get(timeout=HEADER_TIMEOUT + 60)
                attacker.join()
                closed_by_reason = closings(base)
                after_fds = descriptors(server.pid)
            finally:
                server.terminate()
                server.wait(30)
        server_log = (Path(workdir) / "server.log").read_text(errors="replace")
    print(
        f"server open-file limit {args.limit}; {args.sockets} trickling connections kept for {args.seconds:g} s"
    )
    print(f"\n{'normal client (ms)':<34} {'requests':>8} {'p50':>9} {'p99':>9} {'max':>9}")
    summary("alone, kept-alive", alone["kept"])
    summary("alone, new connection each", alone["fresh"])
    p99 = summary("trickled, kept-alive", attacked["kept"])
    p99_fresh = summary("trickled, new connection each", attacked["fresh"])
    print(
        f"\nnormal client statuses alone: {dict(alone['statuses'])}; under the trickle: {dict(attacked['statuses'])}"
    )
    print(
        f"server descriptors: {idle_fds} at most alone, {peak_fds} at most under the trickle, {after_fds} after"
    )
    lives = sorted(trickled["lives"])
    print(
        f"trickling connections closed by the server: {len(lives)}, after {lives[0]:.2f} s min, "
        f"{statistics.median(lives):.2f} s median, {lives[-1]:.2f} s max; never closed: {trickled['never_closed']}; "
        f"the last ones closed {trickled['drain_seconds']:.1f} s after the attacker stopped replacing them"
    )
    print(f"connect errors seen by the attacker: {trickled['connect_errors'] or 'none'}")
    print(f"server's count of closings (flagd_connections_closed_total): {closed_by_reason}")
    lines = [line for line in server_log.splitlines() if "flagd.http.transport" in line]
    print(f"server log: {len(lines)} line(s) about connections, e.g.\n  " + "\n  ".join(lines[:3]))
    ok_statuses = set(attacked["statuses"]) | set(alone["statuses"]) == {"200"}
    checks = {
        "every normal request answered 200": ok_statuses,
        "p99 under the trickle under 50 ms (kept-alive and new connections)": max(p99, p99_fresh) < 50.0,
        f"no trickling connection lived past {HEADER_TIMEOUT:g} s (+{ACCEPT_MARGIN:g} s)": lives[-1]
        <= HEADER_TIMEOUT + ACCEPT_MARGIN,
        "every trickling connection closed by the server": trickled["never_closed"] == 0,
        "no traceback in the server log": "Traceback" not in server_log,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
