"""What the tracking plan saw in one worker, held in memory and added to the database every few seconds:
violations per (day, event name, code, mode), exact, and the observed schema's sample (flagd.tracking.observed).
Bounded like flagd.ingest.counters: more than `max_entries` distinct violation keys between flushes are
dropped and counted in `dropped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from flagd.storage.types import Connection
from flagd.tracking.observed import Observations
from flagd.tracking.repository import TrackingRepository

ViolationKey = tuple[date, str, str, str]


@dataclass(slots=True)
class PlanTallies:
    max_entries: int = 10_000
    violations: dict[ViolationKey, tuple[int, datetime]] = field(default_factory=dict)
    observations: Observations = field(default_factory=Observations)
    dropped: int = 0

    def violation(self, key: ViolationKey, now: datetime) -> None:
        held = self.violations.get(key)
        if held is None:
            if len(self.violations) >= self.max_entries:
                self.dropped += 1
                return
            self.violations[key] = (1, now)
        else:
            self.violations[key] = (held[0] + 1, max(held[1], now))

    async def flush(self, conn: Connection) -> None:
        """Add what was seen to the database; on failure it is kept for the next flush."""
        violations, self.violations = self.violations, {}
        names = self.observations.take()
        if not violations and not names:
            return
        try:
            async with conn.transaction():
                repository = TrackingRepository(conn)
                await repository.add_violations(violations)
                await repository.add_observations(names)
        except BaseException:
            for key, (count, last) in violations.items():
                held = self.violations.get(key, (0, last))
                self.violations[key] = (held[0] + count, max(held[1], last))
            self.observations.give_back(names)
            raise
