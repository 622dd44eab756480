"""A quantile metric's per-variant quantiles, inside PostgreSQL: exact, and no value comes to Python.

Each unit contributes a sorted array of values: at the unit level one value, the sum of its events'
values (0 for a unit without any, as for a sum metric); at the event level the values of its events
(NULL values left out), kept sorted by the roll-up (flagd.results.sql.rollup, a "values" source). Three
statements per metric, two of them a sort of the values per segment and variant (stats.quantile explains
the statistics):

1. the quantile Q = percentile_disc(p), the k = ceil(p N)-th value;
2. the per-unit counts at or below it (width_bucket's binary search in the unit's sorted array: a_i),
   summed into sum a_i, sum a_i^2, sum N_i^2, sum a_i N_i (no sort);
3. the order statistics at the ranks r1, r2 of the interval of the fraction at or below Q (computed in
   Python by stats from step 2's sums), read by percentile_disc at (r - 1/2) / N, which is the r-th
   value exactly whatever the floating point.

Units come from the phase's exposures, so the counts of units (n) match the other metrics'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flagd.experiments.model import Metric
from flagd.results.model import QuantileSums, Reduction, VariantSums
from flagd.results.sql.filters import filter_sql, value_sql
from flagd.results.sql.reduce import MAX_SEGMENTS, NO_VALUE, OTHER, REDUCTION_WORK_MEM
from flagd.storage.types import Connection
from stats import QuantileSample


class _Params:
    """Positional parameters, numbered as they are added."""

    def __init__(self, *initial: object) -> None:
        self.values: list[object] = list(initial)

    def add(self, value: object, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


# Units of the phase ($1 experiment, $2 phase), with the segment of an attribute (or '').
_UNITS = """units AS (
    SELECT unit, variant, exposed_at, {segment} AS segment FROM exposures
    WHERE experiment = $1 AND phase = $2 AND NOT multiple_variants {before}
)"""
_TOP = """top AS (SELECT segment FROM units GROUP BY segment ORDER BY count(*) DESC, segment LIMIT {limit}),
segmented AS (
    SELECT unit, variant, exposed_at,
           CASE WHEN segment IN (SELECT segment FROM top) THEN segment ELSE '{other}' END AS segment
    FROM units
)"""

# From the roll-up: units with a row; at the unit level the units without one get a 0 (population).
_ROLLED_VALUES = """unit_values AS (
    SELECT {segment} AS segment, r.variant, {values} AS vals
    FROM results_unit_values r {join_units}
    WHERE r.experiment = $1 AND r.phase = $2 AND r.source = {source} {present}
)"""
_ZEROS = """counted AS (SELECT segment, variant, count(*) AS rows FROM unit_values GROUP BY 1, 2),
all_values AS (
    SELECT segment, variant, vals FROM unit_values
    UNION ALL
    SELECT p.segment, p.variant, ARRAY[0.0::float8]
    FROM unnest({segments}, {variants}, {units}) AS p(segment, variant, n)
    LEFT JOIN counted c USING (segment, variant),
    generate_series(1, p.n - coalesce(c.rows, 0))
)"""

# From the raw events, as of an end: every unit of the phase, with or without events.
_RAW_VALUES = """all_values AS (
    SELECT u.segment, u.variant, {values} AS vals
    FROM {units} u
    LEFT JOIN events e
           ON e.name = {event} AND e.unit = u.unit AND e.occurred_at >= u.exposed_at
          AND e.occurred_at < least(u.exposed_at + make_interval(secs => coalesce({window}, 1e9)), {end})
          AND {where}
    GROUP BY u.segment, u.variant, u.unit
)"""

# Each statement reads the values once (a CTE read once is inlined, not materialised: measured 2.7x
# faster at 100,000 units than one statement that reads them twice).
_QUANTILE = """
WITH {values}
SELECT segment, variant, percentile_disc({p}) WITHIN GROUP (ORDER BY v) AS q, count(*) AS n_values
FROM all_values, unnest(vals) AS v GROUP BY segment, variant
"""

_AT_QUANTILE = """
WITH {values},
q AS (SELECT * FROM unnest({segments}, {variants}, {quantiles}) AS q(segment, variant, q)),
per_unit AS (
    SELECT a.segment, a.variant, width_bucket(q.q, a.vals)::float8 AS below, cardinality(a.vals)::float8 AS m
    FROM all_values a JOIN q USING (segment, variant)
)
SELECT segment, variant, sum(below) AS below, sum(below * below) AS below2, sum(m * m) AS values2,
       sum(below * m) AS below_values, count(*) AS n_units
