"""What each metric type means to the analysis: one table, read everywhere a type changes behaviour.

    type        analysed as              CUPED  values and lifts in       impact projected   progress
    conversion  share of units           yes    a share (pct. points)     per unit           yes
    count       events per unit          yes    events per unit           per unit           yes
    sum         value per unit           yes    value per unit            per unit           yes
    mean        ratio: value per event   no     value per event           per event x events no
    ratio       ratio of two metrics     no     the ratio                 no                 no
    nps         ratio over respondents   no     NPS points (-100..100)    no                 no
    csat        ratio over respondents   no     a share (pct. points)     no                 no
    ces         ratio over respondents   no     the score                 no                 no
    funnel      share reaching a step    no     a share (pct. points)     per unit           yes

NPS is analysed on its own scale: each respondent's +1 / 0 / -1 times 100, so the mean, the absolute lift
and its interval are all in NPS points.

A funnel is decided on the share of units that reach its `decide_on` step; each step's conversion from
exposure and from the previous step (a ratio) is analysed beside it (`flagd.results.funnels`).

A "ratio" type is analysed with the delta method over each unit's (y, d); the others over y alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flagd.experiments.model import MetricType


@dataclass(frozen=True, slots=True)
class MetricKind:
    ratio: bool
    """Analysed as sum(y) / sum(d) with the delta method (else as the mean of y per unit)."""
    cuped: bool
    """Has a pre-exposure covariate (the same events before the unit's exposure)."""
    scale: float = 1.0
    """Each unit's value is analysed times this (NPS: x 100, in points), the mean and lifts with it."""
    unit: str = "per unit"
    """What an absolute difference is in, as a decision quotes it."""
    percent_points: bool = False
    """An absolute difference of shares, quoted in percentage points."""
    impact: Literal["per unit", "per event", None] = None
    """How a lift projects to a total: per unit, per event (times control's events per unit), or not."""
    progress: bool = False
    """Whether the units needed to detect the planned change can be computed (a per-unit mean)."""
    survey: bool = False
    """Reads each unit's last answer; a unit that never answered is not in the denominator."""


KINDS: dict[MetricType, MetricKind] = {
    "conversion": MetricKind(
        ratio=False,
        cuped=True,
        impact="per unit",
        progress=True,
        unit="percentage points",
        percent_points=True,
    ),
    "count": MetricKind(ratio=False, cuped=True, impact="per unit", progress=True, unit="events per unit"),
    "sum": MetricKind(ratio=False, cuped=True, impact="per unit", progress=True),
    "mean": MetricKind(ratio=True, cuped=False, impact="per event", unit="per event"),
    "ratio": MetricKind(ratio=True, cuped=False, unit="in the ratio"),
    "nps": MetricKind(ratio=True, cuped=False, scale=100.0, survey=True, unit="NPS points"),
    "csat": MetricKind(ratio=True, cuped=False, survey=True, unit="percentage points", percent_points=True),
    "ces": MetricKind(ratio=True, cuped=False, survey=True, unit="points of the score"),
    "funnel": MetricKind(
        ratio=False,
        cuped=False,
        impact="per unit",
        progress=True,
        unit="percentage points",
        percent_points=True,
    ),
}


def kind(metric_type: MetricType) -> MetricKind:
    return KINDS[metric_type]
