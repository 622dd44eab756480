"""Reductions read from the roll-ups, kept per worker by exactly what they were read from.

A reduction's key names the experiment phase, the metric's definition, each of its roll-ups'
versions (bumped by every catch-up that changed a row) and the units per variant it was filled
with. Equal keys mean equal rows, so a hit is the same answer the database would give; any new
event of a unit in the experiment bumps a version and misses. Bounded: the least recently used
entries go beyond `capacity`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from flagd.results.model import Reduction

Reductions = dict[str, Reduction]


class ReductionCache:
    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[Hashable, Reductions] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Reductions | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Hashable, value: Reductions) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