FROM per_unit GROUP BY segment, variant
"""

_AT_RANKS = """
WITH {values},
ranks AS (SELECT * FROM unnest({segments}, {variants}, {low}, {high}) AS r(segment, variant, low, high))
SELECT a.segment, a.variant, percentile_disc(ARRAY[r.low, r.high]) WITHIN GROUP (ORDER BY v) AS bounds
FROM all_values a JOIN ranks r USING (segment, variant), unnest(a.vals) AS v
GROUP BY a.segment, a.variant, r.low, r.high
"""


@dataclass(frozen=True, slots=True)
class QuantileQuery:
    """Where a quantile metric's values come from: the roll-up (source key) or raw events up to an end."""

    metric: Metric
    source: str | None = None
    end: datetime | None = None


def _values_sql(
    query: QuantileQuery, params: _Params, population: dict[str, dict[str, int]], attribute: str | None
) -> str:
    metric = query.metric
    event_level = metric.level == "event"
    segment_expr = (
        "''"
        if attribute is None
        else f"coalesce(attributes ->> {params.add(attribute, 'text')}, '{NO_VALUE}')"
    )
    ctes = []
    if attribute is not None or query.source is None:
        before = "" if query.end is None else f"AND exposed_at < {params.add(query.end, 'timestamptz')}"
        ctes.append(_UNITS.format(segment=segment_expr, before=before))
        if attribute is not None:
            ctes.append(_TOP.format(limit=MAX_SEGMENTS, other=OTHER))
    units = "segmented" if attribute is not None else "units"
    if query.source is not None:
        ctes.append(
            _ROLLED_VALUES.format(
                segment="u.segment" if attribute is not None else "''",
                values="r.post_values" if event_level else "ARRAY[r.post_sum]",
                join_units=f"JOIN {units} u ON u.unit = r.unit" if attribute is not None else "",
                source=params.add(query.source, "text"),
                present="AND r.post_values IS NOT NULL" if event_level else "",
            )
        )
        if event_level:
            ctes.append("all_values AS (SELECT * FROM unit_values)")
        else:
            cells = [(s, v, n) for s, counts in population.items() for v, n in counts.items()]
            ctes.append(
                _ZEROS.format(
                    segments=params.add([c[0] for c in cells], "text[]"),
                    variants=params.add([c[1] for c in cells], "text[]"),
                    units=params.add([c[2] for c in cells], "int[]"),
                )
            )
    else:
        assert query.end is not None
        value = value_sql(metric.value_property, "e", params.values)
        values = (
            f"coalesce(array_agg({value} ORDER BY {value}) FILTER (WHERE {value} IS NOT NULL), '{{}}')"
            if event_level
            else f"ARRAY[coalesce(sum({value}), 0)::float8]"
        )
        window = None if metric.window_seconds is None else float(metric.window_seconds)
        ctes.append(
            _RAW_VALUES.format(
                values=values,
                units=units,
                event=params.add(metric.event, "text"),
                window=params.add(window, "float8"),
                end=params.add(query.end, "timestamptz"),
                where=filter_sql(metric.where, "e", params.values),
            )
        )
    return ",\n".join(ctes)


