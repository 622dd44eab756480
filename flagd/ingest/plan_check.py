"""Track events checked against the tracking plan as they arrive (flagd.tracking.check).

An event whose mode is `enforce` and that breaks the plan is refused, every violation listed in its
`problems` (field: the violation's path); an event in `observe` mode is stored and each of its violations
counted. Every violation is counted per (day, event name, code, mode), refused or stored. Only track
events are checked; exposures have their own checks (flagd.ingest.exposure_check).
"""

from __future__ import annotations

from datetime import datetime

from flagd import metrics
from flagd.ingest.events import Batch, Event, Rejection
from flagd.ingest.exposure_check import accepted_indexes
from flagd.ingest.fields import FieldProblem
from flagd.tracking.check import CompiledPlan, UnplannedMode, Violation
from flagd.tracking.tallies import PlanTallies


def plan_checked(
    batch: Batch, plan: CompiledPlan, unplanned: UnplannedMode, tallies: PlanTallies, now: datetime
) -> Batch:
    """The batch with the events that enforce mode refuses moved to its rejections (in batch order); every
    violation counted in `tallies` and in /metrics, and the stored track events' properties observed."""
    observe = tallies.observations.observe
    if not plan.exists:
        for event in batch.accepted:
            if event.kind == "track":
                observe(str(event.name), event.attributes, event.timestamp)
        return batch
    accepted: list[Event] = []
    refused: list[Rejection] = []
    day = now.date()
    for index, event in zip(accepted_indexes(batch), batch.accepted, strict=True):
        if event.kind != "track":
            accepted.append(event)
            continue
        name = str(event.name)
        mode, violations = plan.check(name, event.value, event.attributes, unplanned)
        if violations:
            label = name if name in plan.events else "_unplanned"
            for violation in violations:
                tallies.violation((day, name, violation.code, mode or "observe"), now)
                metrics.EVENT_PLAN_VIOLATIONS.labels(label, violation.code, mode or "observe").inc()
            if mode == "enforce":
                refused.append(_rejection(index, violations))
                continue
        accepted.append(event)
        observe(name, event.attributes, event.timestamp)
    if not refused:
        return batch if len(accepted) == len(batch.accepted) else Batch(tuple(accepted), batch.rejected)
    return Batch(tuple(accepted), tuple(sorted((*batch.rejected, *refused), key=lambda r: r.index)))


def _rejection(index: int, violations: tuple[Violation, ...]) -> Rejection:
    first = violations[0]
    message = f"the event breaks the tracking plan: {first.message}"
    if len(violations) > 1:
        others = ", ".join(v.path for v in violations[1:])
        message += f" (and {len(violations) - 1} more, listed in problems: {others})"
    return Rejection(
        index, first.code, message, tuple(FieldProblem(v.path, v.code, v.message) for v in violations)
    )
