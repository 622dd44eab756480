"""A journey's funnel inside PostgreSQL: raw events never come to Python, only a row per segment and step.

The query (steps k = 1..n, the window w, the range [$1, $2)):

1. `first`: per unit, its first step-1 event in the range (t1) and its raw segment (without a breakdown,
   `s1` is this, and 2 is left out);
2. `top`: the MAX_SEGMENTS largest segments; `s1` maps the others to "(other)";
3. `s2` .. `sn`: per unit still in the funnel, the earliest step-k event at or after its step k-1 (prev)
   and before t1 + w (a hash join of the units against one name's events, so each step reads its
   events once, nested loops being turned off; the constant bounds on occurred_at let PostgreSQL skip the
   other days' partitions);
4. per step, the units and the median and p90 of (t - prev) in seconds (percentile_cont, linear
   interpolation between the closest ranks), per segment and over every unit (GROUPING SETS).

A statement timeout bounds it; a query cancelled by it is a 503 `results_timeout` that says what to narrow.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg

from flagd.errors import ServiceUnavailable
from flagd.results.journey import MAX_SEGMENTS, JourneyQuery, StepRow
from flagd.results.sql.filters import filter_sql
from flagd.storage.types import Connection

OTHER = "(other)"
NO_VALUE = "(none)"
WORK_MEM = "64MB"

_FIRST = """first AS (
    SELECT DISTINCT ON (e.unit) e.unit, e.occurred_at AS t1, {segment} AS segment
    FROM events e {join}
    WHERE e.name = $4 AND e.occurred_at >= $1 AND e.occurred_at < $2 AND {where}
    ORDER BY e.unit, e.occurred_at, e.event_id
)"""
# Without a breakdown, step 1 directly (no segments to rank).
_FIRST_PLAIN = """s1 AS (
    SELECT e.unit, '' AS segment, min(e.occurred_at) AS t1, NULL::timestamptz AS prev, min(e.occurred_at) AS t
    FROM events e WHERE e.name = $4 AND e.occurred_at >= $1 AND e.occurred_at < $2 AND {where}
    GROUP BY e.unit
)"""
# The unit's first exposure to the experiment ($5), over every phase.
_EXPOSURE_JOIN = """LEFT JOIN (
        SELECT DISTINCT ON (unit) unit, {value} AS value FROM exposures
        WHERE experiment = $5 ORDER BY unit, exposed_at
    ) x ON x.unit = e.unit"""
_TOP = """top AS (SELECT segment FROM first GROUP BY segment ORDER BY count(*) DESC, segment LIMIT {limit}),
s1 AS (
    SELECT unit, CASE WHEN segment IN (SELECT segment FROM top) THEN segment ELSE '{other}' END AS segment,
           t1, NULL::timestamptz AS prev, t1 AS t
    FROM first
)"""
# A unit is one row of s{previous}: grouping by it alone, the other columns are its own (any_value).
_STEP = """s{k} AS (
    SELECT p.unit, any_value(p.segment) AS segment, any_value(p.t1) AS t1, any_value(p.t) AS prev,
           min(e.occurred_at) AS t
    FROM s{previous} p JOIN events e
      ON e.name = ${name} AND e.unit = p.unit AND e.occurred_at >= p.t AND e.occurred_at < p.t1 + $3
     AND e.occurred_at >= $1 AND e.occurred_at < $2 + $3 AND {where}
    GROUP BY p.unit
)"""
# Per step: the units, and the median and p90 of the seconds since the step before.
_COUNT = """SELECT {k} AS step, {segment} AS segment, {everyone} AS everyone, count(*) AS units,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY date_part('epoch', t - prev)) AS gaps
FROM s{k} {group}"""
_SEGMENTED = {
    "segment": "segment",
    "everyone": "GROUPING(segment) = 1",
    "group": "GROUP BY GROUPING SETS ((segment), ())",
}
_PLAIN = {"segment": "NULL::text", "everyone": "true", "group": ""}
_DISTINCT = "SELECT 0, NULL::text, true, (SELECT count(DISTINCT segment) FROM first), NULL::float8[]"


def funnel_sql(query: JourneyQuery) -> tuple[str, list[object]]:
    """The statement and its parameters: $1 start, $2 end, $3 window, $4 step 1, then the breakdown's and
    step 1's filter's, then each later step's name and its filter's (flagd.results.sql.filters: operands are
    parameters, never text)."""
    start = datetime.combine(query.first_day, time(), UTC)
    end = datetime.combine(query.last_day, time(), UTC) + timedelta(days=1)
    params: list[object] = [start, end, timedelta(seconds=query.window_seconds), query.steps[0]]
    breakdown = query.breakdown
    if breakdown is None:
        first = _FIRST_PLAIN.format(where=filter_sql(query.filter_of(1), "e", params))
    elif breakdown.source == "property":
        params.append(breakdown.name)
        first = _FIRST.format(
            segment=f"coalesce(e.properties ->> $5, '{NO_VALUE}')",
            join="",
            where=filter_sql(query.filter_of(1), "e", params),
        )
    else:
        params.append(breakdown.experiment)
        value = "variant" if breakdown.source == "variant" else "attributes ->> $6"
        if breakdown.source == "exposure":
            params.append(breakdown.name)
        first = _FIRST.format(
            segment=f"coalesce(x.value, '{NO_VALUE}')",
            join=_EXPOSURE_JOIN.format(value=value),
            where=filter_sql(query.filter_of(1), "e", params),
        )
    steps = []
    for k, name in enumerate(query.steps[1:], start=2):
        params.append(name)
        number = len(params)
        where = filter_sql(query.filter_of(k), "e", params)
        steps.append(_STEP.format(k=k, previous=k - 1, name=number, where=where))
    grouping = _PLAIN if breakdown is None else _SEGMENTED
    counts = [_COUNT.format(k=k, **grouping) for k in range(1, len(query.steps) + 1)]
    if breakdown is None:
        ctes, selects = [first, *steps], counts
    else:
        ctes, selects = [first, _TOP.format(limit=MAX_SEGMENTS, other=OTHER), *steps], [*counts, _DISTINCT]
    sql = "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(selects)
    return sql, params


async def read_funnel(
    conn: Connection, query: JourneyQuery, timeout_seconds: float
) -> tuple[list[StepRow], int]:
    """The funnel's rows and the number of distinct segment values, within `timeout_seconds`."""
    sql, params = funnel_sql(query)
    try:
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_seconds * 1000)}")
            await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            # The steps' row counts are unknown to the planner (CTEs), and an underestimate turns a step's join
            # into one index probe per unit and partition: 38 s instead of 4 at a million units (EXPLAIN).
            await conn.execute("SET LOCAL enable_nestloop = off")
            records = await conn.fetch(sql, *params)
    except asyncpg.QueryCanceledError as exc:
        raise ServiceUnavailable(
            f"the journey took longer than {timeout_seconds:g} s to compute; narrow the date range, use fewer "
            "steps or a shorter window, or leave the breakdown out",
            code="results_timeout",
        ) from exc
    rows, distinct = [], 0
    for record in records:
        if record["step"] == 0:
            distinct = int(record["units"] or 0)
            continue
        gaps = record["gaps"]
        rows.append(
            StepRow(
                step=record["step"],
                segment=None if record["everyone"] else record["segment"],
                units=record["units"],
                median_seconds=gaps[0] if gaps else None,
                p90_seconds=gaps[1] if gaps else None,
            )
        )
    return rows, distinct
