"""Track events checked against the tracking plan as they arrive (flagd.tracking.check).

An event whose mode is `enforce` and that breaks the plan is refused, every violation listed in its
`problems` (field: the violation's path); an event in `observe` mode is stored and each of its violations
counted. Every violation is counted per (day, event name, code, mode), refused or stored: those of refused
events at once, those of stored events once their commit succeeded (`Verdicts.count`), so a batch answered
503 counts nothing. Only track events are checked; exposures have their own checks
(flagd.ingest.exposure_check).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from flagd import metrics
from flagd.ingest.events import Batch, Rejection
from flagd.ingest.exposure_check import accepted_indexes
from flagd.ingest.fields import FieldProblem
from flagd.tracking.check import CompiledPlan, UnplannedMode, Violation
from flagd.tracking.tallies import PlanTallies


@dataclass(slots=True)
class Verdicts:
    """The violations of the events a batch keeps, counted once they are stored."""

    tallies: PlanTallies
    planned: Mapping[str, object]
    kept: list[tuple[str, tuple[Violation, ...]]] = field(default_factory=list)

    def count(self, now: datetime) -> None:
        for name, violations in self.kept:
            _count(name, name in self.planned, "observe", violations, self.tallies, now)
        self.kept.clear()


def plan_checked(
    batch: Batch, plan: CompiledPlan, unplanned: UnplannedMode, tallies: PlanTallies, now: datetime
) -> tuple[Batch, Verdicts]:
    """The batch with the events that enforce mode refuses moved to its rejections (in batch order), and the
    violations of the others, to count once they are stored; the refused events' violations are counted in
    `tallies` and in /metrics now, and the kept track events' properties observed."""
    observe = tallies.observations.observe
    verdicts = Verdicts(tallies, plan.events)
    if not plan.exists:
        for event in batch.accepted:
            if event.kind == "track":
                observe(event.name or "", event.attributes, event.timestamp)
        return batch, verdicts
    check = plan.check
    refused: dict[int, tuple[Violation, ...]] = {}
    """By position among the accepted events: only an event that breaks the plan costs more than the check."""
    for position, event in enumerate(batch.accepted):
        if event.kind != "track":
            continue
        name = event.name or ""
        mode, violations = check(name, event.value, event.attributes, unplanned)
        if not violations:
            observe(name, event.attributes, event.timestamp)
            continue
        if mode == "enforce":
            _count(name, name in plan.events, "enforce", violations, tallies, now)
            refused[position] = violations
        else:
            verdicts.kept.append((name, violations))
            observe(name, event.attributes, event.timestamp)
    if not refused:
        return batch, verdicts
    indexes = accepted_indexes(batch)
    accepted = tuple(e for position, e in enumerate(batch.accepted) if position not in refused)
    rejections = [_rejection(indexes[position], violations) for position, violations in refused.items()]
    return Batch(accepted, tuple(sorted((*batch.rejected, *rejections), key=lambda r: r.index))), verdicts


def _count(
    name: str,
    planned: bool,
    mode: str,
    violations: tuple[Violation, ...],
    tallies: PlanTallies,
    now: datetime,
) -> None:
    day = now.date()
    label = name if planned else "_unplanned"
    for violation in violations:
        tallies.violation((day, name, violation.code, mode), now)
        metrics.EVENT_PLAN_VIOLATIONS.labels(label, violation.code, mode).inc()


def _rejection(index: int, violations: tuple[Violation, ...]) -> Rejection:
    first = violations[0]
    message = f"the event breaks the tracking plan: {first.message}"
    if len(violations) > 1:
        others = ", ".join(v.path for v in violations[1:])
        message += f" (and {len(violations) - 1} more, listed in problems: {others})"
    return Rejection(
        index, first.code, message, tuple(FieldProblem(v.path, v.code, v.message) for v in violations)
    )
