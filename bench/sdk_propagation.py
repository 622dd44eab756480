"""How long a flag change takes to reach a running flagd_sdk Client.

    .venv/bin/python bench/sdk_propagation.py [--changes 30] [--workers 2]

Starts `flagd serve` on its own database, a `Client` following it, then `--changes` times flips a
flag's default variant through the admin API and measures from the moment the admin answered to
the moment the client's evaluation returns the new value (the client is polled every 0.2 ms in this
process). Prints the median, p99 and max. Target (issue 13): under 1 second. First it times a
Client's construction when nothing answers at its URL, for three init_timeouts (target: no more than
the timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from common import database, free_port, serve
from sse_latency import make_keys, wait_ready

from flagd_sdk import Client

DOCUMENT = {
    "flags": {"banner": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}}
}


def serves(client: Client, wanted: bool) -> bool:
    return client.bool_value("banner", "u", not wanted) is wanted


def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` every 0.2 ms (in a thread, so the event loop stays free)."""
    while not condition():
        time.sleep(0.0002)


async def measure(base: str, admin: str, sdk_key: str, changes: int) -> list[float]:
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10.0) as http:
        assert (await http.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
        client = await asyncio.to_thread(Client, base, sdk_key, init_timeout=10.0)
        try:
            await asyncio.to_thread(until, lambda: client.status()["connected"])
            took = []
            for i in range(changes):
                wanted = i % 2 == 0
                flag = dict(DOCUMENT["flags"]["banner"], defaultVariant="on" if wanted else "off")
                version = (await http.get("/v1/admin/flags/banner")).headers["etag"]
                put = await http.put(
                    "/v1/admin/flags/banner", json={"definition": flag}, headers={"If-Match": version}
                )
                assert put.status_code == 200, put.text
                answered = time.perf_counter()
                await asyncio.to_thread(until, functools.partial(serves, client, wanted))
                took.append(time.perf_counter() - answered)
            return took
        finally:
            await asyncio.to_thread(client.close)


def dead_start(init_timeout: float) -> float:
    """Seconds a Client takes to construct when nothing answers at its URL."""
    started = time.perf_counter()
    client = Client(f"http://127.0.0.1:{free_port()}", "flagd_none", init_timeout=init_timeout)
    took = time.perf_counter() - started
    client.close()
    return took


def main(args: argparse.Namespace) -> None:
    for timeout in (0.1, 0.5, 2.0):
        print(
            f"start with no server answering, init_timeout {timeout} s: {dead_start(timeout):.3f} s",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="flagd-propagation-") as work, database(Path(work)) as url:
        admin, sdk_key = asyncio.run(make_keys(url))
        server, base = serve(url, workers=args.workers)
        try:
            asyncio.run(wait_ready(base))
            took = asyncio.run(measure(base, admin, sdk_key, args.changes))
        finally:
            server.terminate()
            server.wait(30)
    took_ms = sorted(t * 1000 for t in took)
    p99 = took_ms[min(len(took_ms) - 1, int(len(took_ms) * 0.99))]
    print(
        f"flag change to a running Client ({args.changes} changes, {args.workers} workers): "
        f"median {statistics.median(took_ms):.1f} ms, p99 {p99:.1f} ms, max {took_ms[-1]:.1f} ms (target: under 1 s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    main(parser.parse_args())
