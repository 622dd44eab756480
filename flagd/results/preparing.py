"""A running experiment's first look before its roll-ups are built: "preparing, N% done", not a wait.

The first build of a phase's roll-ups reads every exposed unit's events (tens of seconds at a million
units). For the current phase of a running experiment the results keeper builds them in the background,
a roll-up (source) at a time, woken at once by the request that found one missing
(flagd.results.keeper); until they are all built, results requests are answered with how far it got.
Other phases (an ended experiment's, a rollout's) are still built by the request that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    experiment: str
    phase: int
    built: int
    """Roll-ups of the phase built so far."""
    rollups: int

    @property
    def percent_done(self) -> int:
        return int(100 * self.built / self.rollups) if self.rollups else 100

    @property
    def message(self) -> str:
        return (
            f"preparing, {self.percent_done}% done: the results of experiment {self.experiment} (phase "
            f"{self.phase}) are computed for the first time in the background ({self.built} of {self.rollups} "
            "per-unit roll-ups built); ask again in a few seconds"
        )


class Preparing(Exception):
    """Raised by a results read whose roll-ups are still being built in the background."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(progress.message)
        self.progress = progress
