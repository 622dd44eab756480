"""RFC 3339 timestamps with a zone, read strictly (one rule for events and schedules)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)
MAX_LENGTH = 40


def rfc3339(raw: str) -> datetime | None:
    """The moment `raw` names in its own offset; None when it is not RFC 3339 with a zone (or longer than
    MAX_LENGTH). A fraction beyond microseconds is cut. Raises ValueError for a date, time or offset that
    does not exist (February 30th, 25:00, +01:75)."""
    match = _RFC3339.fullmatch(raw) if len(raw) <= MAX_LENGTH else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, zone_hours, zone_minutes = match.groups()
    offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes)) if sign else timedelta(0)
    if int(zone_minutes or 0) > 59:
        raise ValueError(f"offset minutes {zone_minutes}")
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int((fraction or "0")[:6].ljust(6, "0")),
        tzinfo=timezone(-offset if sign == "-" else offset),
    )
