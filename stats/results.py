"""What a test returns: numbers, or a data problem that says which and why."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stats.estimate import DataProblem


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    std_error: float
    problem: DataProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @classmethod
    def failed(cls, problem: DataProblem) -> AnalysisResult:
        nan = math.nan
        return cls(effect=nan, ci_low=nan, ci_high=nan, p_value=nan, std_error=nan, problem=problem)
