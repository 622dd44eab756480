"""Events to sufficient statistics per variant, inside PostgreSQL: raw events never come to Python.

For one metric of one experiment phase, the query

1. takes the phase's exposed units (their first assignment), leaving out units seen in more than one
   variant (they are counted separately, as a health problem);
2. reads, per unit, the metric's events that pass its filter (`where`, flagd.results.sql.filters)
   from its first exposure to the end of the metric's window (or the analysis end), and for CUPED
   the same events in the `pre_seconds` before its exposure;
3. turns them into the unit's value `y`, its denominator `d` (1, except for ratio, mean and survey
   metrics) and its pre-exposure value `x`, per the metric's type (an event's value is its `value`,
   or the metric's `value_property`):

       conversion  y = 1 if any event                     d = 1
       count       y = number of events                   d = 1
       sum         y = sum of values                      d = 1
       mean        y = sum of values                      d = number of events        (a ratio)
       ratio       y = numerator metric's y               d = denominator metric's y  (a ratio)
       nps         y = +1 promoter (last answer 9-10), -1 detractor (0-6), 0 passive  d = 1 if answered
       csat        y = 1 if the last answer is 4 or 5     d = 1 if answered
       ces         y = the last answer                    d = 1 if answered
       funnel      y = 1 if it completed step decide_on   d = 1   (flagd.results.sql.funnels: the steps
                   completed in order, kept as post_count; the units reaching each step come out too)

4. caps y where the metric says so (at a percentile of the units' non-zero values, pooled over the
   variants, or at a fixed value), and
5. sums n, y, y^2, d, d^2, y*d, x, x^2, x*y per variant: every field adds across days and strata.

The windows use the event's own timestamp; `events_name_unit` (name, unit, occurred_at) serves step 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from flagd.experiments.catalog import ResolvedMetric
from flagd.experiments.model import Metric
from flagd.results.model import Reduction, VariantSums
from flagd.results.sql.filters import filter_sql, value_sql
from flagd.results.sql.funnels import UNIT_COLUMNS as FUNNEL_COLUMNS
from flagd.results.sql.funnels import reached_counts, reached_sql, step_ctes
from flagd.storage.types import Connection

_UNIT_AGGREGATES = """
       count(*) FILTER (WHERE e.occurred_at >= u.exposed_at)::float8 AS post_count,
       coalesce(sum({value}) FILTER (WHERE e.occurred_at >= u.exposed_at), 0) AS post_sum,
       (array_agg({value} ORDER BY e.occurred_at DESC, {value} DESC)
            FILTER (WHERE e.occurred_at >= u.exposed_at AND {value} IS NOT NULL))[1] AS post_last,
       count(*) FILTER (WHERE e.occurred_at < u.exposed_at)::float8 AS pre_count,
       coalesce(sum({value}) FILTER (WHERE e.occurred_at < u.exposed_at), 0) AS pre_sum"""


def unit_aggregates(value: str) -> str:
    """What a unit did, from its events `e` joined to its exposure `u`: the count, sum and last `value`
    after exposure, the count and sum before it (the columns of a roll-up row, flagd.results.rollup)."""
    return _UNIT_AGGREGATES.format(value=value)


_UNIT_VALUES = """       array_agg({value} ORDER BY {value})
            FILTER (WHERE e.occurred_at >= u.exposed_at AND {value} IS NOT NULL) AS post_values"""


def unit_values(value: str) -> str:
    """The `value`s of a unit's events after exposure, sorted (for event-level quantiles,
    flagd.results.sql.quantile)."""
    return _UNIT_VALUES.format(value=value)


# Per-unit aggregates of one event name over the post and pre windows.
_PER_UNIT = """
SELECT u.variant, u.unit, u.segment, {aggregates}
FROM units u
LEFT JOIN events e
       ON e.name = {name} AND e.unit = u.unit
      AND e.occurred_at >= u.exposed_at - make_interval(secs => {pre})
      AND e.occurred_at < least(u.exposed_at + make_interval(secs => coalesce({window}, 1e9)), $3)
      AND {where}
