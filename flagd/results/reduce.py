"""Events to sufficient statistics per variant, inside PostgreSQL: raw events never come to Python.

For one metric of one experiment phase, the query

1. takes the phase's exposed units (their first assignment), leaving out units seen in more than one
   variant (they are counted separately, as a health problem);
2. reads, per unit, the metric's events from its first exposure to the end of the metric's window (or
   the analysis end), and for CUPED the same event in the `pre_seconds` before its exposure;
3. turns them into the unit's value `y`, its denominator `d` (1, except for ratio, mean and survey
   metrics) and its pre-exposure value `x`, per the metric's type:

       conversion  y = 1 if any event                     d = 1
       count       y = number of events                   d = 1
       sum         y = sum of values                      d = 1
       mean        y = sum of values                      d = number of events        (a ratio)
       ratio       y = numerator metric's y               d = denominator metric's y  (a ratio)
       nps         y = +1 promoter (last answer 9-10), -1 detractor (0-6), 0 passive  d = 1 if answered
       csat        y = 1 if the last answer is 4 or 5     d = 1 if answered
       ces         y = the last answer                    d = 1 if answered

4. caps y where the metric says so (at a percentile of the units' non-zero values, pooled over the
   variants, or at a fixed value), and
5. sums n, y, y^2, d, d^2, y*d, x, x^2, x*y per variant: every field adds across days and strata.

The windows use the event's own timestamp; `events_name_unit` (name, unit, occurred_at) serves step 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flagd.experiments.model import Metric
from flagd.storage.types import Connection

RATIO_TYPES = frozenset({"mean", "ratio", "nps", "csat", "ces"})
SURVEY_TYPES = frozenset({"nps", "csat", "ces"})


@dataclass(frozen=True, slots=True)
class VariantSums:
    variant: str
    n: int
    y: float
    y2: float
    d: float
    d2: float
    yd: float
    x: float
    x2: float
    xy: float


@dataclass(frozen=True, slots=True)
class Reduction:
    metric: str
    variants: dict[str, VariantSums]
    cap: float | None
    """The cap applied to per-unit values (None: not winsorised)."""


# Per-unit aggregates of one event name over the post and pre windows.
_PER_UNIT = """
SELECT u.variant, u.unit, u.segment,
       count(*) FILTER (WHERE e.occurred_at >= u.exposed_at)::float8 AS post_count,
       coalesce(sum(e.value) FILTER (WHERE e.occurred_at >= u.exposed_at), 0) AS post_sum,
       (array_agg(e.value ORDER BY e.occurred_at DESC)
            FILTER (WHERE e.occurred_at >= u.exposed_at AND e.value IS NOT NULL))[1] AS post_last,
       count(*) FILTER (WHERE e.occurred_at < u.exposed_at)::float8 AS pre_count,
       coalesce(sum(e.value) FILTER (WHERE e.occurred_at < u.exposed_at), 0) AS pre_sum
FROM units u
LEFT JOIN events e
       ON e.name = {name} AND e.unit = u.unit
      AND e.occurred_at >= u.exposed_at - make_interval(secs => $4)
      AND e.occurred_at < least(u.exposed_at + make_interval(secs => coalesce({window}, 1e9)), $3)
GROUP BY u.variant, u.unit, u.segment
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

_REDUCE = """
WITH {units},
a AS ({per_unit_a}),
b AS ({per_unit_b}),
values AS (
    SELECT a.variant, a.segment, {y} AS y, {d} AS d, {x} AS x
    FROM a {join_b}
),
cap AS (
    SELECT coalesce($6::float8,
                    (SELECT percentile_cont($5::float8) WITHIN GROUP (ORDER BY y) FROM values WHERE y <> 0)
           ) AS value
),
capped AS (
    SELECT variant, segment, CASE WHEN cap.value IS NULL OR ($5::float8 IS NULL AND $6::float8 IS NULL) THEN y
                         ELSE least(y, cap.value) END AS y, d, x
    FROM values, cap
)
SELECT segment, variant, count(*) AS n, sum(y) AS y, sum(y * y) AS y2, sum(d) AS d, sum(d * d) AS d2,
       sum(y * d) AS yd, sum(x) AS x, sum(x * x) AS x2, sum(x * y) AS xy,
       (SELECT value FROM cap) AS cap
FROM capped GROUP BY segment, variant
"""


# The phase's units; with a segment attribute, the MAX_SEGMENTS largest values and "(other)" for the rest,
# so no attribute (a user id by mistake, say) can return more than that many groups.
_UNITS = """units AS (
    SELECT unit, variant, exposed_at, '' AS segment FROM exposures
    WHERE experiment = $1 AND phase = $2 AND NOT multiple_variants AND exposed_at < $3
)"""
_SEGMENTED_UNITS = """exposed AS (
    SELECT unit, variant, exposed_at, coalesce(attributes ->> {attribute}, '{none}') AS segment FROM exposures
    WHERE experiment = $1 AND phase = $2 AND NOT multiple_variants AND exposed_at < $3
),
top AS (SELECT segment FROM exposed GROUP BY segment ORDER BY count(*) DESC, segment LIMIT {limit}),
units AS (
    SELECT unit, variant, exposed_at,
           CASE WHEN segment IN (SELECT segment FROM top) THEN segment ELSE '{other}' END AS segment
    FROM exposed
)"""
MAX_SEGMENTS = 20
OTHER = "(other)"


