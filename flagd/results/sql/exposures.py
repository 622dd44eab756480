"""Counting an experiment's exposed units: per variant and day for one phase, per experiment for the list."""

from __future__ import annotations

from datetime import date, datetime

from flagd.results.model import ExposureTally
from flagd.storage.types import Connection


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


async def units_per_experiment(conn: Connection) -> dict[str, int]:
    """Units exposed in each experiment's current phase."""
    rows = await conn.fetch(
        "SELECT e.experiment, count(*) AS units FROM exposures e JOIN experiments x "
        "ON x.key = e.experiment AND x.phase = e.phase GROUP BY e.experiment"
    )
    return {r["experiment"]: int(r["units"]) for r in rows}
