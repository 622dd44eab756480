"""Per-unit roll-ups: what each exposed unit did, per metric source, kept up to date by catch-ups.

Reading an experiment's results from raw events costs a join of every exposed unit with its
events, per metric (about 6 s per metric at 1 million units and 10 million events). The roll-up
stores the outcome of that join once, in `results_unit_values` (one row per experiment phase,
source and unit that has events), so results aggregate about one row per unit instead.

A *source* is what a metric reads per unit: an event name, the window after exposure, the
CUPED pre-exposure window, and the event filter and value property (two metrics on one event with
different filters read different sources). A retention metric reads one source per event (with its
filter), its window starting `from_day` days after exposure and no pre-exposure window: a unit's window
is relative to its own exposure, so catching up the units touched since the horizon keeps it exact
like any other. A catch-up of one source

1. builds it from scratch when it has never been built, or else
2. finds the units whose events (of that name) or exposure row were stored since the last
   catch-up's horizon, and recomputes exactly those units (changed rows updated, rows of units
   that no longer have one deleted).

The horizon: received_at is the storing transaction's start (`now()`), and a transaction that
has not committed is still listed, with that start, in pg_stat_activity. So a catch-up takes as
its horizon the earliest start of any open transaction (or now): every row stored before it is
committed and visible to the catch-up, and the next catch-up looks at rows from there on.

Recomputing a unit is idempotent, so overlapping catch-ups cost time, never correctness; a unit
that became "seen in several variants", or whose first exposure moved earlier, is recomputed
because its exposure row was rewritten. One catch-up of a source runs at a time (an advisory
lock); results requests catch up before they read, the keeper (flagd.results.keeper) does it in
the background so that a request finds little to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from flagd.experiments.catalog import ResolvedMetric
from flagd.experiments.filters import EventFilter
from flagd.experiments.model import FunnelStep
from flagd.results.sql.filters import filter_sql, value_sql
from flagd.results.sql.funnels import UNIT_COLUMNS as FUNNEL_COLUMNS
from flagd.results.sql.funnels import reached_sql, step_ctes
from flagd.results.sql.reduce import unit_aggregates, unit_values
from flagd.settings import Settings
from flagd.storage.types import Connection


@dataclass(frozen=True, slots=True)
class Source:
    event: str
    window_seconds: int | None
    """The window's end, after exposure."""
    pre_seconds: int
    where: EventFilter | None = None
    value_property: str | None = None
    from_seconds: int = 0
    """The window's start, after exposure (retention); a source that starts later has no pre window."""
    values: bool = False
    """Whether each unit's values are kept too (sorted, in post_values): for event-level quantiles."""
    steps: tuple[FunnelStep, ...] = ()
    """A funnel's steps: each unit's row holds the number of steps it completed (post_count)."""

    @property
    def event_names(self) -> list[str]:
        return sorted({s.event for s in self.steps} or {self.event})

    @property
    def key(self) -> str:
        """Equal keys, equal rows: a filter or a value property is part of it (a source without either
        keeps the key it had before they existed, so its roll-up stays), a window's later start, and
        whether values are kept."""
        parts: list[object] = [self.event, self.window_seconds, self.pre_seconds]
        if self.where is not None or self.value_property is not None:
            parts += [self.where.key if self.where is not None else None, self.value_property]
        if self.from_seconds:
            parts += [self.from_seconds]
        if self.values:
            parts += ["values"]
        if self.steps:
            parts.append([[s.event, s.where.key if s.where else None, s.within_seconds] for s in self.steps])
        return orjson.dumps(parts).decode()

    @property
    def incremental(self) -> bool:
        """Whether a unit's row is its earlier row plus its new events' (no funnel's step order, no kept
        values): a catch-up then reads only the events stored since, not every event of the unit."""
        return not self.steps and not self.values

    def compute_sql(self, touched: str, params: list[object], before: datetime) -> str:
        """The per-unit rows of this source (the touched units' only, with a join); an incremental source's
        from the events stored before `before` only (its rows hold exactly those), a funnel's from every
        event; its parameters appended to `params`, which holds the experiment, the phase and the source key."""
        if self.steps:
            steps = step_ctes(
                self.steps, self.window_seconds, "base", ("variant",), "'infinity'::timestamptz", params
            )
            reached = reached_sql(len(self.steps), ("variant",), None)
            columns = FUNNEL_COLUMNS + ", NULL::float8[] AS post_values, NULL::timestamptz AS post_last_at"
            return _FUNNEL_COMPUTE.format(touched=touched, steps=steps, reached=reached, columns=columns)
        params += [self.event, self.window_seconds, self.pre_seconds, self.from_seconds]
        where = filter_sql(self.where, "e", params)
        value = value_sql(self.value_property, "e", params)
        kept = unit_values(value) if self.values else "       NULL::float8[] AS post_values"
        params.append(before)
        return _COMPUTE.format(
            touched=touched,
            where=where,
            before=f"${len(params)}::timestamptz",
            aggregates=unit_aggregates(value) + ",\n" + kept + ",\n" + _last_at(value),
        )

    def increment_sql(self, params: list[object], since: datetime, before: datetime) -> str:
        """The touched units' rows that are their rows plus the events stored in [since, before) (units
        not marked `whole` in results_touched, the row of one that has none new unchanged); `params` as
        `compute_sql` left them (the event and its windows are $4 to $7)."""
        assert self.incremental
        where = filter_sql(self.where, "e", params)
        value = value_sql(self.value_property, "e", params)
        params += [since, before]
        return _INCREMENT.format(
            where=where,
            since=f"${len(params) - 1}::timestamptz",
            before=f"${len(params)}::timestamptz",
            aggregates=unit_aggregates(value) + ",\n" + _last_at(value),
        )


