"""The experiment and metric model: frozen values, validated once by `flagd.experiments.reading`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flagd.experiments.filters import EventFilter

BASIS_POINTS = 10_000
"""Traffic is measured in basis points: 10,000 is everyone."""

MetricType = Literal[
    "conversion", "count", "sum", "mean", "ratio", "nps", "csat", "ces", "quantile", "retention", "funnel"
]
METRIC_TYPES: tuple[MetricType, ...] = (
    "conversion",
    "count",
    "sum",
    "mean",
    "ratio",
    "nps",
    "csat",
    "ces",
    "quantile",
    "retention",
    "funnel",
)
QuantileLevel = Literal["unit", "event"]
QUANTILE_LEVELS: tuple[QuantileLevel, ...] = ("unit", "event")
RETENTION_MAX_DAY = 365
"""A retention metric's `to_day` is at most a year after exposure."""
RETENTION_MAX_EVENTS = 20
"""A retention metric counts a unit active on any of at most this many events."""
Direction = Literal["increase", "decrease"]
Role = Literal["primary", "secondary", "guardrail"]
State = Literal["draft", "running", "stopped", "launched"]
STATES: tuple[State, ...] = ("draft", "running", "stopped", "launched")


@dataclass(frozen=True, slots=True)
class Winsorisation:
    """Cap per-unit values: at a percentile of the pooled distribution, or at a fixed value."""

    percentile: float | None = None
    value: float | None = None


@dataclass(frozen=True, slots=True)
class RetentionEvent:
    """One of the events that make a unit active for a retention metric, with its optional filter."""

    event: str
    where: EventFilter | None = None


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """One step of a funnel: an event (passing its filter), at or after the previous step's completion."""

    event: str
    where: EventFilter | None = None
    within_seconds: int | None = None
    """The step counts only this long after the previous step's completion (the first step: exposure)."""


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    name: str
    type: MetricType
    direction: Direction
    event: str | None = None
    """The event name it reads (ratio metrics read their two metrics instead)."""
    description: str = ""
    numerator: str | None = None
    denominator: str | None = None
    """Ratio metrics: the keys of the two metrics, per unit of analysis."""
    window_seconds: int | None = None
    """Only events within this long of the unit's first exposure count."""
    winsorisation: Winsorisation | None = None
    quantile: float | None = None
    """Quantile metrics: p, from 0.01 to 0.99 (0.9: the p90)."""
    level: QuantileLevel = "unit"
    """Quantile metrics: of each unit's summed value ("unit"), or of the events' values ("event")."""
    where: EventFilter | None = None
    """Only the events whose properties pass this filter count."""
    value_property: str | None = None
    """The value is this numeric property of the event instead of its `value` (other values: no value)."""
    events: tuple[RetentionEvent, ...] = ()
    """Retention metrics: a unit is active on any of these events (each passing its filter)."""
    from_day: int = 0
    to_day: int = 0
    """Retention metrics: active in [exposure + from_day days, exposure + to_day days); only units exposed
    at least to_day days before the analysis end count (the others are maturing)."""
    steps: tuple[FunnelStep, ...] = ()
    """Funnels: the ordered steps (2 to 10); `window_seconds` bounds the whole funnel from exposure."""
    decide_on: int | None = None
    """Funnels: the step (1-based) whose conversion from exposure the decision reads (default the last)."""

    @property
    def event_names(self) -> tuple[str, ...]:
        """Every event name the metric reads itself: its event, a retention's events or a funnel's steps'."""
        if self.type == "retention":
            return tuple(dict.fromkeys(e.event for e in self.events))
        if self.type == "funnel":
            return tuple(dict.fromkeys(s.event for s in self.steps))
        return (self.event,) if self.event else ()


@dataclass(frozen=True, slots=True)
class MetricRole:
    metric: str
    role: Role


@dataclass(frozen=True, slots=True)
class Layer:
    """Experiments in one layer are mutually exclusive; a holdout share sees none of them."""

    key: str
    salt: str
    holdout_bp: int = 0


@dataclass(frozen=True, slots=True)
class Experiment:
    key: str
    flag: str
    variants: tuple[tuple[str, int], ...]
    """(flag variant, integer weight), in the order the split lists them."""
    salt: str
    allocation_bp: int = BASIS_POINTS
    """The share of eligible units in the experiment, in basis points."""
    eligibility: Any = None
    """A JsonLogic rule over the evaluation context; None means everyone."""
    unit: str = "targetingKey"
    """The context attribute that identifies the randomization unit."""
    layer: str | None = None
    slot_start: int | None = None
    """Where in its layer's traffic the experiment's slot begins (set when it starts running)."""
    state: State = "draft"
    phase: int = 0
    name: str = ""
    hypothesis: str = ""
    metrics: tuple[MetricRole, ...] = ()
    alpha: float = 0.05
    expected_units: int = 100_000
    """Units the experiment is planned to reach: the sequential test's design is tightest there (fixed in advance)."""
    planned: bool = False
    """Whether the definition set `expected_units`: then it is the planned reach of the planned-horizon
    design (stats.planned), which its results use by default; else the mixture test is tuned at the default."""
    mde: float = 0.05
    """The relative change of the primary metric the experiment should detect with 80% power (for progress)."""
    owner: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def slot(self) -> tuple[int, int] | None:
        """[start, end) in its layer's basis points, once it has a place there."""
        if self.slot_start is None:
            return None
        return self.slot_start, self.slot_start + self.allocation_bp
