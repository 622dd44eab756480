"""What the event writer stored and the validator refused, counted in memory and added to the database
every few seconds (GET /v1/admin/events/stats reads them). Counting per commit, not per request, keeps
the counters from contending with event writes; a worker killed between flushes loses at most its last
few seconds of counts, never events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from flagd.storage.types import Connection

logger = logging.getLogger(__name__)

_ADD_STORED = """
INSERT INTO event_counts (day, kind, name, count, last_seen)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
ON CONFLICT (day, kind, name) DO UPDATE SET
    count = event_counts.count + EXCLUDED.count,
    last_seen = greatest(event_counts.last_seen, EXCLUDED.last_seen)
"""
_ADD_REJECTED = """
INSERT INTO event_rejections (day, code, count, last_seen)
SELECT * FROM unnest($1::date[], $2::text[], $3::bigint[], $4::timestamptz[])
ON CONFLICT (day, code) DO UPDATE SET
    count = event_rejections.count + EXCLUDED.count,
    last_seen = greatest(event_rejections.last_seen, EXCLUDED.last_seen)
"""
_ADD_REFUSED = """
INSERT INTO exposure_rejections (day, experiment, code, count, last_seen)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
ON CONFLICT (day, experiment, code) DO UPDATE SET
    count = exposure_rejections.count + EXCLUDED.count,
    last_seen = greatest(exposure_rejections.last_seen, EXCLUDED.last_seen)
"""


@dataclass(slots=True)
class _Tally:
    count: int = 0
    last_seen: datetime | None = None

    def add(self, count: int, now: datetime) -> None:
        self.count += count
        self.last_seen = now if self.last_seen is None or now > self.last_seen else self.last_seen


@dataclass(slots=True)
class Counters:
    max_entries: int = 10_000
    """Distinct (day, kind, name) and (day, code) entries held between flushes; more are dropped and logged."""
    stored_counts: dict[tuple[date, str, str], _Tally] = field(default_factory=dict)
    rejected_counts: dict[tuple[date, str, str], _Tally] = field(default_factory=dict)
    """By (day, code, "")."""
    refused_counts: dict[tuple[date, str, str], _Tally] = field(default_factory=dict)
    """Exposures refused for an analysis, by (day, experiment, code): of defined experiments only."""
    dropped: int = 0

    def stored(self, kind: str, day: date, name: str, count: int, now: datetime) -> None:
        self._add(self.stored_counts, (day, kind, name), count, now)

    def rejected(self, day: date, code: str, count: int, now: datetime) -> None:
        self._add(self.rejected_counts, (day, code, ""), count, now)

    def refused_exposures(self, day: date, experiment: str, code: str, count: int, now: datetime) -> None:
        self._add(self.refused_counts, (day, experiment, code), count, now)

    def _add(
        self,
        table: dict[tuple[date, str, str], _Tally],
        key: tuple[date, str, str],
        count: int,
        now: datetime,
    ) -> None:
        tally = table.get(key)
        if tally is None:
            if (
                len(self.stored_counts) + len(self.rejected_counts) + len(self.refused_counts)
                >= self.max_entries
            ):
                self.dropped += count
                return
            tally = table[key] = _Tally()
        tally.add(count, now)

    async def flush(self, conn: Connection) -> None:
        """Add the counts to the database; on failure they are kept for the next flush."""
        stored, rejected, refused = self.stored_counts, self.rejected_counts, self.refused_counts
        if not stored and not rejected and not refused:
            return
        self.stored_counts, self.rejected_counts, self.refused_counts = {}, {}, {}
        try:
            async with conn.transaction():
                if stored:
                    await conn.execute(
                        _ADD_STORED,
                        [k[0] for k in stored],
                        [k[1] for k in stored],
                        [k[2] for k in stored],
                        [t.count for t in stored.values()],
                        [t.last_seen for t in stored.values()],
                    )
                if rejected:
                    await conn.execute(
                        _ADD_REJECTED,
                        [k[0] for k in rejected],
                        [k[1] for k in rejected],
                        [t.count for t in rejected.values()],
                        [t.last_seen for t in rejected.values()],
                    )
                if refused:
                    await conn.execute(
                        _ADD_REFUSED,
                        *([k[i] for k in refused] for i in range(3)),
                        [t.count for t in refused.values()],
                        [t.last_seen for t in refused.values()],
                    )
        except BaseException:
            for key, tally in stored.items():
                assert tally.last_seen is not None
                self.stored(key[1], key[0], key[2], tally.count, tally.last_seen)
            for rkey, tally in rejected.items():
                assert tally.last_seen is not None
                self.rejected(rkey[0], rkey[1], tally.count, tally.last_seen)
            for xkey, tally in refused.items():
                assert tally.last_seen is not None
                self.refused_exposures(xkey[0], xkey[1], xkey[2], tally.count, tally.last_seen)
            raise