def metric_sources(metric: ResolvedMetric, pre_seconds: int) -> tuple[Source, ...]:
    """The sources a metric reads: its own event (a funnel: its steps), a ratio's numerator and
    denominator, or a retention metric's events over its days; an event-level quantile's with the values
    kept."""
    own = metric.metric
    if own.type == "retention":
        return tuple(
            Source(e.event, own.to_day * 86_400, 0, e.where, None, own.from_day * 86_400) for e in own.events
        )
    return tuple(
        Source(
            str(p.event or p.steps[0].event),
            p.window_seconds,
            pre_seconds,
            p.where,
            p.value_property,
            values=p.type == "quantile" and p.level == "event",
            steps=p.steps,
        )
        for p in metric.parts
    )


@dataclass(frozen=True, slots=True)
class RollupPolicy:
    pre_seconds: int
    """CUPED's covariate window: each unit's same metric in this long before its first exposure."""
    fresh_seconds: float = 0.0
    """A request reads a roll-up caught up at most this long ago as it is (0: it always catches up)."""
    inline_build_units: int | None = None
    """A phase of a running experiment with at least this many exposed units has its first roll-ups built
    in the background (flagd.results.preparing); None: every request builds what it needs."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RollupPolicy:
        return cls(
            settings.results_pre_exposure_days * 86_400,
            settings.results_fresh_seconds,
            settings.results_inline_build_units,
        )


@dataclass(frozen=True, slots=True)
class RollupState:
    caught_up_at: datetime
    latest_event_at: datetime | None
    version: int
    """Bumped by every catch-up that changed a row: equal versions, equal rows."""
    changes_from: int | None = None
    """The lowest version from which the change log holds every change (None: from none)."""


# Per unit: the events of one name from `pre` seconds before its first exposure (or `from` seconds
# after it) to the end of the window after it; units are the phase's exposed units (all of them, or the touched ones).
_COLUMNS = (
    "experiment, phase, source, unit, variant, post_count, post_sum, post_last, pre_count, pre_sum, post_values, "
    "post_last_at"
)
_COMPUTE = """
SELECT $1::text AS experiment, $2::int AS phase, $3::text AS source, u.unit, u.variant, {aggregates}
FROM exposures u {touched}
JOIN events e
  ON e.name = $4 AND e.unit = u.unit
 AND e.occurred_at >= u.exposed_at + make_interval(secs => $7::float8 - $6::float8)
 AND e.occurred_at < u.exposed_at + make_interval(secs => coalesce($5::float8, 1e9))
 AND e.received_at < {before}
 AND {where}
