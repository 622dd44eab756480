"""Exposures checked against what really ran, before they are stored for an analysis.

The worker's snapshot holds every phase each experiment key ran (flagd.experiments.phases). An SDK can
see a new phase before this worker's snapshot does (another worker served it first), so an exposure
of an experiment or phase the snapshot does not know is looked up in the database once per request:
at most MAX_LOOKUPS experiment keys, in one query. What still does not match is refused, each event
with its code (unknown_experiment, unknown_phase, unknown_variant, outside_phase).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from flagd.experiments.phases import PhaseRecord, PhaseRegistry, Refusal, refusal, registry
from flagd.ingest.events import Batch, Event, Rejection
from flagd.ingest.fields import FieldProblem

MAX_LOOKUPS = 64
"""Experiment keys of one request looked up in the database when the snapshot does not know them."""

_FIELDS: dict[Refusal, str] = {
    "unknown_experiment": "experiment",
    "unknown_phase": "phase",
    "unknown_variant": "variant",
    "outside_phase": "timestamp",
}
"""The member of the exposure each refusal is about."""

Lookup = Callable[[Sequence[str]], Awaitable[Sequence[PhaseRecord]]]


async def checked(
    batch: Batch, known: PhaseRegistry, lookup: Lookup, skew: timedelta
) -> tuple[Batch, list[tuple[str, str]]]:
    """The batch with every exposure that does not belong to a phase that ran moved to its rejections, and
    (experiment, code) of each exposure refused."""
    exposures = [e for e in batch.accepted if e.kind == "exposure"]
    if not exposures:
        return batch, []
    missing = sorted({str(e.experiment) for e in exposures if _unknown(known, e)})
    phases: PhaseRegistry = known
    if missing:
        found = registry(await lookup(missing[:MAX_LOOKUPS]))
        phases = {**known, **found}

    def why(event: Event) -> FieldProblem | None:
        assert event.experiment is not None
        assert event.phase is not None
        assert event.variant is not None
        found = refusal(phases, event.experiment, event.phase, event.variant, event.timestamp, skew)
        return None if found is None else FieldProblem(_FIELDS[found[0]], found[0], found[1])

    return refuse_exposures(batch, why)


def refuse_exposures(
    batch: Batch, why: Callable[[Event], FieldProblem | None]
) -> tuple[Batch, list[tuple[str, str]]]:
    """The batch with every exposure that `why` finds a problem with moved to its rejections (in batch order),
    and (experiment, code) of each exposure refused."""
    indexes = accepted_indexes(batch)
    accepted: list[Event] = []
    rejected = list(batch.rejected)
    refused: list[tuple[str, str]] = []
    for index, event in zip(indexes, batch.accepted, strict=True):
        problem = why(event) if event.kind == "exposure" else None
        if problem is None:
            accepted.append(event)
        else:
            rejected.append(Rejection(index, problem.code, problem.message, (problem,)))
            refused.append((str(event.experiment), problem.code))
    rejected.sort(key=lambda r: r.index)
    return Batch(tuple(accepted), tuple(rejected)), refused


def _unknown(known: PhaseRegistry, event: Event) -> bool:
    phases = known.get(str(event.experiment))
    return phases is None or event.phase not in phases


def accepted_indexes(batch: Batch) -> list[int]:
    """The batch positions of the accepted events (in order: they are the positions not rejected)."""
    rejected = {r.index for r in batch.rejected}
    total = len(batch.accepted) + len(rejected)
    return [i for i in range(total) if i not in rejected]
