"""The tracking plan, its violation counts and the observed schema as flagd's JSON API sends them (camelCase),
shared by the admin routes and the CLI's --json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flagd.tracking.plan import PlannedEvent, TrackingPlan
from flagd.tracking.repository import ObservedEvent, ViolationCount


def plan_json(plan: TrackingPlan, unplanned: str) -> dict[str, Any]:
    return {
        "exists": plan.exists,
        "naming": plan.naming,
        "mode": plan.mode,
        "unplanned": unplanned,
        "events": [_event(event) for event in plan.events.values()],
    }


def _event(event: PlannedEvent) -> dict[str, Any]:
    return {
        "name": event.name,
        "description": event.description,
        "owner": event.owner,
        "mode": event.mode,
        "value": event.value,
        "additionalProperties": event.additional_properties,
        "properties": [
            {
                "name": p.name,
                "type": p.type,
                "required": p.required,
                "enum": list(p.enum) if p.enum is not None else None,
                "min": p.min,
                "max": p.max,
                "pattern": p.pattern,
                "maxLength": p.max_length,
                "description": p.description,
            }
            for p in event.properties
        ],
    }


def violations_json(counts: Sequence[ViolationCount]) -> list[dict[str, Any]]:
    return [
        {
            "day": c.day.isoformat(),
            "event": c.name,
            "code": c.code,
            "mode": c.mode,
            "count": c.count,
            "lastSeen": c.last_seen.isoformat(),
        }
        for c in counts
    ]


def observed_json(observed: Sequence[ObservedEvent]) -> list[dict[str, Any]]:
    result = []
    for event in observed:
        by_name: dict[str, dict[str, Any]] = {}
        for prop in event.properties:
            entry = by_name.setdefault(
                prop.property,
                {
                    "name": prop.property,
                    "types": {},
                    "present": 0,
                    "nulls": 0,
                    "firstSeen": prop.first_seen,
                    "lastSeen": prop.last_seen,
                    "examples": [],
                },
            )
            entry["types"][prop.type] = prop.seen
            entry["nulls" if prop.type == "null" else "present"] += prop.seen
            entry["firstSeen"] = min(entry["firstSeen"], prop.first_seen)
            entry["lastSeen"] = max(entry["lastSeen"], prop.last_seen)
            entry["examples"] += [e for e in prop.examples if e not in entry["examples"]][:5]
        properties = []
        for entry in by_name.values():
            total = max(event.events, 1)
            properties.append(
                {
                    "name": entry["name"],
                    "types": entry["types"],
                    "sharePresent": round(entry["present"] / total, 4),
                    "shareNull": round(entry["nulls"] / total, 4),
                    "firstSeen": entry["firstSeen"].isoformat(),
                    "lastSeen": entry["lastSeen"].isoformat(),
                    "examples": entry["examples"][:5],
                }
            )
        result.append(
            {
                "name": event.name,
                "sampledEvents": event.events,
                "firstSeen": event.first_seen.isoformat(),
                "lastSeen": event.last_seen.isoformat(),
                "properties": properties,
            }
        )
    return result