WHERE u.experiment = $1 AND u.phase = $2 AND NOT u.multiple_variants
GROUP BY u.unit, u.variant
"""


def _last_at(value: str) -> str:
    """When the event of a unit's post_last happened (what a later event's value replaces it by)."""
    return f"       max(e.occurred_at) FILTER (WHERE e.occurred_at >= u.exposed_at AND {value} IS NOT NULL) AS post_last_at"


# An incremental source's touched units not marked whole: the events stored in [since, before) (found
# by the BRIN index on received_at, not by a probe per unit into every daily partition) added to each
# unit's row. The exposure of such a unit is the one its row was computed with (a rewritten exposure
# row marks the unit whole), and its row holds its events stored before `since` exactly, so the sum is
# the row a recompute would give: counts and sums added, the last value the later one (on the same
# moment the greater, as array_agg's order in unit_aggregates has it).
_INCREMENT = """
SELECT $1::text AS experiment, $2::int AS phase, $3::text AS source, f.unit, f.variant,
       coalesce(r.post_count, 0) + f.post_count AS post_count,
       coalesce(r.post_sum, 0) + f.post_sum AS post_sum,
       CASE WHEN f.post_last_at IS NULL THEN r.post_last
            WHEN r.post_last_at IS NULL OR f.post_last_at > r.post_last_at THEN f.post_last
            WHEN f.post_last_at = r.post_last_at THEN greatest(f.post_last, r.post_last)
            ELSE r.post_last END AS post_last,
       coalesce(r.pre_count, 0) + f.pre_count AS pre_count,
       coalesce(r.pre_sum, 0) + f.pre_sum AS pre_sum,
       NULL::float8[] AS post_values,
       greatest(r.post_last_at, f.post_last_at) AS post_last_at
FROM (
    SELECT u.unit, u.variant, {aggregates}
    FROM events e
    JOIN results_touched t ON t.unit = e.unit AND NOT t.whole
    JOIN exposures u ON u.experiment = $1 AND u.phase = $2 AND u.unit = e.unit AND NOT u.multiple_variants
    WHERE e.name = $4 AND e.received_at >= {since} AND e.received_at < {before}
      AND e.occurred_at >= u.exposed_at + make_interval(secs => $7::float8 - $6::float8)
      AND e.occurred_at < u.exposed_at + make_interval(secs => coalesce($5::float8, 1e9))
      AND {where}
    GROUP BY u.unit, u.variant
) f
LEFT JOIN results_unit_values r ON r.experiment = $1 AND r.phase = $2 AND r.source = $3 AND r.unit = f.unit
"""

# A funnel's rows: the units that completed its first step, with the number of steps they completed.
_FUNNEL_COMPUTE = """
WITH base AS (
    SELECT u.unit, u.variant, u.exposed_at FROM exposures u {touched}
    WHERE u.experiment = $1 AND u.phase = $2 AND NOT u.multiple_variants
),
{steps}
SELECT $1::text AS experiment, $2::int AS phase, $3::text AS source, r.unit, r.variant, r.post_count, {columns}
FROM ({reached}) r
"""

_BUILD = "INSERT INTO results_unit_values ({columns}) {compute}"

# The touched units' rows computed again (`whole`: from every event, else their row plus their new events):
# a changed row is updated, a new one inserted, the row of a whole unit that no longer has one (no events
# left in its windows, or now in several variants) deleted. Each changed unit's row as it was before (a
# NULL variant: it had none) goes to the change log under the roll-up's next version (all statements of
# one see the rows as they were before it); the count of those decides whether the version moves.
_RECOMPUTE = """
WITH computed AS ({compute}),
before AS (
    SELECT r.unit, t.whole, r.variant, r.post_count, r.post_sum, r.post_last, r.pre_count, r.pre_sum,
           r.post_values, r.post_last_at
    FROM results_unit_values r JOIN results_touched t ON t.unit = r.unit
    WHERE r.experiment = $1 AND r.phase = $2 AND r.source = $3
),
changed AS (
    SELECT coalesce(c.unit, b.unit) AS unit, b.variant, b.post_count, b.post_sum, b.post_last, b.pre_count,
           b.pre_sum
    FROM computed c FULL JOIN before b ON b.unit = c.unit
    WHERE (c.unit IS NOT NULL OR b.whole)
      AND (c.variant, c.post_count, c.post_sum, c.post_last, c.pre_count, c.pre_sum, c.post_values)
          IS DISTINCT FROM (b.variant, b.post_count, b.post_sum, b.post_last, b.pre_count, b.pre_sum,
                            b.post_values)
),
upserted AS (
    INSERT INTO results_unit_values AS r ({columns})
    SELECT * FROM computed
    ON CONFLICT (experiment, phase, source, unit) DO UPDATE SET
        variant = EXCLUDED.variant, post_count = EXCLUDED.post_count, post_sum = EXCLUDED.post_sum,
        post_last = EXCLUDED.post_last, pre_count = EXCLUDED.pre_count, pre_sum = EXCLUDED.pre_sum,
        post_values = EXCLUDED.post_values, post_last_at = EXCLUDED.post_last_at
    WHERE (r.variant, r.post_count, r.post_sum, r.post_last, r.pre_count, r.pre_sum, r.post_values,
           r.post_last_at)
          IS DISTINCT FROM (EXCLUDED.variant, EXCLUDED.post_count, EXCLUDED.post_sum, EXCLUDED.post_last,
                            EXCLUDED.pre_count, EXCLUDED.pre_sum, EXCLUDED.post_values, EXCLUDED.post_last_at)
    RETURNING 1
),
deleted AS (
    DELETE FROM results_unit_values r USING results_touched t
    WHERE r.experiment = $1 AND r.phase = $2 AND r.source = $3 AND r.unit = t.unit AND t.whole
      AND NOT EXISTS (SELECT 1 FROM computed c WHERE c.unit = r.unit)
    RETURNING 1
),
logged AS (
    INSERT INTO results_unit_changes
        (experiment, phase, source, version, unit, variant, post_count, post_sum, post_last, pre_count, pre_sum)
    SELECT $1, $2, $3, {version}, unit, variant, post_count, post_sum, post_last, pre_count, pre_sum
    FROM changed
    RETURNING 1
)
SELECT (SELECT count(*) FROM logged) AS changed, (SELECT count(*) FROM upserted) + (SELECT count(*) FROM deleted) AS written
"""
CHANGES_KEPT = 200
"""Versions of a roll-up whose changes the log keeps: a reduction read up to this many catch-ups ago
(about 100 minutes at the keeper's default 30 s, when every round changes rows) is brought up to date
from the log; an older one is reduced again from every unit."""
_TOUCHED_JOIN = "JOIN results_touched t ON t.unit = u.unit AND t.whole"

# The horizon of a catch-up: the earliest start of a transaction still open elsewhere (it may be
# storing rows with that received_at), or now. Only client sessions store events (a long autovacuum
# would hold the horizon back for nothing); sessions of other roles show no xact_start to us, and flagd
# writes its events with its own role.
_HORIZON = """
SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND backend_type = 'client backend'))
"""

_TOUCHED_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS results_touched (unit text PRIMARY KEY, whole boolean NOT NULL) "
    "ON COMMIT DELETE ROWS"
)
# A unit whose exposure row was rewritten (or is new) is recomputed whole; one with new events only is
# too unless $5 (the roll-up takes increments).
_TOUCH = """
INSERT INTO results_touched (unit, whole)
SELECT unit, bool_or(whole) FROM (
    SELECT unit, NOT $5::boolean AS whole FROM events WHERE name = ANY($1::text[]) AND received_at >= $2
    UNION ALL
    SELECT unit, true FROM exposures WHERE experiment = $3 AND phase = $4 AND received_at >= $2
) touched GROUP BY unit
"""
# A row stored before rows knew when their last value happened cannot take an increment.
_WHOLE_UNKNOWN_LAST = """
UPDATE results_touched t SET whole = true FROM results_unit_values r
WHERE NOT t.whole AND r.experiment = $1 AND r.phase = $2 AND r.source = $3 AND r.unit = t.unit
  AND r.post_last IS NOT NULL AND r.post_last_at IS NULL
