"""Evaluation speed: our evaluator beside openfeature-flagd-core 1.0.x, on the conformance flags.

    make bench-evaluation          (installs the `bench` extra, then runs this)

For every flag in the flagd-testbed flag file, both evaluators resolve the same
contexts; the script first checks that they agree on every value and variant, then
times them in interleaved batches (so machine noise hits both alike) and prints the
median microseconds per evaluation, per flag and per kind of flag, and the targets
of issue 3: targeting flags at least 5x faster, static flags never slower, fractional
at most 3 us median.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagd_sdk.evaluation import FlagSet, FlagType, Reason, load_flag_set

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FLAGS = REPO.parent / "shared" / "conformance" / "flagd-testbed" / "flags" / "testkit-flags.json"


def _reference() -> tuple[Any, Any] | None:
    """openfeature-flagd-core's evaluator and context classes, if the `bench` extra is installed."""
    try:
        from openfeature.contrib.tools.flagd.core import FlagdCore
        from openfeature.evaluation_context import EvaluationContext
    except ImportError:
        return None
    return FlagdCore, EvaluationContext


@dataclass(frozen=True)
class Case:
    key: str
    kind: str
    flag_type: FlagType
    default: Any
    contexts: list[dict[str, Any]]


def flag_kind(definition: dict[str, Any]) -> str:
    if definition.get("state") == "DISABLED":
        return "disabled"
    rule = json.dumps(definition.get("targeting") or {})
    if rule == "{}":
        return "static"
    for operator, kind in (
        ("fractional", "fractional"),
        ("sem_ver", "sem_ver"),
        ("starts_with", "string"),
        ("ends_with", "string"),
    ):
        if f'"{operator}"' in rule:
            return kind
    return "targeting"


def flag_type(definition: dict[str, Any]) -> tuple[FlagType, Any]:
    value = next(iter(definition["variants"].values()))
    if isinstance(value, bool):
        return FlagType.BOOLEAN, False
    if isinstance(value, str):
        return FlagType.STRING, "fallback"
    if isinstance(value, int):
        return FlagType.INTEGER, 0
    if isinstance(value, float):
        return FlagType.FLOAT, 0.0
    return FlagType.OBJECT, {}


def contexts(count: int) -> list[dict[str, Any]]:
    """Varied contexts carrying every attribute the conformance flags read."""
    emails = ["ballmer@macrosoft.com", "jobs@orange.com", "user@example.com", "wozniak@orange.com"]
    versions = ["2.0.0", "2.1.0", "1.9.0", "2.0.0-alpha", "3.0.1", "3.1.0", "v1.0.0", "1.2", "not-a-version"]
    ids = ["abcdef", "uvwxyz", "abcxyz", "lmnopq"]
    made = []
    for i in range(count):
        key = str(uuid.UUID(int=(i * 2654435761) % 2**128))
        made.append(
            {
                "targetingKey": key,
                "email": emails[i % len(emails)],
                "user": {"name": ["jack", "queen", "ten", "nine", "seven", "two"][i % 6] + str(i)},
                "version": versions[i % len(versions)],
                "id": ids[i % len(ids)],
                "tier": "premium" if i % 2 else "basic",
                "color": ["red", "green", "yellow"][i % 3],
                "num": i,
            }
        )
    return made


def reference_context(context_class: Any, context: dict[str, Any]) -> Any:
    attributes = {k: v for k, v in context.items() if k != "targetingKey"}
    return context_class(targeting_key=context.get("targetingKey"), attributes=attributes)


_REFERENCE_METHOD = {
    FlagType.BOOLEAN: "resolve_boolean_value",
    FlagType.STRING: "resolve_string_value",
    FlagType.INTEGER: "resolve_integer_value",
    FlagType.FLOAT: "resolve_float_value",
    FlagType.OBJECT: "resolve_object_value",
}


def reference_outcome(core: Any, case: Case, context: Any) -> tuple[Any, Any]:
    try:
        details = getattr(core, _REFERENCE_METHOD[case.flag_type])(case.key, case.default, context)
    except Exception as exc:
        return ("error", type(exc).__name__)
    return (details.value, details.variant)


def our_outcome(flags: FlagSet, case: Case, context: dict[str, Any]) -> tuple[Any, Any]:
    details = flags.resolve(case.flag_type, case.key, case.default, context)
    if details.reason == Reason.ERROR:
        return ("error", details.error_code)
    return (details.value, details.variant)


