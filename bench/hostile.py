"""A normal client's OFREP latency alone, then while a second client sends hostile requests.

    .venv/bin/python bench/hostile.py [--seconds 15] [--rate 200]

Starts `flagd serve` (one worker, pinned to CPU 0; embedded PostgreSQL unless DATABASE_URL
is set), loads a few flags, then:

1. the normal client (this process, CPU 1) evaluates a flag over OFREP at a steady rate for
   --seconds and records every latency;
2. the same again while an attacker process (also CPU 1) sends, one after another in a loop,
   the worst requests of the "Hostile input" issue: a 16,000-digit number ending in a letter,
   a definition nested 250 deep, a $ref chain that doubles 18 and 40 times (dry run), 1 MB
   sem_ver strings (each different), flag-set documents of the wrong shape with prune, a
   forged log line in the path, a key ending in a newline, parameters that are not numbers,
   a 5,001-digit zero-padded number, a body over the size limit.

It prints p50/p99/max for both phases, how many hostile requests were answered and with which
statuses (a 5xx fails the run), and the server's resident memory before the attack and its
peak (VmHWM) after. Targets: p99 under attack within 2x of p99 alone and under 20 ms; peak
memory growth under 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import database, free_port
from sse_latency import make_keys, wait_ready

NORMAL_CONTEXT = {"context": {"targetingKey": "user-1", "age": 30, "version": "2.3.4"}}


def flag(targeting: Any) -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": targeting,
    }


FLAGS = {
    "flags": {
        "adult": flag({"if": [{">=": [{"var": "age"}, 18]}, "on", "off"]}),
        "modern": flag({"if": [{"sem_ver": [{"var": "version"}, ">=", "2.0.0"]}, "on", "off"]}),
        "rollout": flag({"fractional": [["on", 50], ["off", 50]]}),
    }
}


def doubling(levels: int) -> dict[str, Any]:
    evaluators: dict[str, Any] = {"e0": {"==": [{"var": "x"}, 1]}}
    for n in range(1, levels + 1):
        evaluators[f"e{n}"] = {"or": [{"$ref": f"e{n - 1}"}, {"$ref": f"e{n - 1}"}]}
    return {"$evaluators": evaluators, "flags": {"bomb": flag({"if": [{"$ref": f"e{levels}"}, "on", "off"]})}}


def hostile_requests() -> list[tuple[str, str, str, bytes, bool]]:
    """(name, method, path, body, admin?) for each case; sem_ver bodies are varied per send."""
    forged = "/x%0A2026-11-24%2008:22:30,000%20INFO%20%22DELETE%20/v1/admin/flags/simple%20HTTP/1.1%22%20204"
    return [
        (
            "1 digits+x",
            "POST",
            "/ofrep/v1/evaluate/flags/adult",
            orjson.dumps({"context": {"age": "1" * 16_000 + "x"}}),
            False,
        ),
        (
            "2 deep nesting",
            "POST",
            "/v1/admin/flags",
            b'{"key": "deep", "definition": ' + _json_deep(250) + b"}",
            True,
        ),
        ("3 $ref x18", "PUT", "/v1/admin/flag-set?dry_run=true", orjson.dumps(doubling(18)), True),
        ("3 $ref x40", "PUT", "/v1/admin/flag-set?dry_run=true", orjson.dumps(doubling(40)), True),
        ("4 sem_ver 1MB", "POST", "/ofrep/v1/evaluate/flags/modern", b"", False),
        ("5 empty prune", "PUT", "/v1/admin/flag-set?prune=true", b"{}", True),
        (
            "5 misspelt prune",
            "PUT",
            "/v1/admin/flag-set?prune=true",
            orjson.dumps({"flgs": FLAGS["flags"]}),
            True,
        ),
        ("6 forged log", "GET", forged, b"", False),
        (
            "7 key newline",
            "POST",
            "/v1/admin/flags",
            orjson.dumps({"key": "ok\n", "definition": flag(None)}),
            True,
        ),
        ("9 bad limit", "GET", "/v1/admin/audit?limit=%C2%B2", b"", True),
        ("9 NUL key", "GET", "/v1/admin/flags/a%00b", b"", True),
        (
            "10 zero padded",
            "POST",
            "/ofrep/v1/evaluate/flags/adult",
            orjson.dumps({"context": {"age": "0" * 5000 + "1"}}),
            False,
        ),
        ("body over limit", "POST", "/ofrep/v1/evaluate/flags/adult", b"[" + b"1," * 600_000 + b"1]", False),
    ]


def _json_deep(depth: int) -> bytes:
    # orjson will not write 250 levels; the attacker writes the text itself.
    rule = b'{"!": ' * depth + b"true" + b"}" * depth
    head = (
        b'{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": '
    )
    return head + rule + b"}"


def attack(base: str, admin_key: str, sdk_key: str, stop: Any, underway: Any, results: Any) -> None:
    os.sched_setaffinity(0, {1})
    requests = hostile_requests()
    statuses: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=60.0) as http:
        n = 0
        while not stop.is_set():
            name, method, path, body, admin = requests[n % len(requests)]
            if name.startswith("4"):
                body = b'{"context": {"version": "2.%d.' % n + b"9" * 1_000_000 + b'"}}'
            key = admin_key if admin else sdk_key
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            response = http.request(method, path, content=body or None, headers=headers)
            statuses[f"{name}: {response.status_code}"] += 1
            n += 1
            if n == len(requests):
                underway.set()  # every kind of hostile request has been sent once: measure from here
    results.put(dict(statuses))


async def normal_client(base: str, sdk_key: str, seconds: float, rate: float) -> list[float]:
    latencies = []
    interval = 1.0 / rate
    body = orjson.dumps(NORMAL_CONTEXT)
    headers = {"Authorization": f"Bearer {sdk_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, timeout=30.0, headers=headers) as http:
        for _ in range(200):  # warm up the connection and the caches
            await http.post("/ofrep/v1/evaluate/flags/adult", content=body)
        start = time.perf_counter()
        next_at = start
        while time.perf_counter() - start < seconds:
            sent = time.perf_counter()
            response = await http.post("/ofrep/v1/evaluate/flags/adult", content=body)
            latencies.append((time.perf_counter() - sent) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"normal request failed: {response.status_code} {response.text}")
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return latencies


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def summary(name: str, latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    print(f"{name:<24} {len(ordered):>7} {p50:>9.2f} {p99:>9.2f} {ordered[-1]:>9.2f}")
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0, help="normal requests per second")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="flagd-hostile-") as workdir, database(Path(workdir)) as url:
        admin_key, sdk_key = asyncio.run(make_keys(url))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": url, "FLAGD_LOG_LEVEL": "warning"}
        with open(Path(workdir) / "server.log", "wb") as log:
            server = subprocess.Popen(
                ["taskset", "-c", "0", sys.executable, "-m", "flagd", "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                asyncio.run(wait_ready(base))
                httpx.put(
                    f"{base}/v1/admin/flag-set", json=FLAGS, headers={"Authorization": f"Bearer {admin_key}"}
                ).raise_for_status()
                alone = asyncio.run(normal_client(base, sdk_key, args.seconds, args.rate))
                before = memory_kb(server.pid)
                stop, underway = multiprocessing.Event(), multiprocessing.Event()
                results: multiprocessing.Queue[dict[str, int]] = multiprocessing.Queue()
                attacker = multiprocessing.Process(
                    target=attack, args=(base, admin_key, sdk_key, stop, underway, results)
                )
                attacker.start()
                if not underway.wait(120):
                    raise SystemExit("the attacker did not get through one round of requests in 120 s")
                attacked = asyncio.run(normal_client(base, sdk_key, args.seconds, args.rate))
                stop.set()
                statuses = results.get(timeout=120)
                attacker.join()
                after = memory_kb(server.pid)
            finally:
                server.terminate()
                server.wait(30)
        server_log = (Path(workdir) / "server.log").read_text(errors="replace")
    print(f"{'normal client (ms)':<24} {'requests':>7} {'p50':>9} {'p99':>9} {'max':>9}")
    _, p99_alone = summary("alone", alone)
    _, p99_attacked = summary("under attack", attacked)
    print("\nhostile requests answered (case: status -> count):")
    for name, count in sorted(statuses.items()):
        print(f"  {name:<28} {count}")
    server_errors = sum(count for name, count in statuses.items() if name.rsplit(" ", 1)[1].startswith("5"))
    growth = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(
        f"\nserver memory: {before['VmRSS'] / 1024:.1f} MB before the attack, peak {after['VmHWM'] / 1024:.1f} MB "
        f"(growth {growth:.1f} MB), {after['VmRSS'] / 1024:.1f} MB after"
    )
    ratio = p99_attacked / p99_alone
    print(f"p99 under attack / alone: {ratio:.2f}x")
    checks = {
        "p99 under attack within 2x of alone": ratio <= 2.0,
        "p99 under attack under 20 ms": p99_attacked < 20.0,
        "peak memory growth under 50 MB": growth < 50.0,
        "no 5xx answer": server_errors == 0,
        "no traceback in the server log": "Traceback" not in server_log,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
