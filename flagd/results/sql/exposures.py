"""Counting an experiment's exposed units: per variant and day for one phase, per experiment for the list."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flagd.results.model import ExposureTally
from flagd.storage.types import Connection


async def exposure_tally(
    conn: Connection, experiment: str, phase: int, end: datetime, started: datetime | None = None
) -> ExposureTally:
    """The phase's exposed units before `end`, per variant and per day, and how many were first exposed
    since the phase `started`: from one scan of its exposures."""
    rows = await conn.fetch(
        "SELECT (exposed_at AT TIME ZONE 'UTC')::date AS day, variant, multiple_variants, count(*) AS n, "
        "count(*) FILTER (WHERE exposed_at >= $4) AS since_start "
        "FROM exposures WHERE experiment = $1 AND phase = $2 AND exposed_at < $3 GROUP BY 1, 2, 3",
        experiment,
        phase,
        end,
        started or datetime.min.replace(tzinfo=UTC),
    )
    units: dict[str, int] = {}
    daily: dict[date, int] = {}
    multiple = 0
    since_start = 0
    for row in rows:
        count = int(row["n"])
        since_start += int(row["since_start"])
        daily[row["day"]] = daily.get(row["day"], 0) + count
        if row["multiple_variants"]:
            multiple += count
        else:
            units[row["variant"]] = units.get(row["variant"], 0) + count
    return ExposureTally(units, multiple, dict(sorted(daily.items())), since_start)


async def units_per_experiment(conn: Connection) -> dict[str, int]:
    """Units exposed in each experiment's current phase."""
    rows = await conn.fetch(
        "SELECT e.experiment, count(*) AS units FROM exposures e JOIN experiments x "
        "ON x.key = e.experiment AND x.phase = e.phase GROUP BY e.experiment"
    )
    return {r["experiment"]: int(r["units"]) for r in rows}


async def phase_window(
    conn: Connection, experiment: str, phase: int
) -> tuple[datetime, datetime | None] | None:
    """When the phase started and ended (None while it runs), or None for a phase never recorded."""
    row = await conn.fetchrow(
        "SELECT started_at, ended_at FROM experiment_phases WHERE experiment = $1 AND phase = $2",
        experiment,
        phase,
    )
    return None if row is None else (row["started_at"], row["ended_at"])


async def refused_exposures(conn: Connection, experiment: str, since: date) -> dict[str, int]:
    """Exposures of the experiment refused for an analysis from `since` on, by code."""
    rows = await conn.fetch(
        "SELECT code, sum(count) AS n FROM exposure_rejections WHERE experiment = $1 AND day >= $2 GROUP BY code "
        "ORDER BY code",
        experiment,
        since,
    )
    return {r["code"]: int(r["n"]) for r in rows}
