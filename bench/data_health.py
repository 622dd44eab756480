"""How often do the data-health rules alarm on healthy traffic, and how soon do they catch the real mistakes?

    .venv/bin/python bench/data_health.py [--months 6] [--events 40] [--seed 1]

Simulates hourly counts of `--events` event names over `--months` months (30 days each) after a 4-week warm-up,
with a weekly pattern (a daytime peak, weekends at 65%), base volumes from 2 to 2,000 events an hour, and
overdispersed noise (gamma-Poisson: each hour's rate varies by 10% beyond Poisson), a property present in 95% of
the events (5% missing at random), one type throughout, and coincidental repeats within a second at 0.5%.
Every hour of every event is judged by the project's own rules (flagd.health.judging.judge_event, as the
detector calls it) with the open/resolved lifecycle of flagd.health.alarms (an alarm opens once until it
resolves). It prints:

- false alarms: alarms opened on healthy traffic, per event name and month, and per judged event-hour, by kind;
- detection: for the same traffic with a 70% drop of two hours injected at a random busy hour (one per
  event and month), the share alarmed in the drop's first hour and by its second, by base volume.

Pure CPU (no database): a few seconds for the defaults.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter, deque
from datetime import UTC, datetime

import numpy as np

from flagd.health.judging import HOUR, EventHistory, judge_event
from flagd.health.rules import BASELINE_DAYS, BASELINE_WEEKS, PropertyCounts, Share

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
DISPERSION = 0.10
PRESENT = 0.95
REPEATS = 0.005


def shape(hour: datetime) -> float:
    daily = 0.4 + 1.1 * max(0.0, math.sin(math.pi * (hour.hour - 6) / 16))
    return daily * (0.65 if hour.weekday() >= 5 else 1.0)


def simulate(base: float, hours: int, rng: np.random.Generator, drops: set[int]) -> list[int]:
    counts = []
    for h in range(hours):
        mean = base * shape(START + h * HOUR)
        rate = rng.gamma(1 / DISPERSION**2, mean * DISPERSION**2)
        n = int(rng.poisson(rate))
        if h in drops or h - 1 in drops:
            n = int(rng.binomial(n, 0.3))
        counts.append(n)
    return counts


def run_event(
    base: float, hours: int, warmup: int, rng: np.random.Generator, drops: set[int]
) -> tuple[Counter[str], int, dict[int, int]]:
    """Alarms opened per kind, hours judged, and for each drop the hour offset it was first alarmed (absent: never)."""
    counts = simulate(base, hours, rng, drops)
    present = [int(rng.binomial(n, PRESENT)) for n in counts]
    repeats = [int(rng.binomial(n, REPEATS)) for n in counts]
    window = 24 * BASELINE_DAYS
    base_events: deque[int] = deque(maxlen=window)
    base_present: deque[int] = deque(maxlen=window)
    base_repeats: deque[int] = deque(maxlen=window)
    opened: Counter[str] = Counter()
    open_now: set[tuple[str, str, str]] = set()
    caught: dict[int, int] = {}
    judged = 0
    for h in range(hours):
        if h >= warmup:
            hour = START + h * HOUR
            sums = (sum(base_events), sum(base_present), sum(base_repeats))
            history = EventHistory(
                "e",
                START,
                {START + k * HOUR: counts[k] for k in _needed(h)},
                repeats=Share(repeats[h], counts[h]),
                baseline_repeats=Share(sums[2], sums[0]),
                properties={
                    "p": (
                        PropertyCounts(counts[h], {"string": present[h]}),
                        PropertyCounts(sums[0], {"string": sums[1]}),
                    )
                },
            )
            result = judge_event(history, hour)
            found = {f.identity: f for f in result.findings}
            for identity in found.keys() - open_now:
                opened[identity[0]] += 1
                opened[f"{identity[0]}:{found[identity].rule}"] += 1
                if identity[0] == "volume_anomaly":
                    for d in drops:
                        if 0 <= h - d <= 1 and d not in caught:
                            caught[d] = h - d
            open_now = set(found) | (open_now & result.undecided)
            judged += 1
        base_events.append(counts[h])
        base_present.append(present[h])
        base_repeats.append(repeats[h])
    return opened, judged, caught


def _needed(h: int) -> list[int]:
    return [
        h - back - 168 * w for back in range(24) for w in range(BASELINE_WEEKS + 1) if h - back - 168 * w >= 0
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    warmup = 24 * 7 * BASELINE_WEEKS
    hours = warmup + 24 * 30 * args.months
    bases = np.geomspace(2, 2000, args.events)
    started = time.perf_counter()
    false: Counter[str] = Counter()
    judged = 0
    for base in bases:
        opened, n, _ = run_event(float(base), hours, warmup, rng, set())
        false.update(opened)
        judged += n
    months = args.events * args.months
    print(f"healthy traffic: {args.events} events x {args.months} months, {judged:,} event-hours judged")
    for kind in ("volume_anomaly", "schema_drift", "duplicate_burst"):
        print(
            f"  false {kind:16s} {false[kind]:5d}  = {false[kind] / months:.3f} per event-month, {false[kind] / judged:.2e} per event-hour"
        )
    rules = ", ".join(f"{k.split(':')[1]} {n}" for k, n in sorted(false.items()) if ":" in k)
    print(f"  by rule: {rules or 'none'}")
    total = sum(n for k, n in false.items() if ":" not in k)
    print(
        f"  false alarms, all kinds: {total} = {total / months:.3f} per event-month, {total / judged:.2e} per event-hour"
    )
    print(
        "70% drops of two hours at a busy hour (one per event and month): alarmed in the first hour / by the second"
    )
    for low, high in ((2, 20), (20, 80), (80, 300), (300, 2001)):
        first = second = injected = 0
        for base in bases[(bases >= low) & (bases < high)]:
            busy = [warmup + 24 * 30 * m + 24 * int(rng.integers(1, 29)) + 14 for m in range(args.months)]
            _, _, caught = run_event(float(base), hours, warmup, rng, set(busy))
            injected += len(busy)
            first += sum(1 for d in busy if caught.get(d) == 0)
            second += sum(1 for d in busy if d in caught)
        if injected:
            print(
                f"  base {low:>4}-{high - 1:<4}/h at peak x1.5: {first / injected:6.1%} / {second / injected:6.1%}  ({injected} drops)"
            )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