def time_batches(
    run_ours: Callable[[], None], run_reference: Callable[[], None], batches: int, per_batch: int
) -> tuple[float, float]:
    ours: list[float] = []
    reference: list[float] = []
    for _ in range(batches):
        for runner, sink in ((run_ours, ours), (run_reference, reference)):
            started = time.perf_counter_ns()
            runner()
            sink.append((time.perf_counter_ns() - started) / per_batch / 1000.0)
    return statistics.median(ours), statistics.median(reference)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--flags", type=Path, default=Path(os.environ.get("FLAGD_BENCH_FLAGS", DEFAULT_FLAGS))
    )
    parser.add_argument("--batches", type=int, default=15, help="timed batches per flag and evaluator")
    parser.add_argument("--contexts", type=int, default=64, help="distinct contexts per batch")
    parser.add_argument("--rounds", type=int, default=8, help="passes over the contexts per batch")
    args = parser.parse_args()

    reference = _reference()
    if reference is None:
        print("openfeature-flagd-core 1.0.x is not installed; run `make bench-evaluation`", file=sys.stderr)
        return 2
    if not args.flags.is_file():
        print(f"flag file not found: {args.flags}", file=sys.stderr)
        return 2

    # The reference logs every operator error at ERROR level; that is noise here, and its cost
    # is not evaluation work, so it is switched off for both sides.
    logging.disable(logging.CRITICAL)
    document = json.loads(args.flags.read_text(encoding="utf-8"))
    ours = load_flag_set(document, strict=False)
    flagd_core_class, context_class = reference
    core = flagd_core_class()
    core.set_flags(json.loads(args.flags.read_text(encoding="utf-8")))
    pool = contexts(args.contexts)
    reference_pool = [reference_context(context_class, c) for c in pool]

    cases = []
    for key, definition in document["flags"].items():
        resolved_type, default = flag_type(definition)
        cases.append(Case(key, flag_kind(definition), resolved_type, default, pool))

    disagreements = []
    for case in cases:
        for context, reference in zip(pool, reference_pool, strict=True):
            mine, theirs = our_outcome(ours, case, context), reference_outcome(core, case, reference)
            if mine[0] == "error" and theirs[0] == "error":
                continue
            if mine != theirs:
                disagreements.append((case.key, context, mine, theirs))
    print(f"identity check: {len(cases)} flags x {len(pool)} contexts, {len(disagreements)} disagreements")
    for key, context, mine, theirs in disagreements[:20]:
        print(f"  {key}: ours={mine} reference={theirs} context={context}")

    per_batch = args.contexts * args.rounds
    rows = []
    for case in cases:
        method = getattr(core, _REFERENCE_METHOD[case.flag_type])
        resolve = ours.resolve

        def run_ours(case: Case = case, resolve: Any = resolve) -> None:
            for _ in range(args.rounds):
                for context in pool:
                    resolve(case.flag_type, case.key, case.default, context)

        def run_reference(case: Case = case, method: Any = method) -> None:
            for _ in range(args.rounds):
                for context in reference_pool:
                    try:
                        method(case.key, case.default, context)
                    except Exception:  # the reference raises for error outcomes
                        pass

        mine_us, theirs_us = time_batches(run_ours, run_reference, args.batches, per_batch)
        rows.append((case.key, case.kind, mine_us, theirs_us))

    print()
    print(f"{'flag':48} {'kind':10} {'ours us':>9} {'flagd-core us':>14} {'speed-up':>9}")
    for key, kind, mine_us, theirs_us in sorted(rows, key=lambda r: (r[1], r[0])):
        print(f"{key:48} {kind:10} {mine_us:9.2f} {theirs_us:14.2f} {theirs_us / mine_us:8.1f}x")

    print()
    print(
        f"{'kind':10} {'flags':>5} {'ours median us':>15} {'flagd-core median us':>21} {'min speed-up':>13} {'median speed-up':>16}"
    )
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for _, kind, mine_us, theirs_us in rows:
        by_kind.setdefault(kind, []).append((mine_us, theirs_us))
    for kind, timings in sorted(by_kind.items()):
        speedups = [t / m for m, t in timings]
        print(
            f"{kind:10} {len(timings):5d} {statistics.median(m for m, _ in timings):15.2f} "
            f"{statistics.median(t for _, t in timings):21.2f} {min(speedups):12.1f}x {statistics.median(speedups):15.1f}x"
        )

    targeting = [t / m for _, kind, m, t in rows if kind in ("fractional", "sem_ver", "string")]
    static = [t / m for _, kind, m, t in rows if kind == "static"]
    fractional_us = statistics.median(m for _, kind, m, _ in rows if kind == "fractional")
    checks = [
        ("ours and flagd-core agree on every value and variant", not disagreements),
        (
            f"targeting flags (fractional, sem_ver, string ops): min speed-up {min(targeting):.1f}x >= 5x",
            min(targeting) >= 5,
        ),
        (f"static flags: min speed-up {min(static):.1f}x >= 1x (never slower)", min(static) >= 1),
        (f"fractional flags: median {fractional_us:.2f} us <= 3 us", fractional_us <= 3),
    ]
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
