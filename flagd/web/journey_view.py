"""What the journey page shows, built from a `Funnel`: the chart's geometry and every number in words.

The funnel chart is an SVG drawn by the server (no script, so it needs none of the page's JavaScript and
prints as it shows): per step, one bar per series (every unit, then the CHART_SEGMENTS largest segments),
its length the share of the series' units entering that reached the step, over a paler bar at the share
that reached the step before, so the pale part is the drop-off. The viewBox scales it to any width.
The table below it lists every segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import orjson

from flagd.experiments.filters import EventFilter
from flagd.results.journey import (
    DEFAULT_RANGE_DAYS,
    DEFAULT_WINDOW_SECONDS,
    MAX_STEPS,
    Funnel,
    FunnelSegment,
    JourneyQuery,
)
from flagd.results.words import count, number, percent, plural

CHART_SEGMENTS = 5
PALETTE = ("#1d2330", "#2e6fd1", "#c0392b", "#1f8a4c", "#8e44ad", "#d68910")
WIDTH = 360
LABEL_WIDTH = 92
BAR_WIDTH = 190
BAR_HEIGHT = 13
ROW = 17
HEADING = 22


def duration(seconds: float | None) -> str:
    """Seconds in the unit a person would use: "45 s", "12 min", "3.5 h", "2.1 days"."""
    if seconds is None:
        return "—"
    for size, name in ((86_400, "days"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{number(seconds / size, 2)} {name}"
    return f"{number(seconds, 2)} s"


def window_text(seconds: int) -> str:
    """A window as the form takes it: "7d", "36h", "90m" or "45s"."""
    for size, suffix in ((86_400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class JourneyForm:
    """The form's fields as shown: the query's, with two empty steps to add (at most MAX_STEPS)."""

    steps: tuple[str, ...]
    first: str
    last: str
    window: str
    breakdown: str
    filters: tuple[str, ...] = ()
    """Each step's filter as `where` takes it (`2:{...}`), kept in hidden fields."""

    @classmethod
    def of(cls, query: JourneyQuery | None, today: date) -> JourneyForm:
        if query is None:
            last = today
            first = today - timedelta(days=DEFAULT_RANGE_DAYS - 1)
            return cls(
                ("", "", ""), first.isoformat(), last.isoformat(), window_text(DEFAULT_WINDOW_SECONDS), ""
            )
        room = min(2, MAX_STEPS - len(query.steps))
        return cls(
            (*query.steps, *([""] * room)),
            query.first_day.isoformat(),
            query.last_day.isoformat(),
            window_text(query.window_seconds),
            str(query.breakdown or ""),
            tuple(
                f"{k}:{filter_json(where)}"
                for k in range(1, len(query.steps) + 1)
                if (where := query.filter_of(k)) is not None
            ),
        )


def filter_json(where: EventFilter) -> str:
    """A filter as JSON in the syntax it was given in: {property: {operator: operand}}."""
    document: dict[str, dict[str, object]] = {}
    for c in where.conditions:
        document.setdefault(c.property, {})[c.op] = (
            list(c.operand) if isinstance(c.operand, tuple) else c.operand
        )
    return orjson.dumps(document).decode()


def _share(value: float | None) -> str:
    return "—" if value is None else percent(value)


@dataclass(frozen=True, slots=True)
class Bar:
    y: float
    label: str
    color: str
    previous: float
    """The pale bar's length: the share that reached the step before."""
    reached: float
    text: str


@dataclass(frozen=True, slots=True)
class StepChart:
    y: float
    title: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: float
    label_width: int
    bar_width: int
    bar_height: int
    steps: tuple[StepChart, ...]


@dataclass(frozen=True, slots=True)
class Cell:
    step: str
    units: str
    from_start: str
    from_previous: str
    median: str
    p90: str


@dataclass(frozen=True, slots=True)
class SegmentRows:
    value: str
    entered: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class JourneyPage:
    chart: Chart
    rows: tuple[SegmentRows, ...]
    summary: str
    charted: int
    """Segments in the chart (the table has them all)."""


def _label(value: str | None) -> str:
    text = "All units" if value is None else value
    return text if len(text) <= 14 else text[:13] + "…"


def chart(series: list[FunnelSegment], steps: tuple[str, ...]) -> Chart:
    y = 0.0
    charts = []
    for k, event in enumerate(steps):
        top = y
        y += HEADING
        bars = []
        for i, found in enumerate(series):
            step = found.steps[k]
            before = found.steps[k - 1].from_start if k else step.from_start
            bars.append(
                Bar(
                    y=y,
                    label=_label(found.value),
                    color=PALETTE[i % len(PALETTE)],
                    previous=round((before or 0.0) * BAR_WIDTH, 2),
                    reached=round((step.from_start or 0.0) * BAR_WIDTH, 2),
                    text=f"{_share(step.from_start)} · {count(step.units)}",
                )
            )
            y += ROW
        charts.append(StepChart(top, f"{k + 1}. {event}", tuple(bars)))
    return Chart(WIDTH, y + 4, LABEL_WIDTH, BAR_WIDTH, BAR_HEIGHT, tuple(charts))


def _rows(found: FunnelSegment) -> SegmentRows:
    cells = tuple(
        Cell(
            step=f"{s.step}. {s.event}",
            units=count(s.units),
            from_start=_share(s.from_start),
            from_previous=_share(s.from_previous),
            median=duration(s.median_seconds),
            p90=duration(s.p90_seconds),
        )
        for s in found.steps
    )
    return SegmentRows("All units" if found.value is None else found.value, count(found.entered), cells)


def page(result: Funnel) -> JourneyPage:
    series = [result.all_units, *result.segments[:CHART_SEGMENTS]]
    everyone = result.all_units
    last = everyone.steps[-1]
    if everyone.entered:
        summary = (
            f"{plural(everyone.entered, 'unit')} entered; {count(last.units)} reached {last.event} "
            f"({_share(last.from_start)})."
        )
    else:
        summary = f"No unit did {result.steps[0]} in the range, so none entered the journey."
    return JourneyPage(
        chart=chart(series, result.steps),
        rows=tuple(_rows(s) for s in [everyone, *result.segments]),
        summary=summary,
        charted=len(series) - 1,
    )