async def reduce_quantile(
    conn: Connection,
    experiment: str,
    phase: int,
    query: QuantileQuery,
    population: dict[str, dict[str, int]] | None,
    *,
    attribute: str | None = None,
) -> dict[str, Reduction]:
    """Per segment ("" without an attribute) the metric's quantile per variant, and its units from
    `population` (units per segment and variant; read from the roll-up, it is needed). From raw events
    every unit exposed before the end has a row, so without a population the rows count the units."""
    metric = query.metric
    assert metric.quantile is not None
    assert population is not None or query.source is None, "a roll-up holds only units with events"
    async with conn.transaction():
        await conn.execute(f"SET LOCAL work_mem = '{REDUCTION_WORK_MEM}'")
        first = _Params(experiment, phase)
        sql = _QUANTILE.format(
            values=_values_sql(query, first, population or {}, attribute),
            p=first.add(metric.quantile, "float8"),
        )
        quantiles = {
            (r["segment"], r["variant"]): (float(r["q"]), int(r["n_values"]))
            for r in await conn.fetch(sql, *first.values)
        }
        cells = list(quantiles)
        second = _Params(experiment, phase)
        sql = _AT_QUANTILE.format(
            values=_values_sql(query, second, population or {}, attribute),
            segments=second.add([c[0] for c in cells], "text[]"),
            variants=second.add([c[1] for c in cells], "text[]"),
            quantiles=second.add([quantiles[c][0] for c in cells], "float8[]"),
        )
        rows = await conn.fetch(sql, *second.values) if cells else []
        if population is None:
            population = {}
            for r in rows:
                population.setdefault(r["segment"], {})[r["variant"]] = int(r["n_units"])
        samples = {
            (r["segment"], r["variant"]): (
                QuantileSample(
                    metric.quantile,
                    population.get(r["segment"], {}).get(r["variant"], 0),
                    quantiles[(r["segment"], r["variant"])][1],
                    float(r["below"]),
                    float(r["below2"]),
                    float(r["values2"]),
                    float(r["below_values"]),
                ),
                quantiles[(r["segment"], r["variant"])][0],
            )
            for r in rows
        }
        bounds = await _order_statistics(conn, experiment, phase, query, population, attribute, samples)
    return _reductions(metric.key, population, samples, bounds)


async def _order_statistics(
    conn: Connection,
    experiment: str,
    phase: int,
    query: QuantileQuery,
    population: dict[str, dict[str, int]],
    attribute: str | None,
    samples: dict[tuple[str, str], tuple[QuantileSample, float]],
) -> dict[tuple[str, str], tuple[float, float]]:
    if not samples:
        return {}
    cells = list(samples)
    ranks = [samples[c][0].interval_ranks() for c in cells]
    count = [samples[c][0].values for c in cells]
    second = _Params(experiment, phase)
    values = _values_sql(query, second, population, attribute)
    sql = _AT_RANKS.format(
        values=values,
        segments=second.add([c[0] for c in cells], "text[]"),
        variants=second.add([c[1] for c in cells], "text[]"),
        low=second.add([(r[0] - 0.5) / n for r, n in zip(ranks, count, strict=True)], "float8[]"),
        high=second.add([(r[1] - 0.5) / n for r, n in zip(ranks, count, strict=True)], "float8[]"),
    )
    rows = await conn.fetch(sql, *second.values)
    return {(r["segment"], r["variant"]): (float(r["bounds"][0]), float(r["bounds"][1])) for r in rows}


def _reductions(
    metric: str,
    population: dict[str, dict[str, int]],
    samples: dict[tuple[str, str], tuple[QuantileSample, float]],
    bounds: dict[tuple[str, str], tuple[float, float]],
) -> dict[str, Reduction]:
    out = {}
    for segment, counts in population.items():
        quantiles = {}
        for variant in counts:
            found = samples.get((segment, variant))
            if found is None or (segment, variant) not in bounds:
                continue
            sample, q = found
            low, high = bounds[(segment, variant)]
            quantiles[variant] = QuantileSums(
                sample.units,
                sample.values,
                q,
                sample.below,
                sample.below_squares,
                sample.values_squares,
                sample.below_values,
                low,
                high,
            )
        variants = {v: VariantSums(n=n) for v, n in counts.items()}
        out[segment] = Reduction(metric, variants, None, quantiles)
    return out
