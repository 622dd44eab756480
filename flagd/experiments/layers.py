"""Where each experiment of a layer sits in the layer's traffic.

A layer's units are bucketed once, on the layer's salt, into 10,000 basis points. The
holdout takes [0, holdout); each running experiment owns a fixed slot [start, start +
allocation) that it keeps for as long as it runs, so starting or stopping one experiment
never moves a unit of another. A new experiment takes the first free range wide enough
(first fit); if none is, it is refused with the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from flagd.experiments.model import BASIS_POINTS, Experiment, Layer

HOLDOUT = "holdout"


def occupied(layer: Layer, running: Sequence[Experiment]) -> list[tuple[int, int, str]]:
    """(start, end, owner) of the holdout and every placed experiment, in order."""
    taken = [(0, layer.holdout_bp, HOLDOUT)] if layer.holdout_bp > 0 else []
    for experiment in running:
        if experiment.slot is not None:
            start, end = experiment.slot
            taken.append((start, end, experiment.key))
    return sorted(taken)


def free_ranges(layer: Layer, running: Sequence[Experiment]) -> list[tuple[int, int]]:
    ranges, cursor = [], 0
    for start, end, _ in occupied(layer, running):
        if start > cursor:
            ranges.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < BASIS_POINTS:
        ranges.append((cursor, BASIS_POINTS))
    return ranges


def place(layer: Layer, running: Sequence[Experiment], allocation_bp: int) -> int | str:
    """The start of a new slot of `allocation_bp`, or why there is none (a sentence with the numbers)."""
    free = free_ranges(layer, running)
    for start, end in free:
        if end - start >= allocation_bp:
            return start
    used = sum(end - start for start, end, _ in occupied(layer, running))
    widest = max((end - start for start, end in free), default=0)
    return (
        f"layer {layer.key!r} has {BASIS_POINTS - used} of {BASIS_POINTS} basis points free "
        f"(widest free range {widest}), and this experiment needs {allocation_bp}: lower its allocation, "
        "stop another experiment of the layer, or use another layer"
    )


def buckets(layer: Layer, running: Sequence[Experiment]) -> list[tuple[str, int]]:
    """The layer's whole traffic as consecutive (name, width) buckets for flagd's `fractional`."""
    parts: list[tuple[int, int, str]] = occupied(layer, running)
    parts += [(start, end, f"free-{i}") for i, (start, end) in enumerate(free_ranges(layer, running))]
    return [(name, end - start) for start, end, name in sorted(parts) if end > start]
