"""The typed values of results: what the phase reader returns, and what the pure analysis returns.

Inputs (read from the database by `flagd.results.phase_reader`):
    VariantSums       a variant's sufficient statistics of one metric: add, and start from zero
    QuantileSums      a variant's quantile of a quantile metric, with what its interval is read from
    Reduction         one metric's sums per variant (and the cap applied)
    ExposureTally     units per variant and per day of the phase
    Volumes           metric events per name and day since the phase began
    SegmentData       the same reductions broken down by one exposure attribute
    PhaseData         all of the above for one experiment phase

Outputs (built by `flagd.results.analysis`, `judgments` and `decision`, frozen):
    Estimate | NoEstimate      one test's answer
    Comparison, MetricResult   a treatment against control, a metric over all treatments
    Check, Decision, Verdict   health, the recommendation, guardrails
    ExperimentResults, Timeseries, ExperimentSummary

Nothing here is JSON: `flagd.results.wire` writes these values in the API's casing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar, Literal

from flagd.experiments.model import Direction, MetricType, QuantileLevel, Role

Action = Literal["investigate", "stop", "ship", "keep running"]
Correction = Literal["holm", "bh", "none"]


# --- inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariantSums:
    """n units; sums of y, y², d, d², y·d, x, x², x·y over them (reduce.py says what y, d, x are)."""

    n: int = 0
    y: float = 0.0
    y2: float = 0.0
    d: float = 0.0
    d2: float = 0.0
    yd: float = 0.0
    x: float = 0.0
    x2: float = 0.0
    xy: float = 0.0

    FIELDS: ClassVar[tuple[str, ...]] = ("n", "y", "y2", "d", "d2", "yd", "x", "x2", "xy")

    def __add__(self, other: VariantSums) -> VariantSums:
        return VariantSums(*(getattr(self, f) + getattr(other, f) for f in self.FIELDS))

    def with_units_without_events(self, count: int, d: float) -> VariantSums:
        """These sums with `count` more units that had no event: y = x = 0 and the given d each."""
        return self + VariantSums(n=count, d=count * d, d2=count * d * d)


ZERO = VariantSums()


@dataclass(frozen=True, slots=True)
class QuantileSums:
    """A variant's sample quantile Q of a quantile metric (flagd.results.sql.quantile, stats.quantile).

    With a_i the unit's values at or below Q and N_i its values (1 each, at the unit level)."""

    units: int
    values: int
    """N = sum N_i."""
    quantile: float
    below: float
    """sum a_i."""
    below_squares: float
    values_squares: float
    below_values: float
    """sum a_i N_i."""
    low: float
    high: float
    """The order statistics at the ranks of the fraction's interval (stats.QuantileSample.interval_ranks)."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "units",
        "values",
        "quantile",
        "below",
        "below_squares",
        "values_squares",
        "below_values",
        "low",
        "high",
    )


@dataclass(frozen=True, slots=True)
class Reduction:
    metric: str
    variants: dict[str, VariantSums]
    cap: float | None = None
    """The cap applied to per-unit values (None: not winsorised)."""
    quantiles: dict[str, QuantileSums] = field(default_factory=dict)
    """A quantile metric's per-variant quantiles (its `variants` then hold only the units, n)."""
    maturing: dict[str, int] | None = None
    """Retention metrics: per variant, the exposed units whose window is not over yet (not in the sums)."""
    reached: dict[str, tuple[int, ...]] | None = None
    """Funnels: per variant, the units that completed each step (step 1 first)."""

    def sums(self, variant: str) -> VariantSums:
        return self.variants.get(variant, ZERO)


@dataclass(frozen=True, slots=True)
class ExposureTally:
    units: dict[str, int]
    """Units per variant (first assignment), units seen in several variants left out."""
    multiple: int
    """Units seen in more than one variant."""
    daily: dict[date, int]
    """Units first exposed per day (UTC), every unit counted."""
    since_start: int = 0
    """Units first exposed since the phase started (not earlier, with a backdated timestamp)."""

    @property
    def total(self) -> int:
        return sum(self.units.values())