"""


async def catch_up(conn: Connection, experiment: str, phase: int, source: Source, *, wait: bool) -> bool:
    """Bring one roll-up up to date; False (nothing done) when another catch-up holds it and not `wait`."""
    async with conn.transaction():
        lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        got = await conn.fetchval(
            f"SELECT {lock}(hashtext($1), hashtext($2))::text", experiment, f"{phase}/{source.key}"
        )
        if got == "false":
            return False
        started = time.perf_counter()
        now: datetime = await conn.fetchval(_HORIZON)
        state = await conn.fetchrow(
            "SELECT caught_up_at, version, increments FROM results_rollups "
            "WHERE experiment = $1 AND phase = $2 AND source = $3",
            experiment,
            phase,
            source.key,
        )
        if state is None:
            params: list[object] = [experiment, phase, source.key]
            build = _BUILD.format(columns=_COLUMNS, compute=source.compute_sql("", params, now))
            await conn.execute(build, *params)
            # The planner needs the new rows' statistics before autovacuum comes by (a hash aggregate
            # instead of sorting a million rows by variant).
            await conn.execute("ANALYZE results_unit_values")
            latest = await _latest_received(conn, source.event_names, now)
            changed = True
        else:
            version = int(state["version"]) + 1
            increments = source.incremental and bool(state["increments"])
            changed, latest = await _recompute_touched(
                conn, experiment, phase, source, (state["caught_up_at"], now), version, increments
            )
            if changed:
                await conn.execute(
                    "DELETE FROM results_unit_changes WHERE experiment = $1 AND phase = $2 AND source = $3 "
                    "AND version <= $4",
                    experiment,
                    phase,
                    source.key,
                    version - CHANGES_KEPT,
                )
        # changes_from: a build logs every change after its version 1; a roll-up built before the log
        # existed logs from its next change on; pruning moves it up. increments: every row now holds
        # exactly the events stored before caught_up_at (a build and a recompute read no later ones; a
        # roll-up built before they were bounded is, once its touched units were recomputed whole).
        await conn.execute(
            "INSERT INTO results_rollups AS r (experiment, phase, source, caught_up_at, latest_event_at, "
            "built_seconds, changes_from, increments) VALUES ($1, $2, $3, $4, $5, $6, 1, true) "
            "ON CONFLICT (experiment, phase, source) DO UPDATE "
            "SET caught_up_at = EXCLUDED.caught_up_at, increments = true, "
            "latest_event_at = greatest(r.latest_event_at, EXCLUDED.latest_event_at), "
            "built_seconds = EXCLUDED.built_seconds, version = r.version + $7::int, "
            "changes_from = CASE WHEN $7::int = 0 THEN r.changes_from "
            "ELSE greatest(coalesce(r.changes_from, r.version), r.version + 1 - $8::int) END",
            experiment,
            phase,
            source.key,
            now,
            latest,
            time.perf_counter() - started,
            int(changed),
            CHANGES_KEPT,
        )
    return True


LATEST_LOOKED_BACK = timedelta(days=1)
"""How far back the newest event of a new roll-up is looked for first (a range the BRIN index on
received_at narrows), before the whole table (measured: 1.5 s per roll-up at 10 million events)."""


async def _latest_received(conn: Connection, names: list[str], horizon: datetime) -> datetime | None:
    """When the newest event of these names was stored."""
    recent: datetime | None = await conn.fetchval(
        "SELECT max(received_at) FROM events WHERE name = ANY($1::text[]) AND received_at >= $2",
        names,
        horizon - LATEST_LOOKED_BACK,
    )
    if recent is not None:
        return recent
    latest: datetime | None = await conn.fetchval(
        "SELECT max(received_at) FROM events WHERE name = ANY($1::text[])", names
    )
    return latest


async def _recompute_touched(
    conn: Connection,
    experiment: str,
    phase: int,
    source: Source,
    horizons: tuple[datetime, datetime],
    version: int,
    increments: bool,
) -> tuple[bool, datetime | None]:
    """Recompute the units stored since the last horizon (`horizons`: it and this one), logging the changed
    rows' earlier values under `version` (the roll-up's next); with `increments`, a unit with new events
    only takes them as an increment; (whether a row changed, the newest event's received_at among them)."""
    caught_up_at, now = horizons
    await conn.execute(_TOUCHED_TABLE)
    touched = await conn.execute(_TOUCH, source.event_names, caught_up_at, experiment, phase, increments)
    if touched.endswith(" 0"):  # "INSERT 0 <rows>": nothing was stored since
        return False, None
    params: list[object] = [experiment, phase, source.key]
    if increments:
        await conn.execute(_WHOLE_UNKNOWN_LAST, *params)
    # The planner then knows how many units to look up (an index probe each, not a scan of every event).
    await conn.execute("ANALYZE results_touched")
    compute = source.compute_sql(_TOUCHED_JOIN, params, now)
    if increments:
        compute += "UNION ALL\n" + source.increment_sql(params, caught_up_at, now)
    params.append(version)
    recompute = _RECOMPUTE.format(compute=compute, columns=_COLUMNS, version=f"${len(params)}::bigint")
    changed: int = await conn.fetchval(recompute, *params)
    latest: datetime | None = await conn.fetchval(
        "SELECT max(received_at) FROM events WHERE name = ANY($1::text[]) AND received_at >= $2",
        source.event_names,
        caught_up_at,
    )
    return changed > 0, latest


async def rollup_states(
    conn: Connection, experiment: str, phase: int, keys: Iterable[str]
) -> dict[str, RollupState]:
    """The roll-ups of these source keys that were ever built, by key."""
    rows = await conn.fetch(
        "SELECT source, caught_up_at, latest_event_at, version, changes_from FROM results_rollups "
        "WHERE experiment = $1 AND phase = $2 AND source = ANY($3::text[])",
        experiment,
        phase,
        list(keys),
    )
    return {
        r["source"]: RollupState(r["caught_up_at"], r["latest_event_at"], r["version"], r["changes_from"])
        for r in rows
    }
