"""Reductions read from the roll-ups, kept per worker by exactly what they were read from.

A reduction's key names the experiment phase, the metric's definition, each of its roll-ups'
versions (bumped by every catch-up that changed a row) and the units per variant it was filled
with. Equal keys mean equal rows, so a hit is the same answer the database would give; any new
event of a unit in the experiment bumps a version and misses. Bounded: the least recently used
entries go beyond `capacity`.

Beside them, the latest roll-up sums of each additive metric (flagd.results.live) with the versions
they were read at: not an answer by itself, but the start that a look after new events brings forward
by the changed units only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

from flagd.results.model import Reduction

Reductions = dict[str, Reduction]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Kept:
    """A metric's sums over the units with roll-up rows (None: no unit has one), at these versions of its
    roll-ups (in the order of its sources)."""

    versions: tuple[int, ...]
    rolled: Reduction | None


class ReductionCache:
    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[Hashable, Reductions] = OrderedDict()
        self._kept: OrderedDict[Hashable, Kept] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.forwarded = 0
        """Sums brought forward by a delta (flagd.results.live), not reduced from every unit."""

    def get(self, key: Hashable) -> Reductions | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Hashable, value: Reductions) -> None:
        _bounded_put(self._entries, key, value, self._capacity)

    def kept(self, key: Hashable) -> Kept | None:
        return self._kept.get(key)

    def keep(self, key: Hashable, value: Kept, *, hit: bool) -> None:
        """Keep `value`; `hit`: it is the kept value, read again with nothing to bring forward."""
        _bounded_put(self._kept, key, value, self._capacity)
        if hit:
            self.hits += 1
        else:
            self.misses += 1


def _bounded_put(entries: OrderedDict[Hashable, T], key: Hashable, value: T, capacity: int) -> None:
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > capacity:
        entries.popitem(last=False)
