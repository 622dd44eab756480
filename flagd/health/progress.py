"""How far the data-health detector has got: hours reduced up to, and the last hour judged (one row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flagd.storage.types import Connection


@dataclass(frozen=True, slots=True)
class Progress:
    reduced_until: datetime
    judged_hour: datetime | None


async def read_progress(conn: Connection) -> Progress | None:
    """None before the detector's first round."""
    row = await conn.fetchrow("SELECT reduced_until, judged_hour FROM data_health_progress")
    return Progress(row["reduced_until"], row["judged_hour"]) if row else None


async def save_progress(conn: Connection, reduced: datetime, judged: datetime | None) -> None:
    await conn.execute(
        "INSERT INTO data_health_progress (reduced_until, judged_hour) VALUES ($1, $2) "
        "ON CONFLICT (singleton) DO UPDATE SET reduced_until = EXCLUDED.reduced_until, "
        "judged_hour = EXCLUDED.judged_hour",
        reduced,
        judged,
    )
