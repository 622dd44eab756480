"""A journey report outside experiments: the question (`JourneyQuery`), the answer (`Funnel`) and the pure
step from one to the other.

Semantics. A unit *enters* when it does step 1's event in the date range [from, to] (its first such event);
it *reaches* step k when it does step k's event at or after the moment it reached step k-1 and before its
entry plus the window; a step may also require its event's properties to meet a filter. The earliest event that qualifies is taken at every step (the earliest moment leaves
the most room for the steps after it, so no unit is counted short). Later steps may fall after `to`, within
the window. A breakdown assigns each unit one segment: the value of an event property on its entering event,
or of an attribute of (or the variant in) its first exposure to an experiment; the MAX_SEGMENTS largest
segments are kept and the rest are counted together as "(other)", units without a value as "(none)".

The SQL (flagd.results.sql.funnel) returns, per segment and step, the units and the median and p90 of the
seconds between the step and the one before; `funnel()` turns those rows into the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from flagd.experiments.filters import EventFilter

MIN_STEPS, MAX_STEPS = 2, 10
MAX_RANGE_DAYS = 92
MAX_WINDOW_SECONDS = 30 * 86_400
DEFAULT_WINDOW_SECONDS = 7 * 86_400
DEFAULT_RANGE_DAYS = 30
MAX_SEGMENTS = 20
"""A breakdown keeps this many segments (the largest by units entering); the rest are "(other)"."""

BreakdownSource = Literal["property", "exposure", "variant"]


@dataclass(frozen=True, slots=True)
class Breakdown:
    """What splits the units: an event `property` of the entering event, an `exposure` attribute of the unit's
    first exposure to `experiment`, or the `variant` it was first assigned in `experiment`."""

    source: BreakdownSource
    name: str = ""
    """The property or attribute (empty for a variant breakdown)."""
    experiment: str = ""

    def __str__(self) -> str:
        if self.source == "property":
            return f"property:{self.name}"
        if self.source == "exposure":
            return f"exposure:{self.experiment}:{self.name}"
        return f"variant:{self.experiment}"


@dataclass(frozen=True, slots=True)
class JourneyQuery:
    steps: tuple[str, ...]
    first_day: date
    last_day: date
    """Inclusive: the range is first_day 00:00 UTC to the end of last_day."""
    window_seconds: int = DEFAULT_WINDOW_SECONDS
    breakdown: Breakdown | None = None
    filters: tuple[EventFilter | None, ...] = ()
    """Per step, the conditions its event's properties must meet (metric filters' syntax); () for none."""

    def filter_of(self, step: int) -> EventFilter | None:
        """Step `step`'s filter (1-based)."""
        return self.filters[step - 1] if step <= len(self.filters) else None


@dataclass(frozen=True, slots=True)
class StepRow:
    """One row of the funnel query: units reaching `step` (1-based) in `segment` (None: every unit)."""

    step: int
    segment: str | None
    units: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class FunnelStep:
    step: int
    event: str
    units: int
    from_start: float | None
    """units / units entering (None when no unit entered)."""
    from_previous: float | None
    """units / units reaching the step before (None for step 1, or when none reached it)."""
    median_seconds: float | None
    """The median of the seconds from the step before to this one, over the units reaching it."""
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class FunnelSegment:
    value: str | None
    """The segment's value; None for every unit together."""
    entered: int
    steps: tuple[FunnelStep, ...]

    @property
    def completed(self) -> int:
        return self.steps[-1].units


@dataclass(frozen=True, slots=True)
class Funnel:
    steps: tuple[str, ...]
    from_day: date
    to_day: date
    window_seconds: int
    breakdown: str | None
    filtered_steps: tuple[int, ...]
    """The steps whose events must meet a filter (1-based)."""
    as_of: datetime
    all_units: FunnelSegment
    segments: tuple[FunnelSegment, ...]
    """Per segment, the largest first (empty without a breakdown)."""
    omitted: int
    """Distinct values beyond the MAX_SEGMENTS largest, counted together as "(other)"."""


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def segment(steps: tuple[str, ...], value: str | None, rows: Iterable[StepRow]) -> FunnelSegment:
    """One segment's funnel from its rows (a step no unit reached has no row: it counts 0)."""
    by_step = {row.step: row for row in rows}
    units = [by_step[k].units if k in by_step else 0 for k in range(1, len(steps) + 1)]
    out = []
    for k, event in enumerate(steps, start=1):
        row = by_step.get(k)
        out.append(
            FunnelStep(
                step=k,
                event=event,
                units=units[k - 1],
                from_start=_share(units[k - 1], units[0]),
                from_previous=_share(units[k - 1], units[k - 2]) if k > 1 else None,
                median_seconds=row.median_seconds if row and k > 1 else None,
                p90_seconds=row.p90_seconds if row and k > 1 else None,
            )
        )
    return FunnelSegment(value=value, entered=units[0], steps=tuple(out))


def funnel(query: JourneyQuery, rows: Iterable[StepRow], distinct_values: int, as_of: datetime) -> Funnel:
    """The answer from the query's rows: every unit together, then each segment, largest first."""
    grouped: dict[str | None, list[StepRow]] = {}
    for row in rows:
        grouped.setdefault(row.segment, []).append(row)
    everyone = segment(query.steps, None, grouped.pop(None, []))
    segments = sorted(
        (segment(query.steps, value, found) for value, found in grouped.items() if value is not None),
        key=lambda s: (-s.entered, s.value or ""),
    )
    return Funnel(
        steps=query.steps,
        from_day=query.first_day,
        to_day=query.last_day,
        window_seconds=query.window_seconds,
        breakdown=str(query.breakdown) if query.breakdown else None,
        filtered_steps=tuple(k for k in range(1, len(query.steps) + 1) if query.filter_of(k) is not None),
        as_of=as_of,
        all_units=everyone,
        segments=tuple(segments) if query.breakdown else (),
        omitted=max(distinct_values - MAX_SEGMENTS, 0) if query.breakdown else 0,
    )