GROUP BY u.variant, u.unit, u.segment
"""

# A funnel's per-unit row: the number of steps completed in order, as its post_count.
_FUNNEL_PER_UNIT = """
WITH {steps}
SELECT r.variant, r.unit, r.segment, r.post_count, {columns} FROM ({reached}) r
"""

_VALUE = {
    "conversion": ("(a.post_count > 0)::int::float8", "1.0", "(a.pre_count > 0)::int::float8"),
    "count": ("a.post_count", "1.0", "a.pre_count"),
    "sum": ("a.post_sum", "1.0", "a.pre_sum"),
    "mean": ("a.post_sum", "a.post_count", "0.0"),
    "nps": (
        "CASE WHEN a.post_last >= 9 THEN 1.0 WHEN a.post_last <= 6 THEN -1.0 ELSE 0.0 END",
        "(a.post_last IS NOT NULL)::int::float8",
        "0.0",
    ),
    "csat": ("(a.post_last >= 4)::int::float8", "(a.post_last IS NOT NULL)::int::float8", "0.0"),
    "ces": ("coalesce(a.post_last, 0)", "(a.post_last IS NOT NULL)::int::float8", "0.0"),
}

# Steps 4 and 5 over `values` (segment, variant, y, d, x): the cap, then the sums.
_CAP_AND_SUM = """
cap AS (
    SELECT coalesce({fixed}::float8,
                    (SELECT percentile_cont({percentile}::float8) WITHIN GROUP (ORDER BY y) FROM values WHERE y <> 0)
           ) AS value
),
capped AS (
    SELECT variant, segment,
           CASE WHEN cap.value IS NULL OR ({percentile}::float8 IS NULL AND {fixed}::float8 IS NULL) THEN y
                ELSE least(y, cap.value) END AS y, d, x, r
    FROM values, cap
)
SELECT segment, variant, count(*) AS n, sum(y) AS y, sum(y * y) AS y2, sum(d) AS d, sum(d * d) AS d2,
       sum(y * d) AS yd, sum(x) AS x, sum(x * x) AS x2, sum(x * y) AS xy,
       (SELECT value FROM cap) AS cap, {reached} AS reached
FROM capped GROUP BY segment, variant
"""

# From raw events, as of an end ($3): every unit of the phase gets a row.
_REDUCE = """
WITH {units},
a AS ({per_unit_a}),
b AS ({per_unit_b}),
values AS (
    SELECT a.variant, a.segment, {y} AS y, {d} AS d, {x} AS x, a.post_count AS r
    FROM a {join_b}
),
{cap_and_sum}"""

# From the roll-ups, as of their last catch-up: only units with events have a row, the others are
# added from the population (y = 0, x = 0, d = the metric's d for no events).
_ROLLED = """
WITH {units}
a AS (SELECT * FROM results_unit_values WHERE experiment = $1 AND phase = $2 AND source = $5),
b AS (SELECT * FROM results_unit_values WHERE experiment = $1 AND phase = $2 AND source = {source_b}),
values AS (
    SELECT {variant} AS variant, {segment} AS segment,
           coalesce({y}, 0) AS y, coalesce({d}, 0) AS d, coalesce({x}, 0) AS x, coalesce(a.post_count, 0) AS r
    FROM a {join_b} {join_units}
),
{cap_and_sum}"""


# The phase's units; with a segment attribute, the MAX_SEGMENTS largest values and "(other)" for the rest,
# so no attribute (a user id by mistake, say) can return more than that many groups.
UNITS = """units AS (
    SELECT unit, variant, exposed_at, '' AS segment FROM exposures
    WHERE experiment = $1 AND phase = $2 AND NOT multiple_variants AND exposed_at < $3
)"""
_SEGMENTED_UNITS = """exposed AS (
    SELECT unit, variant, exposed_at, coalesce(attributes ->> {attribute}, '{none}') AS segment FROM exposures
    WHERE experiment = $1 AND phase = $2 AND NOT multiple_variants {before}
),
top AS (SELECT segment FROM exposed GROUP BY segment ORDER BY count(*) DESC, segment LIMIT {limit}),
units AS (
    SELECT unit, variant, exposed_at,
           CASE WHEN segment IN (SELECT segment FROM top) THEN segment ELSE '{other}' END AS segment
    FROM exposed
)"""
MAX_SEGMENTS = 20
REDUCTION_WORK_MEM = "64MB"
"""PostgreSQL's work_mem for a reduction from the roll-ups (measured: 4 MB spills to disk at 100,000 units)."""
OTHER = "(other)"
NO_VALUE = "(none)"
"""The segment of units whose exposure did not carry the attribute."""


def _per_unit(source: Metric, pre_seconds: float, args: list[object]) -> str:
    """The per-unit aggregates of the source metric's events, its parameters appended to `args`."""
    if source.type == "funnel":
        carry = ("variant", "segment")
        steps = step_ctes(source.steps, source.window_seconds, "units", carry, "$3", args)
        reached = reached_sql(len(source.steps), carry, "units")
        return _FUNNEL_PER_UNIT.format(steps=steps, reached=reached, columns=FUNNEL_COLUMNS)
    args += [
        source.event,
        None if source.window_seconds is None else float(source.window_seconds),
        pre_seconds,
    ]
    name, window, pre = f"${len(args) - 2}", f"${len(args) - 1}::float8", f"${len(args)}::float8"
    where = filter_sql(source.where, "e", args)
    value = value_sql(source.value_property, "e", args)
    return _PER_UNIT.format(name=name, window=window, pre=pre, where=where, aggregates=unit_aggregates(value))


