"""Token buckets in memory, one per name (a client address, a key), at most `capacity` names.

Each bucket holds up to `burst` tokens and gains `rate` a second; a request takes one or is refused with how
long until one is there. The buckets live in one worker: with N workers a client may get up to N times the
rate, as the requests spread. Names are kept least recently used first and the oldest forgotten past
`capacity` (a forgotten name starts again with a full bucket), so a scan from many addresses costs bounded
memory. The clock is the event loop's monotonic time, passed in: the buckets do no I/O.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: int


class Buckets:
    def __init__(self, rate: Rate, capacity: int) -> None:
        self.rate = rate
        self._capacity = capacity
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        """By name: (tokens, when they were counted)."""

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, name: Hashable, now: float) -> float:
        """0 when `name` may go on (one token taken); else the seconds until it may."""
        rate = self.rate
        tokens, then = self._buckets.get(name, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - then) * rate.per_second)
        if tokens >= 1.0:
            self._remember(name, (tokens - 1.0, now))
            return 0.0
        self._remember(name, (tokens, now))
        return (1.0 - tokens) / rate.per_second

    def _remember(self, name: Hashable, bucket: tuple[float, float]) -> None:
        self._buckets[name] = bucket
        self._buckets.move_to_end(name)
        if len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)


def retry_after(seconds: float) -> str:
    """The Retry-After header's whole seconds: rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