@dataclass(frozen=True, slots=True)
class Freshness:
    data_through: datetime | None
    """When the roll-ups read were last caught up (the oldest of them)."""
    latest_event_received: datetime | None


@dataclass(frozen=True, slots=True)
class SegmentData:
    attribute: str
    population: dict[str, dict[str, int]]
    """Units per segment value and variant (the largest values; the rest together as "(other)")."""
    reductions: dict[str, dict[str, Reduction]]
    """Per metric key, per segment value."""


@dataclass(frozen=True, slots=True)
class DataAlarm:
    """An open data-health alarm (flagd.health) on an event a metric reads."""

    event: str
    kind: str
    subject: str
    summary: str
    advice: str


@dataclass(frozen=True, slots=True)
class PhaseData:
    """Everything the analysis of one experiment phase needs from the database."""

    phase: int
    now: datetime
    tally: ExposureTally
    reductions: dict[str, Reduction]
    """Per metric key: its sums per variant."""
    volumes: dict[str, dict[date, int]]
    """Per event name the experiment's metrics read: events per day, since the phase began."""
    never_arrived: tuple[str, ...]
    """Those event names no event has ever had."""
    phase_start: date
    freshness: Freshness
    segments: SegmentData | None = None
    started_at: datetime | None = None
    """When the phase started (None for a phase stored before that was recorded)."""
    ended_at: datetime | None = None
    """When it ended (None while it runs)."""
    events_since_start: int = 0
    """Metric events received since the phase started (at most EVENTS_COUNTED)."""
    refused: dict[str, int] = field(default_factory=dict)
    """Exposures refused for this experiment since the phase began, by code (flagd.experiments.phases)."""
    data_alarms: tuple[DataAlarm, ...] = ()
    """Open data-health alarms on the events the metrics read."""


# --- outputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatisticProblem:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class NoEstimate:
    """A test that could not be computed, and why (too few units, no variance, ...)."""

    problem: StatisticProblem