def segmented_units(attribute_param: str, before: str) -> str:
    return _SEGMENTED_UNITS.format(
        attribute=attribute_param, none=NO_VALUE, limit=MAX_SEGMENTS, other=OTHER, before=before
    )


@dataclass(frozen=True, slots=True)
class MetricExpressions:
    y: str
    d: str
    x: str
    sources: tuple[Metric, Metric]

    @property
    def both(self) -> bool:
        return self.sources[0] is not self.sources[1]

    @property
    def reached(self) -> str:
        """A funnel's units reaching each step, per variant (NULL for other metrics)."""
        steps = self.sources[0].steps
        return reached_counts(len(steps)) if steps else "NULL::int8[]"

    @property
    def d_without_events(self) -> float:
        """A unit's d when it had no event: 1 for per-unit totals, 0 for ratios and surveys."""
        return 1.0 if self.d == "1.0" else 0.0


def metric_expressions(resolved: ResolvedMetric) -> MetricExpressions:
    metric = resolved.metric
    if metric.type == "ratio":
        numerator, denominator = resolved.parts
        return MetricExpressions(
            _VALUE[numerator.type][0],
            _VALUE[denominator.type][0].replace("a.", "b."),
            "0.0",
            (numerator, denominator),
        )
    if metric.type == "funnel":  # the decided step's conversion from exposure
        return MetricExpressions(
            f"(a.post_count >= {int(metric.decide_on or 0)})::int::float8", "1.0", "0.0", (metric, metric)
        )
    y, d, x = _VALUE[metric.type]
    return MetricExpressions(y, d, x, (metric, metric))


def _cap_and_sum(percentile: float | None, fixed: float | None, reached: str) -> str:
    """Steps 4 and 5 of a reduction from the roll-ups ($3 the percentile, $4 the fixed cap)."""
    return _CAP_AND_SUM.format(fixed="$4", percentile="$3", reached=reached)


def _winsor(metric: Metric) -> tuple[float | None, float | None]:
    winsor = metric.winsorisation
    percentile = winsor.percentile / 100 if winsor is not None and winsor.percentile is not None else None
    return percentile, (winsor.value if winsor is not None else None)


def _reductions(metric: Metric, rows: Sequence[asyncpg.Record]) -> dict[str, Reduction]:
    capped = metric.winsorisation is not None
    by_segment: dict[str, dict[str, VariantSums]] = {}
    caps: dict[str, float | None] = {}
    reached: dict[str, dict[str, tuple[int, ...]]] = {}
    for row in rows:
        if row["reached"] is not None:
            reached.setdefault(row["segment"], {})[row["variant"]] = tuple(int(c) for c in row["reached"])
        by_segment.setdefault(row["segment"], {})[row["variant"]] = VariantSums(
            int(row["n"]),
            *(float(row[f] or 0.0) for f in ("y", "y2", "d", "d2", "yd", "x", "x2", "xy")),
        )
        caps[row["segment"]] = float(row["cap"]) if capped and row["cap"] is not None else None
    return {
        name: Reduction(metric.key, variants, caps[name], reached=reached.get(name) if metric.steps else None)
        for name, variants in by_segment.items()
    }


async def reduce_metric(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: ResolvedMetric,
    *,
    end: datetime,
    pre_seconds: float,
) -> Reduction:
    """The per-variant sums of `metric` for the phase's units, as of `end`, from the raw events."""
    reductions = await reduce_metric_by(
        conn, experiment, phase, metric, end=end, pre_seconds=pre_seconds, attribute=None
    )
    return reductions.get("", Reduction(metric.key, {}, None))


async def reduce_metric_by(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: ResolvedMetric,
    *,
    end: datetime,
    pre_seconds: float,
    attribute: str | None,
) -> dict[str, Reduction]:
    """Per value of an exposure attribute (the unit's first exposure's), the per-variant sums of `metric`
    as of `end`, from the raw events: the MAX_SEGMENTS values with the most units, the others together
    as OTHER.

    The cap of a winsorised metric is computed over all units, so every segment is capped alike."""
    e = metric_expressions(metric)
    args: list[object] = [experiment, phase, end, *_winsor(metric.metric)]
    per_unit_a = _per_unit(e.sources[0], float(pre_seconds), args)
    per_unit_b = _per_unit(e.sources[1], float(pre_seconds), args) if e.both else "SELECT NULL::text AS unit"
    if attribute is not None:
        args.append(attribute)
    units = UNITS if attribute is None else segmented_units(f"${len(args)}", "AND exposed_at < $3")
    sql = _REDUCE.format(
        units=units,
        per_unit_a=per_unit_a,
        per_unit_b=per_unit_b,
        y=e.y,
        d=e.d,
        x=e.x,
        join_b="JOIN b ON b.unit = a.unit" if e.both else "",
        cap_and_sum=_CAP_AND_SUM.format(fixed="$5", percentile="$4", reached=e.reached),
    )
    return _reductions(metric.metric, await conn.fetch(sql, *args))


