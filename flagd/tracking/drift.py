"""How what really arrives differs from the tracking plan: a pure comparison of the observed schema with it.

| kind | meaning |
|---|---|
| `unplanned_event` | events of a name the plan does not name arrive |
| `new_property` | a planned event carries a property its plan does not name |
| `type_change` | a property arrives with a type other than the planned one (or, unplanned, with two types) |
| `property_disappeared` | a planned property was not seen in the last DISAPPEARED_AFTER of its event's arrivals (a required one: or never) |
| `enum_value_not_planned` | an example value of a property is not one of its planned values |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flagd.tracking.plan import TrackingPlan
from flagd.tracking.repository import ObservedEvent

DISAPPEARED_AFTER = timedelta(hours=1)
_PLANNED_TYPES = {
    "string": {"string"},
    "number": {"number", "integer"},
    "integer": {"integer"},
    "boolean": {"boolean"},
}


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    event: str
    property: str | None
    message: str
    since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "event": self.event,
            "property": self.property,
            "message": self.message,
            "since": self.since.isoformat() if self.since else None,
        }


def differences(plan: TrackingPlan, observed: Sequence[ObservedEvent]) -> list[Difference]:
    found: list[Difference] = []
    for event in observed:
        planned = plan.events.get(event.name)
        if planned is None:
            if plan.exists:
                found.append(
                    Difference(
                        "unplanned_event",
                        event.name,
                        None,
                        f"{event.name} arrives but the plan does not name it",
                        event.first_seen,
                    )
                )
            types: dict[str, list[str]] = {}
            for prop in event.properties:
                if prop.type != "null":
                    types.setdefault(prop.property, []).append(prop.type)
            for name, kinds in types.items():
                if len(kinds) > 1:
                    found.append(
                        Difference(
                            "type_change", event.name, name, f"{name} arrives as {' and '.join(kinds)}"
                        )
                    )
            continue
        specs = {p.name: p for p in planned.properties}
        seen_names = set()
        for prop in event.properties:
            seen_names.add(prop.property)
            spec = specs.get(prop.property)
            if spec is None:
                found.append(
                    Difference(
                        "new_property",
                        event.name,
                        prop.property,
                        f"{prop.property} arrives ({prop.type}) but the plan of {event.name} does not name it",
                        prop.first_seen,
                    )
                )
                continue
            if prop.type != "null" and prop.type not in _PLANNED_TYPES[spec.type]:
                found.append(
                    Difference(
                        "type_change",
                        event.name,
                        prop.property,
                        f"{prop.property} is planned as {spec.type} but arrives as {prop.type}",
                        prop.first_seen,
                    )
                )
            if spec.enum is not None:
                unplanned = [v for v in prop.examples if v not in spec.enum]
                if unplanned:
                    found.append(
                        Difference(
                            "enum_value_not_planned",
                            event.name,
                            prop.property,
                            f"{prop.property} arrives with {', '.join(repr(v) for v in unplanned)}, not among its planned values",
                            prop.first_seen,
                        )
                    )
        for name in specs:
            props = [p for p in event.properties if p.property == name and p.type != "null"]
            last = max((p.last_seen for p in props), default=None)
            if (last is None and specs[name].required) or (
                last is not None and last < event.last_seen - DISAPPEARED_AFTER
            ):
                found.append(
                    Difference(
                        "property_disappeared",
                        event.name,
                        name,
                        f"{name} is planned but has not arrived with {event.name}"
                        + (f" since {last.isoformat()}" if last else ""),
                        last,
                    )
                )
    return found
