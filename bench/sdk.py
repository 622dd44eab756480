"""Microseconds per local evaluation: flagd_sdk beside three peers, in one run.

    .venv/bin/python -m pip install -e '.[dev,bench]'
    .venv/bin/python bench/sdk.py [--calls 200000] [--users 10000]

Three flags, defined equivalently for each implementation:

- static: a boolean with no targeting;
- targeting: a boolean that is on for two countries;
- experiment: a two-variant 50/50 split of every unit, with exposure bookkeeping where the SDK has any
  (flagd_sdk logs each unit's exposure once: a dedup-cache lookup per call, an event per new unit;
  GrowthBook calls its tracking callback once per unit; LaunchDarkly records the evaluation in its
  event processor, with events enabled and sent to an unreachable address).

Peers: flagd_sdk's `Client` (from a bootstrap file: the real evaluation path, background threads
running), `growthbook` (one GrowthBook instance, attributes set per user), `openfeature-flagd-core`
1.0.x on the same served flagd definition (an evaluator only: no exposures), and
`launchdarkly-server-sdk` fed by its in-memory TestData source (the experiment rollout added to the
flag TestData builds, which has no rollout builder). Every call is timed alone with perf_counter_ns
(the same timer cost for everyone), users cycle through `--users` ids, inputs are built beforehand.
Target (issue 13): at most 5 us median for the experiment flag, and faster than every peer on every row.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flagd.experiments.serving import Lifecycle, served_flags
from flagd_sdk import Client

FLAGS: dict[str, Any] = {
    "static": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
    "targeting": {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [{"in": [{"var": "country"}, ["NL", "BE"]]}, "on", "off"]},
    },
    "experiment": {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "old"},
}
EXPERIMENTS = {
    "one-page": {
        "flag": "experiment",
        "variants": {"old": 1, "new": 1},
        "metrics": [{"metric": "bought", "role": "primary"}],
    }
}
METRICS = {"bought": {"type": "conversion", "event": "purchase", "direction": "increase"}}
ROWS = ("static", "targeting", "experiment")
DEFAULTS = {"static": False, "targeting": False, "experiment": "old"}


def served_document() -> dict[str, Any]:
    lifecycles = {"one-page": Lifecycle("running", 1, "bench-salt", None)}
    served = served_flags(FLAGS, METRICS, {}, EXPERIMENTS, lifecycles)
    return {"flags": served.flags}


def timed(call: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """Median and p99 microseconds of `calls` calls (the garbage collector off while timing)."""
    samples = [0] * calls
    gc.collect()
    gc.disable()
    try:
        clock = time.perf_counter_ns
        for i in range(calls):
            started = clock()
            call(i)
            samples[i] = clock() - started
    finally:
        gc.enable()
    samples.sort()
    return samples[calls // 2] / 1000, samples[calls * 99 // 100] / 1000


def ours(
    document: dict[str, Any], users: list[str], attributes: dict[str, Any]
) -> dict[str, Callable[[int], Any]]:
    folder = Path(tempfile.mkdtemp(prefix="flagd-sdk-bench-"))
    (folder / "flags.json").write_text(json.dumps(document))
    client = Client(
        "http://127.0.0.1:9",
        "flagd_bench",
        bootstrap=folder / "flags.json",
        init_timeout=0.01,
        max_queue=20_000,
    )
    n = len(users)
    return {
        "static": lambda i: client.bool_value("static", users[i % n], False, attributes),
        "targeting": lambda i: client.bool_value("targeting", users[i % n], False, attributes),
        "experiment": lambda i: client.string_value("experiment", users[i % n], "old", attributes),
    }


def growthbook(users: list[str]) -> dict[str, Callable[[int], Any]] | None:
    try:
        from growthbook import GrowthBook
    except ImportError:
        return None
    features = {
        "static": {"defaultValue": True},
        "targeting": {
            "defaultValue": False,
            "rules": [{"condition": {"country": {"$in": ["NL", "BE"]}}, "force": True}],
        },
        "experiment": {
            "defaultValue": "old",
            "rules": [
                {
                    "key": "one-page",
                    "variations": ["old", "new"],
                    "weights": [0.5, 0.5],
                    "hashAttribute": "id",
                }
            ],
        },
    }
    viewed: list[Any] = []
    gb = GrowthBook(
        features=features, on_experiment_viewed=lambda experiment, result, **_: viewed.append(result)
    )
    people = [{"id": u, "country": "NL"} for u in users]
    n = len(users)

    def evaluate(key: str) -> Callable[[int], Any]:
        def call(i: int) -> Any:
            gb.set_attributes(people[i % n])
            return gb.get_feature_value(key, DEFAULTS[key])

        return call

    return {key: evaluate(key) for key in ROWS}


def flagd_core(document: dict[str, Any], users: list[str]) -> dict[str, Callable[[int], Any]] | None:
    try:
        from openfeature.contrib.tools.flagd.core import FlagdCore
        from openfeature.evaluation_context import EvaluationContext
    except ImportError:
        return None
    core = FlagdCore()
    core.set_flags(json.loads(json.dumps(document)))
    contexts = [EvaluationContext(targeting_key=u, attributes={"country": "NL"}) for u in users]
    n = len(users)
    return {
        "static": lambda i: core.resolve_boolean_value("static", False, contexts[i % n]),
        "targeting": lambda i: core.resolve_boolean_value("targeting", False, contexts[i % n]),
        "experiment": lambda i: core.resolve_string_value("experiment", "old", contexts[i % n]),
    }


def launchdarkly(users: list[str]) -> tuple[dict[str, Callable[[int], Any]], Any] | None:
    try:
        import ldclient
        from ldclient import Context
        from ldclient.config import Config
        from ldclient.integrations.test_data import FlagBuilder, TestData
    except ImportError:
        return None

    class RolloutFlag(FlagBuilder):
        """TestData has no rollout builder: the built flag's fallthrough becomes a 50/50 experiment."""

        def _build(self, version: int) -> dict[str, Any]:
            built: dict[str, Any] = super()._build(version)
            built["fallthrough"] = {
                "rollout": {
                    "kind": "experiment",
                    "seed": 61,
                    "variations": [{"variation": 0, "weight": 50_000}, {"variation": 1, "weight": 50_000}],
                }
            }
            built["trackEvents"] = True
            return built

    td = TestData.data_source()
    td.update(td.flag("static").variation_for_all(True))
    td.update(
        td.flag("targeting").if_match("country", "NL", "BE").then_return(True).fallthrough_variation(False)
    )
    experiment = RolloutFlag("experiment")
    experiment.variations("old", "new").fallthrough_variation(0)
    td.update(experiment)
    config = Config(
        "bench-key",
        update_processor_class=td,
        events_uri="http://127.0.0.1:9",
        diagnostic_opt_out=True,
        flush_interval=3600,
    )
    client = ldclient.LDClient(config=config)
    contexts = [Context.builder(u).set("country", "NL").build() for u in users]
    n = len(users)
    return {
        "static": lambda i: client.variation("static", contexts[i % n], False),
        "targeting": lambda i: client.variation("targeting", contexts[i % n], False),
        "experiment": lambda i: client.variation("experiment", contexts[i % n], "old"),
    }, client