@dataclass(frozen=True, slots=True)
class Estimate:
    effect: float
    ci_low: float
    ci_high: float
    """Either end may be infinite (the relative interval while control's mean is near zero)."""
    p_value: float
    p_value_adjusted: float | None = None
    """Across the experiment's metrics x treatments (relative scale only)."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"p_value_adjusted"})


TestResult = Estimate | NoEstimate


@dataclass(frozen=True, slots=True)
class Scale:
    fixed_horizon: TestResult
    sequential: TestResult


@dataclass(frozen=True, slots=True)
class Projection:
    effect: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Impact:
    eligible_units_per_day: float
    events_per_unit: float | None
    per_day: Projection
    per_year: Projection


@dataclass(frozen=True, slots=True)
class Comparison:
    variant: str
    absolute: Scale
    relative: Scale
    chance_to_beat_control: float | None
    impact: Impact | None = None


@dataclass(frozen=True, slots=True)
class VariantSummary:
    variant: str
    units: int
    """The units analysed (a retention metric's matured ones)."""
    mean: float | None
    maturing: int | None = None
    """Retention metrics: exposed units whose window is not over yet, not in `units` or the mean."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"maturing"})


@dataclass(frozen=True, slots=True)
class MetricResult:
    metric: str
    role: Role
    type: MetricType
    direction: Direction
    cuped: bool
    cap: float | None
    variants: tuple[VariantSummary, ...]
    """Each variant's units and value: its mean, or for a quantile metric its quantile."""
    comparisons: tuple[Comparison, ...]
    quantile: float | None = None
    """A quantile metric's p (its variants' values and differences are quantiles)."""
    level: QuantileLevel | None = None
    """A quantile metric's level: unit or event."""
    steps: tuple[FunnelStepResult, ...] | None = None
    """Funnels: every step (the metric's own numbers are its deciding step's conversion from exposure)."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"quantile", "level", "steps"})


@dataclass(frozen=True, slots=True)
class FunnelStepResult:
    """One step of a funnel: the units that reached it per variant, and its two conversions analysed."""

    step: int
    event: str
    reached: tuple[VariantUnits, ...]
    from_exposure: MetricResult
    """The share of the variant's units that reached this step (a conversion)."""
    from_previous: MetricResult | None
    """Of the units that reached the previous step, the share that reached this one (a ratio, by the delta
    method); None for the first step."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"from_previous"})


@dataclass(frozen=True, slots=True)
class SampleRatio:
    p_value: float
    mismatch: bool
    chi_squared: float


@dataclass(frozen=True, slots=True)
class Check:
    check: str
    ok: bool
    found: str
    todo: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    metric: str
    variant: str
    verdict: Literal["harmed", "not harmed", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Progress:
    mde: float
    needed_units: int | None
    units: int
    days_remaining: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    failed_checks: tuple[str, ...] | None = None
    variant: str | None = None

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"failed_checks", "variant"})


@dataclass(frozen=True, slots=True)
class VariantUnits:
    variant: str
    units: int


@dataclass(frozen=True, slots=True)
class SegmentValue:
    value: str
    units: int
    metrics: tuple[MetricResult, ...]


@dataclass(frozen=True, slots=True)
class Segments:
    attribute: str
    warning: str
    values: tuple[SegmentValue, ...]
    omitted: int = 0
    """Segment values left out of the answer to keep it within MAX_SEGMENT_COMPARISONS."""


@dataclass(frozen=True, slots=True)
class DesignInForce:
    """Which always-valid test the results' sequential numbers come from, and where the look stands.

    planned: the planned-horizon design (stats.planned) at `information_fraction` of `planned_units`,
    its `looks`-th look with the boundary |z| >= `boundary`; past the plan (`past_plan`) the mixture test
    answers. mixture: the always-valid mixture test, tightest at `planned_units` (stats.sequential)."""

    method: Literal["planned", "mixture"]
    planned_units: int
    information_fraction: float
    looks: int | None = None
    boundary: float | None = None
    past_plan: bool = False


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    experiment: str
    phase: int
    state: str
    as_of: datetime
    freshness: Freshness
    control: str
    alpha: float
    correction: Correction
    units: tuple[VariantUnits, ...]
    units_in_several_variants: int
    sample_ratio: SampleRatio | NoEstimate
    decision: Decision
    health: tuple[Check, ...]
    guardrails: tuple[Verdict, ...]
    progress: Progress | None
    units_per_day: float | None
    metrics: tuple[MetricResult, ...]
    segments: Segments | None = None
    refused_exposures: dict[str, int] = field(default_factory=dict)
    """Exposures refused for this experiment since the phase began, by code: they are in no analysis."""
    headline: str = ""
    """The results in one sentence, with the metrics' and variants' names (the page's headline)."""
    design: DesignInForce | None = None
    """The always-valid test in force (None only where no analysis ran)."""

    @property
    def exposed(self) -> int:
        return sum(u.units for u in self.units) + self.units_in_several_variants


@dataclass(frozen=True, slots=True)
class SeriesComparison:
    variant: str
    absolute: TestResult
    relative: TestResult


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    day: date
    units: dict[str, int]
    comparisons: tuple[SeriesComparison, ...]


@dataclass(frozen=True, slots=True)
class Timeseries:
    experiment: str
    phase: int
    metric: str
    control: str
    days: tuple[SeriesPoint, ...]
    pending_days: tuple[date, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    key: str
    name: str
    flag: str | None
    state: str
    phase: int
    primary_metric: str | None
    units: int
    headline: Decision | None
    results: str | None
    """The path of its results; None for a draft, which has none until it starts."""
