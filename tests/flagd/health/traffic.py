"""Simulated traffic with a weekly pattern, as track events, with the three tracking mistakes of issue 25 that
can be switched on: a 70% drop of an event for two hours, a property that becomes a string, a client that
fires every event twice."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

HOUR = timedelta(hours=1)


def shape(hour: datetime) -> float:
    """Traffic relative to its base: a daytime peak at 14:00 UTC, weekends at 65%."""
    daily = 0.4 + 1.1 * max(0.0, math.sin(math.pi * (hour.hour - 6) / 16))
    return daily * (0.65 if hour.weekday() >= 5 else 1.0)


@dataclass(frozen=True, slots=True)
class Mistakes:
    drop_from: datetime | None = None
    """signup falls by 70% for two hours from here."""
    string_from: datetime | None = None
    """purchase's `amount` is sent as a string from here."""
    double_from: datetime | None = None
    """from here, three in ten units send every page_view twice, 200 ms apart."""


BASES = {"signup": 110.0, "purchase": 25.0, "page_view": 20.0}

Row = tuple[uuid.UUID, datetime, str, str, dict[str, Any]]
"""event id, timestamp, event name, unit, properties."""


def traffic(end: datetime, days: int, mistakes: Mistakes, prefix: str = "", seed: int = 25) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    hour = end - days * 24 * HOUR
    sources = ({"source": "ads"}, {"source": "organic"}, {"source": "referral"})
    while hour < end:
        for name, base in BASES.items():
            n = int(rng.poisson(base * shape(hour)))
            dropped = mistakes.drop_from and mistakes.drop_from <= hour < mistakes.drop_from + 2 * HOUR
            if name == "signup" and dropped:
                n = int(rng.binomial(n, 0.3))
            late = mistakes.string_from is not None and hour >= mistakes.string_from
            twice = name == "page_view" and mistakes.double_from is not None and hour >= mistakes.double_from
            amounts = np.round(rng.uniform(5, 200, n), 2).tolist()
            offsets = rng.uniform(0, 3598, n).tolist()
            for offset, unit, amount in zip(
                offsets, rng.integers(0, 100_000, n).tolist(), amounts, strict=True
            ):
                at = hour + timedelta(seconds=offset)
                properties: dict[str, Any]
                if name == "purchase":
                    properties = {"amount": f"{amount:.2f}" if late else amount, "plan": "pro"}
                else:
                    properties = sources[unit % 3]
                rows.append((uuid.uuid4(), at, prefix + name, f"u{unit}", properties))
                if twice and unit % 10 < 3:
                    rows.append(
                        (
                            uuid.uuid4(),
                            at + timedelta(milliseconds=200),
                            prefix + name,
                            f"u{unit}",
                            properties,
                        )
                    )
        hour += HOUR
    return rows


def as_event(row: Row) -> dict[str, Any]:
    event_id, at, name, unit, properties = row
    return {
        "kind": "track",
        "event_id": str(event_id),
        "timestamp": at.isoformat(),
        "event": name,
        "unit": unit,
        "properties": properties,
    }