def main(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)
    users = [f"user-{i}" for i in range(args.users)]
    attributes = {"country": "NL"}
    document = served_document()
    peers: dict[str, dict[str, Callable[[int], Any]] | None] = {
        "flagd_sdk": ours(document, users, attributes)
    }
    peers["growthbook"] = growthbook(users)
    peers["openfeature-flagd-core"] = flagd_core(document, users)
    ld = launchdarkly(users)
    peers["launchdarkly-server-sdk"] = ld[0] if ld else None
    names = [name for name, calls in peers.items() if calls is not None]
    for name, calls in peers.items():
        if calls is None:
            print(f"{name}: not installed (pip install -e '.[dev,bench]'); left out")
    header = f"{'flag':<11}" + "".join(f"{name:>26}" for name in names)
    print(f"median / p99 us per evaluation, {args.calls:,} calls over {args.users:,} users")
    print(header)
    for row in ROWS:
        cells = []
        for name in names:
            calls = peers[name]
            assert calls is not None
            calls[row](0)  # warm: first-call caches, lazy imports
            median, p99 = timed(calls[row], args.calls)
            cells.append(f"{median:>13.2f} / {p99:>8.2f}")
        print(f"{row:<11}" + "".join(f"{cell:>26}" for cell in cells), flush=True)
    print("target: flagd_sdk's experiment row at most 5 us median, and the fastest on every row")
    if ld:
        ld[1].close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    main(parser.parse_args())