def _per_unit(name_param: str, window_param: str) -> str:
    return _PER_UNIT.format(name=name_param, window=window_param)


async def reduce_metric(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: Metric,
    metrics: dict[str, Metric],
    *,
    end: datetime,
    pre_seconds: float,
) -> Reduction:
    """The per-variant sums of `metric` for the phase's units, as of `end`."""
    reductions = await reduce_metric_by(
        conn, experiment, phase, metric, metrics, end=end, pre_seconds=pre_seconds, attribute=None
    )
    return reductions.get("", Reduction(metric.key, {}, None))


NO_VALUE = "(none)"
"""The segment of units whose exposure did not carry the attribute."""


async def reduce_metric_by(
    conn: Connection,
    experiment: str,
    phase: int,
    metric: Metric,
    metrics: dict[str, Metric],
    *,
    end: datetime,
    pre_seconds: float,
    attribute: str | None,
) -> dict[str, Reduction]:
    """Per value of an exposure attribute (the unit's first exposure's), the per-variant sums of `metric`:
    the MAX_SEGMENTS values with the most units, the others together as OTHER.

    The cap of a winsorised metric is computed over all units, so every segment is capped alike."""
    if metric.type == "ratio":
        numerator = metrics[str(metric.numerator)]
        denominator = metrics[str(metric.denominator)]
        y_expr = _VALUE[numerator.type][0]
        d_expr = _VALUE[denominator.type][0].replace("a.", "b.")
        sources = (numerator, denominator)
        x_expr = "0.0"
    else:
        y_expr, d_expr, x_expr = _VALUE[metric.type]
        sources = (metric, metric)
    both = sources[0] is not sources[1]
    units = (
        _UNITS
        if attribute is None
        else _SEGMENTED_UNITS.format(
            attribute=f"${11 if both else 9}", none=NO_VALUE, limit=MAX_SEGMENTS, other=OTHER
        )
    )
    sql = _REDUCE.format(
        units=units,
        per_unit_a=_per_unit("$7", "$8::float8"),
        per_unit_b=_per_unit("$9", "$10::float8") if both else "SELECT NULL::text AS unit",
        y=y_expr,
        d=d_expr,
        x=x_expr,
        join_b="JOIN b ON b.unit = a.unit" if both else "",
    )
    winsor = metric.winsorisation
    percentile = winsor.percentile / 100 if winsor is not None and winsor.percentile is not None else None
    fixed = winsor.value if winsor is not None else None
    args: list[object] = [
        experiment,
        phase,
        end,
        float(pre_seconds),
        percentile,
        fixed,
        sources[0].event,
        None if sources[0].window_seconds is None else float(sources[0].window_seconds),
    ]
    if both:
        args += [
            sources[1].event,
            None if sources[1].window_seconds is None else float(sources[1].window_seconds),
        ]
    if attribute is not None:
        args.append(attribute)
    rows = await conn.fetch(sql, *args)
    capped = percentile is not None or fixed is not None
    by_segment: dict[str, dict[str, VariantSums]] = {}
    caps: dict[str, float | None] = {}
    for row in rows:
        by_segment.setdefault(row["segment"], {})[row["variant"]] = VariantSums(
            row["variant"],
            int(row["n"]),
            *(float(row[f] or 0.0) for f in ("y", "y2", "d", "d2", "yd", "x", "x2", "xy")),
        )
        caps[row["segment"]] = float(row["cap"]) if capped and row["cap"] is not None else None
    return {name: Reduction(metric.key, variants, caps[name]) for name, variants in by_segment.items()}


@dataclass(frozen=True, slots=True)
class ExposureTally:
    units: dict[str, int]
    """Units per variant (first assignment), units seen in several variants left out."""
    multiple: int
    """Units seen in more than one variant."""
    daily: dict[date, int]
    """Units first exposed per day (UTC), every unit counted."""


async def exposure_tally(conn: Connection, experiment: str, phase: int, end: datetime) -> ExposureTally:
    """The phase's exposed units before `end`, per variant and per day, from one scan of its exposures."""
    rows = await conn.fetch(
        "SELECT (exposed_at AT TIME ZONE 'UTC')::date AS day, variant, multiple_variants, count(*) AS n "
        "FROM exposures WHERE experiment = $1 AND phase = $2 AND exposed_at < $3 GROUP BY 1, 2, 3",
        experiment,
        phase,
        end,
    )
    units: dict[str, int] = {}
    daily: dict[date, int] = {}
    multiple = 0
    for row in rows:
        count = int(row["n"])
        daily[row["day"]] = daily.get(row["day"], 0) + count
        if row["multiple_variants"]:
            multiple += count
        else:
            units[row["variant"]] = units.get(row["variant"], 0) + count
    return ExposureTally(units, multiple, dict(sorted(daily.items())))
