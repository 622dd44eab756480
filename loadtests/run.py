"""A bounded headless Locust run against a local flagd with 2 workers: `make loadtest`.

    .venv/bin/python loadtests/run.py [--run-time 60s] [--users 40] [--spawn-rate 10] [--reports loadtests/reports]

Starts `flagd serve --workers 2` on a free port with its own embedded PostgreSQL (a temporary data
directory), creates an admin, an sdk and a results key, runs loadtests/locustfile.py headless with
FLAGD_LOADTEST_SETUP=1 (it creates the flags, metrics and experiment and starts it), and writes Locust's
CSV and HTML reports. Then it reads the experiment's results (API and page) to show the effect the
load injected, prints requests/s and p50/p95/p99 per request type, and stops the server with SIGTERM.
Exits non-zero when any request failed.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KEY = re.compile(r"flagd_[0-9a-f]{10}_[A-Za-z0-9_-]{43}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"flagd exited with {server.returncode} before it was ready")
        try:
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # waiting for a child process to start
    raise SystemExit(f"flagd was not ready within {timeout:.0f} s")


def create_key(env: dict[str, str], scope: str) -> str:
    out = subprocess.run(
        [str(BIN / "flagd"), "keys", "create", "--scope", scope, "--name", f"loadtest-{scope}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = KEY.search(out)
    if found is None:
        raise SystemExit(f"no key in the output of `flagd keys create`: {out!r}")
    return found.group(0)


def print_stats(prefix: Path) -> None:
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    print(
        f"\n{'request':<52} {'count':>8} {'fail':>5} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
    )
    for row in rows:
        name = f"{row['Type']} {row['Name']}".strip()
        print(
            f"{name:<52} {row['Request Count']:>8} {row['Failure Count']:>5} {float(row['Requests/s']):>8.1f} "
            f"{row['50%']:>7} {row['95%']:>7} {row['99%']:>7}"
        )


def main(args: argparse.Namespace) -> int:
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flagd-loadtest-") as work:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGD_") and k != "DATABASE_URL"}
        env.update(
            FLAGD_DATA_DIR=str(Path(work) / "data"), FLAGD_ACCESS_LOG="false", FLAGD_LOG_LEVEL="warning"
        )
        with open(reports / "server.log", "wb") as log:
            server = subprocess.Popen(
                [str(BIN / "flagd"), "serve", "--port", str(port), "--workers", "2"],
                env=env,
                stdout=log,
                stderr=log,
            )
            try:
                wait_ready(base, server)
                keys = {scope: create_key(env, scope) for scope in ("admin", "sdk", "results")}
                prefix = reports / "run"
                locust_env = dict(
                    env,
                    FLAGD_ADMIN_KEY=keys["admin"],
                    FLAGD_SDK_KEY=keys["sdk"],
                    FLAGD_RESULTS_KEY=keys["results"],
                    FLAGD_LOADTEST_SETUP="1",
                )
                command = [
                    str(BIN / "locust"),
                    "-f",
                    str(ROOT / "loadtests" / "locustfile.py"),
                    "--host",
                    base,
                    "--headless",
                    "--users",
                    str(args.users),
                    "--spawn-rate",
                    str(args.spawn_rate),
                    "--run-time",
                    args.run_time,
                    "--csv",
                    str(prefix),
                    "--html",
                    f"{prefix}.html",
                    "--only-summary",
                    "--stop-timeout",
                    "5",
                ]
                print("running:", " ".join(command[1:]), flush=True)
                locust = subprocess.run(command, env=locust_env, check=False)
                print_stats(prefix)
                with httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {keys['results']}"}
                ) as http:
                    results = http.get("/v1/experiments/checkout-test/results").json()
                primary = results["metrics"][0]
                rates = {v["variant"]: v["mean"] for v in primary["variants"]}
                relative = primary["comparisons"][0]["relative"]["sequential"]
                print(
                    f"\nresults after the run: {sum(u['units'] for u in results['units']):,} units; "
                    f"{primary['metric']} control {rates.get('control', 0):.3%}, treatment {rates.get('treatment', 0):.3%}; "
                    f"relative lift {relative.get('effect', float('nan')):+.1%} "
                    f"[{relative.get('ciLow') or float('-inf'):+.1%}, {relative.get('ciHigh') or float('inf'):+.1%}] "
                    f"(injected +{float(os.environ.get('FLAGD_LOADTEST_LIFT', '0.30')):.0%}); "
                    f"decision: {results['decision']['action']} - {results['decision']['reason']}"
                )
                with httpx.Client(base_url=base) as browser:
                    form = browser.get("/login").text
                    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
                    browser.post(
                        "/login", data={"key": keys["results"], "csrf": csrf.group(1) if csrf else ""}
                    )
                    page = browser.get("/experiments/checkout-test")
                (reports / "results-page.html").write_text(page.text, encoding="utf-8")
                print(f"results page: {page.status_code}, saved to {reports / 'results-page.html'}")
                print(f"reports: {prefix}_stats.csv, {prefix}.html")
                return locust.returncode
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-time", default="60s")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument("--reports", default=str(ROOT / "loadtests" / "reports"))
    raise SystemExit(main(parser.parse_args()))
