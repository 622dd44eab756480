"""What a flagd_sdk client adds to its host process's memory, at its bounds.

    .venv/bin/python bench/sdk_memory.py [--flags 1000] [--units 100000]

Builds a flag set of `--flags` flags (half with targeting rules) plus one running experiment, starts
a `Client` from it (bootstrap file, background threads running, no server), then evaluates the
experiment flag for `--units` distinct units: the exposure cache fills to its bound (100,000 by
default) and the event queue to its own (100,000). Prints the process's resident memory (VmRSS)
after importing flagd_sdk (the baseline), after the client loaded the flags, and with both bounds
reached. Target (issue 13): at most 50 MB added to the host process.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from pathlib import Path
from typing import Any

from flagd.experiments.serving import Lifecycle, served_flags
from flagd_sdk import Client


def rss_mb() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flag_set(count: int) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for i in range(count):
        flag: dict[str, Any] = {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        }
        if i % 2:
            flag["targeting"] = {
                "if": [
                    {
                        "and": [
                            {"in": [{"var": "country"}, ["NL", "BE", f"C{i}"]]},
                            {">": [{"var": "age"}, i % 90]},
                        ]
                    },
                    "on",
                    {"fractional": [["on", 10], ["off", 90]]},
                ]
            }
        flags[f"flag-{i}"] = flag
    flags["experiment"] = {
        "state": "ENABLED",
        "variants": {"old": "old", "new": "new"},
        "defaultVariant": "old",
    }
    experiments = {
        "one-page": {
            "flag": "experiment",
            "variants": {"old": 1, "new": 1},
            "metrics": [{"metric": "bought", "role": "primary"}],
        }
    }
    metrics = {"bought": {"type": "conversion", "event": "purchase", "direction": "increase"}}
    served = served_flags(
        flags, metrics, {}, experiments, {"one-page": Lifecycle("running", 1, "salt", None)}
    )
    return {"flags": served.flags}


def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="flagd-sdk-memory-"))
    path = folder / "flags.json"
    path.write_text(json.dumps(flag_set(args.flags)))
    baseline = rss_mb()
    client = Client("http://127.0.0.1:9", "flagd_bench", bootstrap=path, init_timeout=0.01)
    loaded = rss_mb()
    for i in range(args.units):
        client.variant("experiment", f"user-{i:08d}", {"country": "NL", "age": 30})
    status = client.status()
    full = rss_mb()
    print(f"flagd_sdk imported (baseline):            {baseline:7.1f} MB")
    print(
        f"client with {args.flags:,} flags loaded:          {loaded:7.1f} MB  (+{loaded - baseline:.1f} MB)"
    )
    print(
        f"exposure cache {status['exposures_remembered']:,} entries, queue {status['queued']:,} events: "
        f"{full:7.1f} MB  (+{full - baseline:.1f} MB over the baseline; target at most 50 MB)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--units", type=int, default=100_000)
    main(parser.parse_args())
