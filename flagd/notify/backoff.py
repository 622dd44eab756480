"""When to try again, pure: exponential backoff with full jitter (Brooker, "Exponential Backoff And
Jitter", AWS Architecture Blog, 2015): the n-th retry waits a uniform random time in [0, min(cap, base·2ⁿ)],
so receivers coming back are not met by every sender at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_seconds: float
    cap_seconds: float

    def ceiling(self, failures: int) -> float:
        """The longest wait after `failures` failures in a row (1 for the first)."""
        exponent = min(max(failures - 1, 0), 62)  # 2**62 · base is past any cap
        return float(min(self.cap_seconds, self.base_seconds * 2.0**exponent))

    def delay(self, failures: int, uniform: Callable[[], float]) -> float:
        """A wait drawn with full jitter; `uniform` returns a number in [0, 1) (random.random)."""
        return self.ceiling(failures) * uniform()