async def reduce_rolled_by(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: ResolvedMetric,
    sources: tuple[str, ...],
    *,
    attribute: str | None,
    population: dict[str, dict[str, int]] | None = None,
) -> dict[str, Reduction]:
    """Like `reduce_metric_by`, from the metric's roll-ups (`sources`: their keys, caught up by the
    caller) as of their last catch-up. `population`, units per segment and variant, is read from the
    exposures unless given."""
    rolled = await rolled_sums(conn, experiment, phase, metric, sources, attribute=attribute)
    if population is None:
        population = await segment_population(conn, experiment, phase, attribute)
    return {segment: fill(metric, rolled.get(segment), counts) for segment, counts in population.items()}


async def rolled_sums(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: ResolvedMetric,
    sources: tuple[str, ...],
    *,
    attribute: str | None,
) -> dict[str, Reduction]:
    """Per segment, the sums of the units that have a roll-up row (`fill` adds the others)."""
    e = metric_expressions(metric)
    segmented = attribute is not None
    attribute_param = f"${7 if e.both else 6}"
    percentile, fixed = _winsor(metric.metric)
    sql = _ROLLED.format(
        units=segmented_units(attribute_param, "") + "," if segmented else "",
        source_b="$6" if e.both else "NULL",
        variant="coalesce(a.variant, b.variant)" if e.both else "a.variant",
        segment="u.segment" if segmented else "''",
        y=e.y,
        d=e.d,
        x=e.x,
        join_b="FULL JOIN b ON b.unit = a.unit" if e.both else "",
        join_units="JOIN units u ON u.unit = " + ("coalesce(a.unit, b.unit)" if e.both else "a.unit")
        if segmented
        else "",
        cap_and_sum=_cap_and_sum(percentile, fixed, e.reached),
    )
    args: list[object] = [experiment, phase, percentile, fixed, *sources[: 2 if e.both else 1]]
    if segmented:
        args.append(attribute)
    async with conn.transaction():
        # A winsorised metric sorts every unit's value, and a ratio joins two roll-ups by unit: in memory.
        await conn.execute(f"SET LOCAL work_mem = '{REDUCTION_WORK_MEM}'")
        rows = await conn.fetch(sql, *args)
    return _reductions(metric.metric, rows)


def fill(metric: ResolvedMetric, rolled: Reduction | None, counts: dict[str, int]) -> Reduction:
    """The roll-up's sums of one segment with its units that had no event added (`counts`: its units per
    variant)."""
    return _fill(metric.metric, rolled, counts, metric_expressions(metric).d_without_events)


_POPULATION = "WITH {units} SELECT segment, variant, count(*) AS n FROM units GROUP BY 1, 2"


async def segment_population(
    conn: Connection, experiment: str, phase: int, attribute: str | None
) -> dict[str, dict[str, int]]:
    """Units per segment (one, "", without an attribute) and variant, units in several variants left out."""
    units = UNITS.replace(" AND exposed_at < $3", "") if attribute is None else segmented_units("$3", "")
    rows = await conn.fetch(
        _POPULATION.format(units=units),
        experiment,
        phase,
        *([] if attribute is None else [attribute]),
    )
    population: dict[str, dict[str, int]] = {}
    for row in rows:
        population.setdefault(row["segment"], {})[row["variant"]] = int(row["n"])
    return population


def _fill(metric: Metric, rolled: Reduction | None, counts: dict[str, int], d0: float) -> Reduction:
    """The roll-up's sums with the units that had no event added: y = x = 0 and d = d0 each (and none of
    a funnel's steps reached)."""
    variants = {}
    for variant, n in counts.items():
        sums = rolled.sums(variant) if rolled is not None else VariantSums()
        variants[variant] = sums.with_units_without_events(max(n - sums.n, 0), d0)
    reached = None
    if metric.steps:
        known = rolled.reached if rolled is not None and rolled.reached is not None else {}
        reached = {v: known.get(v, (0,) * len(metric.steps)) for v in counts}
    return Reduction(metric.key, variants, rolled.cap if rolled is not None else None, reached=reached)
