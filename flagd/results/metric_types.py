"""What each metric type means to the analysis: one table, read everywhere a type changes behaviour.

    type        analysed as              CUPED  mean shown as       impact projected   progress
    conversion  share of units           yes    share               per unit           yes
    count       events per unit          yes    per unit            per unit           yes
    sum         value per unit           yes    per unit            per unit           yes
    mean        ratio: value per event   no     per event           per event x events no
    ratio       ratio of two metrics     no     ratio               no                 no
    nps         ratio over respondents   no     x 100 (points)      no                 no
    csat        ratio over respondents   no     share               no                 no
    ces         ratio over respondents   no     score               no                 no

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
    mean_scale: float = 1.0
    """The shown mean is sum(y) / sum(d) (or per unit) times this."""
    impact: Literal["per unit", "per event", None] = None
    """How a lift projects to a total: per unit, per event (times control's events per unit), or not."""
    progress: bool = False
    """Whether the units needed to detect the planned change can be computed (a per-unit mean)."""
    survey: bool = False
    """Reads each unit's last answer; a unit that never answered is not in the denominator."""


KINDS: dict[MetricType, MetricKind] = {
    "conversion": MetricKind(ratio=False, cuped=True, impact="per unit", progress=True),
    "count": MetricKind(ratio=False, cuped=True, impact="per unit", progress=True),
    "sum": MetricKind(ratio=False, cuped=True, impact="per unit", progress=True),
    "mean": MetricKind(ratio=True, cuped=False, impact="per event"),
    "ratio": MetricKind(ratio=True, cuped=False),
    "nps": MetricKind(ratio=True, cuped=False, mean_scale=100.0, survey=True),
    "csat": MetricKind(ratio=True, cuped=False, survey=True),
    "ces": MetricKind(ratio=True, cuped=False, survey=True),
}


def kind(metric_type: MetricType) -> MetricKind:
    return KINDS[metric_type]
