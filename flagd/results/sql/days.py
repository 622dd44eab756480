"""The time series' past days: each day's per-variant sums as of its end, stored once the day is closed.

A day's point needs the raw events up to its end (the roll-ups hold only the present), which costs
a full reduction per day. A day is closed `CLOSED_AFTER` its end: from then on its sums are stored in
`results_days` under the metric's signature (its definition and the pre-exposure window, so editing
a metric recomputes its days) and read back instead of recomputed. Events that arrive later still
than that, with a timestamp in a closed day, show in today's point and the results, not in the
stored history.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import orjson

from flagd.experiments.catalog import ResolvedMetric
from flagd.results.model import Reduction
from flagd.results.sql.codec import decode, encode
from flagd.results.sql.quantile import QuantileQuery, reduce_quantile
from flagd.results.sql.reduce import reduce_metric
from flagd.results.sql.retention import reduce_retention_raw
from flagd.storage.types import Connection

CLOSED_AFTER = timedelta(hours=1)


def signature(metric: ResolvedMetric, pre_seconds: int) -> str:
    """The metric's definition (with a ratio's parts) and the pre-exposure window, hashed."""
    parts = [metric.metric, *metric.parts] if metric.metric.type == "ratio" else [metric.metric]
    return hashlib.sha256(orjson.dumps([parts, pre_seconds])).hexdigest()[:32]


def day_end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


async def day_reductions(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: ResolvedMetric,
    days: Sequence[date],
    *,
    now: datetime,
    pre_seconds: int,
    budget_seconds: float | None = None,
) -> dict[date, Reduction]:
    """Each day's sums as of its end (or `now`, for a day not over): stored ones read back, others
    computed from the events (the latest first), and stored when closed. With a budget, computing stops
    once it is spent (after at least one day): the days left out are missing from the answer."""
    key = signature(metric, pre_seconds)
    rows = await conn.fetch(
        "SELECT day, sums::text AS sums FROM results_days "
        "WHERE experiment = $1 AND phase = $2 AND signature = $3 AND day = ANY($4::date[])",
        experiment,
        phase,
        key,
        list(days),
    )
    found = {r["day"]: decode(metric.key, r["sums"]) for r in rows}
    started = time.monotonic()
    computed = 0
    for day in sorted(days, reverse=True):
        if day in found:
            continue
        if budget_seconds is not None and computed and time.monotonic() - started > budget_seconds:
            break
        computed += 1
        end = day_end(day)
        reduction = await _reduce_day(conn, experiment, phase, metric, min(end, now), pre_seconds)
        if end + CLOSED_AFTER <= now:
            await conn.execute(
                "INSERT INTO results_days (experiment, phase, signature, day, sums) VALUES ($1, $2, $3, $4, $5::text::jsonb) "
                "ON CONFLICT DO NOTHING",
                experiment,
                phase,
                key,
                day,
                encode(reduction),
            )
        found[day] = reduction
    return found


async def _reduce_day(
    conn: Connection, experiment: str, phase: int, metric: ResolvedMetric, end: datetime, pre_seconds: int
) -> Reduction:
    """The metric's sums as of `end`, from the raw events."""
    if metric.metric.type == "quantile":
        reductions = await reduce_quantile(
            conn, experiment, phase, QuantileQuery(metric.metric, end=end), None
        )
        return reductions.get("", Reduction(metric.key, {}))
    if metric.metric.type == "retention":
        as_of = await reduce_retention_raw(conn, experiment, phase, metric.metric, end=end)
        return as_of.get("", Reduction(metric.key, {}))
    return await reduce_metric(conn, experiment, phase, metric, end=end, pre_seconds=pre_seconds)
