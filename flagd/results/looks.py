"""The looks of the planned-horizon design, stored per experiment phase (migration 0012).

Every results request of a phase with a planned reach is a look: its information fraction (exposed
units over the planned reach) is stored, and the boundaries of each later look are computed from the
looks taken before it (stats.planned). The closed days of the phase are looks as well (the daily
series shows each), read from the exposure tally rather than stored. Bounds: a look within
stats.planned.MIN_GAP of a stored one is that look (not stored again: the two are analysed as one
look at the later fraction), and a phase keeps at most MAX_STORED looks; the analysis uses at most
stats.planned.MAX_LOOKS of them. Recording is idempotent under concurrent requests: one advisory
lock per phase orders the check and the insert.
"""

from __future__ import annotations

import math
from datetime import date

from flagd.results.model import ExposureTally
from flagd.storage.types import Connection
from stats.planned import MIN_GAP

MAX_STORED = 500
"""Looks stored per phase at most (500 looks at least 0.1% of the plan apart fit many times over)."""
LOCK_CLASS = 0x5EC1
"""The first key of the per-phase advisory lock (the second is the experiment's hash xor the phase)."""


async def stored_looks(conn: Connection, experiment: str, phase: int) -> tuple[float, ...]:
    """The phase's stored looks' information fractions, in increasing order."""
    rows = await conn.fetch(
        "SELECT fraction FROM sequential_looks WHERE experiment = $1 AND phase = $2 ORDER BY fraction LIMIT $3",
        experiment,
        phase,
        MAX_STORED,
    )
    return tuple(float(row["fraction"]) for row in rows)


def daily_looks(tally: ExposureTally, planned_units: int, today: date) -> tuple[float, ...]:
    """The information fraction at the end of each closed day of the phase (units first exposed by then)."""
    fractions = []
    total = 0
    for day, count in tally.daily.items():
        total += count
        if day < today and total > 0:
            fractions.append(total / planned_units)
    return tuple(fractions)


async def record_look(
    conn: Connection, experiment: str, phase: int, fraction: float, boundary: float
) -> bool:
    """Store a look at `fraction` unless one within MIN_GAP is stored or the phase has MAX_STORED; True if
    stored. The boundary is kept for the record (what the look was tested against)."""
    if not (0 < fraction <= 1) or math.isnan(boundary):
        return False
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1::integer, hashtext($2) # $3::integer)",
            LOCK_CLASS,
            experiment,
            phase,
        )
        status = await conn.execute(
            "INSERT INTO sequential_looks (experiment, phase, fraction, boundary) "
            "SELECT $1, $2, $3, $4 "
            "WHERE NOT EXISTS (SELECT 1 FROM sequential_looks WHERE experiment = $1 AND phase = $2 "
            "AND abs(fraction - $3) < $5) "
            "AND (SELECT count(*) FROM sequential_looks WHERE experiment = $1 AND phase = $2) < $6 "
            "ON CONFLICT DO NOTHING",
            experiment,
            phase,
            fraction,
            boundary,
            MIN_GAP,
            MAX_STORED,
        )
    return bool(status == "INSERT 0 1")
