"""What a QA view says of each event of a unit it follows: whether it matches the tracking plan, and whether
it fired again within a second. `flagd events tail --check` prints it; GET /v1/events/live and the page
/events/live send it (flagd.tracking.live)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from flagd.ingest.repository import StoredEvent
from flagd.text import escape, escape_json
from flagd.tracking.check import CompiledPlan, UnplannedMode

REPEAT_SECONDS = 1.0
"""The same event of the same unit again within this long is reported as fired more than once."""
MAX_REMEMBERED = 10_000
"""(unit, event) pairs a TailCheck remembers for repeats; past it, it starts afresh."""
MAX_PER_EVENT = 8
"""Timestamps remembered per (unit, event): a repeat is found among the last this many of them."""


@dataclass(slots=True)
class TailCheck:
    """The plan's verdict on each event of a stream, and whether it fired again: fed events in the order they
    were stored, it remembers when each (unit, event) was last seen."""

    plan: CompiledPlan
    unplanned: UnplannedMode
    last: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    """The timestamps of the last few events of each (unit, kind:name), in the order they were fed."""

    def verdict(self, row: StoredEvent) -> dict[str, Any]:
        """{"matches", "planned", "violations", "repeatSeconds"} of a track event (exposures: only the
        repeat; `planned` is whether the plan names the event, None for exposures)."""
        violations: list[dict[str, str]] = []
        planned = None
        if row.kind == "track":
            properties = orjson.loads(row.data) if row.data else {}
            _, found = self.plan.check(row.name, row.value, properties, self.unplanned)
            violations = [{"code": v.code, "path": v.path, "message": v.message} for v in found]
            planned = row.name in self.plan.events
        key = (row.unit, f"{row.kind}:{row.name}")
        if key not in self.last and len(self.last) >= MAX_REMEMBERED:
            self.last.clear()
        seen = self.last.setdefault(key, [])
        # The nearest of the last few, not only the last: events stored together (one batch) come in id
        # order, not in the order of their timestamps.
        gap = min((abs((row.at - t).total_seconds()) for t in seen), default=None)
        seen.append(row.at)
        del seen[:-MAX_PER_EVENT]
        return {
            "matches": not violations,
            "planned": planned,
            "violations": violations,
            "repeatSeconds": gap if gap is not None and gap < REPEAT_SECONDS else None,
        }

    def annotate(self, row: StoredEvent, line: str, as_json: bool) -> str:
        verdict = self.verdict(row)
        if as_json:
            record = orjson.loads(line)
            record["check"] = verdict
            return escape_json(orjson.dumps(record).decode())
        notes = []
        if row.kind == "track":
            notes.append(
                "✓ matches the plan"
                if verdict["matches"]
                else "✗ "
                + "; ".join(f"{v['code']} {v['path']}: {v['message']}" for v in verdict["violations"])
            )
        if verdict["repeatSeconds"] is not None:
            notes.append(f"⚠ fired again {verdict['repeatSeconds']:.3f} s after the previous one")
        return line + ("\n    " + "  ".join(escape(n) for n in notes) if notes else "")
