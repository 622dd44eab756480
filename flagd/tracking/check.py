"""The tracking plan compiled once per config version, and one track event checked against it.

Each planned property becomes a small closure chosen by its type and rules when the plan is compiled
(its pattern compiled then too), so checking an event that is right costs a dict lookup per planned
property and allocates nothing. Every violation of an event is listed, each with a stable code and the
path of what is wrong:

| code | path | meaning |
|---|---|---|
| `unplanned_event` | `event` | the plan does not name the event |
| `bad_name` | `event`, `properties.NAME` | the name does not follow the plan's naming rule |
| `missing_property` | `properties.NAME` | a required property is absent (or null) |
| `unexpected_property` | `properties.NAME` | the event allows no properties beyond its plan |
| `wrong_type` | `properties.NAME` | the value is not of the planned type |
| `not_in_enum` | `properties.NAME` | the value is not one of the planned values |
| `out_of_range` | `properties.NAME` | the number is below min or above max |
| `too_long` | `properties.NAME` | the text is longer than max_length |
| `pattern_mismatch` | `properties.NAME` | the text does not match the pattern |
| `value_missing` | `value` | the event must carry a value |
| `value_unexpected` | `value` | the event must carry no value |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flagd.tracking.plan import NAMING, Mode, PlannedEvent, PropertySpec, TrackingPlan
from flagd_sdk.evaluation.problems import given

UnplannedMode = Literal["allow", "observe", "enforce"]
UNPLANNED_MODES: tuple[UnplannedMode, ...] = ("allow", "observe", "enforce")
VIOLATION_CODES = (
    "unplanned_event",
    "bad_name",
    "missing_property",
    "unexpected_property",
    "wrong_type",
    "not_in_enum",
    "out_of_range",
    "too_long",
    "pattern_mismatch",
    "value_missing",
    "value_unexpected",
)
MAX_VIOLATIONS = 10
"""Most violations listed for one event (the counts count each)."""


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    code: str
    message: str


Check = Callable[[Any], "Violation | None"]
"""A planned property's check of its (present, non-null) value."""


@dataclass(frozen=True, slots=True)
class CompiledEvent:
    mode: Mode
    value: str
    additional: bool
    checks: tuple[tuple[str, bool, Check], ...]
    """(property, required, check) for each planned property."""
    planned: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    exists: bool
    naming: str
    name_rule: re.Pattern[str]
    events: Mapping[str, CompiledEvent]
    plan: TrackingPlan = field(default_factory=TrackingPlan.empty)

    @classmethod
    def compile(cls, plan: TrackingPlan) -> CompiledPlan:
        return cls(
            exists=plan.exists,
            naming=plan.naming,
            name_rule=NAMING[plan.naming],
            events={name: _compile_event(event) for name, event in plan.events.items()},
            plan=plan,
        )

    def check(
        self, name: str, value: float | None, properties: Mapping[str, Any], unplanned: UnplannedMode
    ) -> tuple[Mode | None, tuple[Violation, ...]]:
        """The mode that applies to the event (None: not checked at all) and its violations (at most
        MAX_VIOLATIONS); `unplanned` is what the server does with events the plan does not name."""
        event = self.events.get(name)
        if event is None:
            if not self.exists or unplanned == "allow":
                return None, ()
            found = [
                Violation(
                    "event",
                    code="unplanned_event",
                    message=f"the tracking plan does not name the event {given(name)}; add it to the plan (events) or fix the name",
                )
            ]
            if self.name_rule.fullmatch(name) is None:
                found.append(_bad_name("event", name, self.naming))
            return ("enforce" if unplanned == "enforce" else "observe"), tuple(found)
        violations: list[Violation] | None = None
        for prop, required, check in event.checks:
            raw = properties.get(prop)
            if raw is None:
                if required:
                    violations = violations or []
                    violations.append(
                        Violation(
                            f"properties.{prop}",
                            code="missing_property",
                            message=f"the plan requires the property {prop}",
                        )
                    )
                continue
            problem = check(raw)
            if problem is not None:
                violations = violations or []
                violations.append(problem)
        if len(properties) > len(event.checks) or not event.planned.issuperset(properties):
            for key in properties:
                if key in event.planned:
                    continue
                violations = violations or []
                path = f"properties.{key[:64]}"
                if not event.additional:
                    violations.append(
                        Violation(
                            path,
                            code="unexpected_property",
                            message=f"the plan of {name} names no property {given(key)}; remove it or add it to the plan",
                        )
                    )
                elif self.name_rule.fullmatch(key) is None:
                    violations.append(_bad_name(path, key, self.naming))
        if value is None and event.value == "required":
            violations = violations or []
            violations.append(
                Violation("value", code="value_missing", message=f"the plan requires {name} to carry a value")
            )
        elif value is not None and event.value == "forbidden":
            violations = violations or []
            violations.append(
                Violation(
                    "value",
                    code="value_unexpected",
                    message=f"the plan says {name} carries no value; send none",
                )
            )
        return event.mode, tuple(violations[:MAX_VIOLATIONS]) if violations else ()


def _bad_name(path: str, name: str, naming: str) -> Violation:
    return Violation(
        path,
        code="bad_name",
        message=f"the name {given(name)} does not follow the plan's naming rule ({naming})",
    )


def _compile_event(event: PlannedEvent) -> CompiledEvent:
    return CompiledEvent(
        mode=event.mode,
        value=event.value,
        additional=event.additional_properties,
        checks=tuple((p.name, p.required, _compile_property(p)) for p in event.properties),
        planned=frozenset(p.name for p in event.properties),
    )


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


def _compile_property(spec: PropertySpec) -> Check:
    path = f"properties.{spec.name}"
    allowed = _TYPES[spec.type]
    wrong = f"{spec.name} must be {'an' if spec.type == 'integer' else 'a'} {spec.type}"
    enum = frozenset(spec.enum) if spec.enum is not None else None
    enum_shown = ", ".join(given(v) for v in spec.enum or ())
    low, high, longest = spec.min, spec.max, spec.max_length
    pattern = re.compile(spec.pattern) if spec.pattern is not None else None

    def check(raw: Any) -> Violation | None:
        kind = type(raw)
        if kind not in allowed and not (kind is float and spec.type == "integer" and raw.is_integer()):
            return Violation(path, code="wrong_type", message=f"{wrong}; got {given(raw)}")
        # Types are compared exactly above, so True never passes for 1 here.
        if enum is not None and raw not in enum:
            return Violation(
                path, code="not_in_enum", message=f"{spec.name} must be one of {enum_shown}; got {given(raw)}"
            )
        if (low is not None and raw < low) or (high is not None and raw > high):
            return Violation(
                path,
                code="out_of_range",
                message=f"{spec.name} must lie within [{_bound(low)}, {_bound(high)}]; got {given(raw)}",
            )
        if longest is not None and len(raw) > longest:
            return Violation(
                path, code="too_long", message=f"{spec.name} is at most {longest} characters; got {len(raw)}"
            )
        if pattern is not None and pattern.fullmatch(raw) is None:
            return Violation(
                path,
                code="pattern_mismatch",
                message=f"{spec.name} must match {spec.pattern}; got {given(raw)}",
            )
        return None

    return check


def _bound(bound: float | None) -> str:
    return "…" if bound is None else f"{bound:g}"
