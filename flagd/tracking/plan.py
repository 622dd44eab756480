"""The `events:` section of a flags-as-code document, read into a typed tracking plan, every problem located.

    events:
      $plan: {naming: snake_case, mode: enforce}     # optional; the defaults are snake_case and observe
      signup:
        description: A visitor created an account.
        owner: growth-team
        mode: enforce                                # this event's own mode (else the $plan mode)
        value: forbidden                             # required | optional (default) | forbidden
        additional_properties: false                 # refuse properties the plan does not name
        properties:
          plan: {type: string, required: true, enum: [free, pro]}
          seats: {type: integer, min: 1, max: 500}
          coupon: {type: string, max_length: 32, pattern: "[A-Z0-9]+"}

Pure: `read_plan` returns what it could read and appends a Problem for everything else.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flagd.identifiers import is_key
from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.problems import child, given

SECTION = "events"
OPTIONS_KEY = "$plan"
"""The entry of the section that holds the plan's own options (not an event: `$` starts no event name)."""
Mode = Literal["enforce", "observe"]
MODES: tuple[Mode, ...] = ("enforce", "observe")
PropertyType = Literal["string", "number", "integer", "boolean"]
TYPES: tuple[PropertyType, ...] = ("string", "number", "integer", "boolean")
ValueRule = Literal["required", "optional", "forbidden"]
VALUE_RULES: tuple[ValueRule, ...] = ("required", "optional", "forbidden")
NAMING: dict[str, re.Pattern[str]] = {
    "snake_case": re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", re.ASCII),
    "camel_case": re.compile(r"[a-z][a-zA-Z0-9]*", re.ASCII),
    "kebab_case": re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", re.ASCII),
    "dot_case": re.compile(r"[a-z][a-z0-9]*(?:\.[a-z0-9]+)*", re.ASCII),
    "any": re.compile(r".+", re.ASCII | re.DOTALL),
}
"""The naming rules an event or property name may have to follow."""
MAX_EVENTS = 1_000
MAX_PROPERTIES = 64
MAX_ENUM = 256
MAX_PATTERN = 200
MAX_TEXT = 2_000
_OPTION_MEMBERS = {"naming", "mode"}
_EVENT_MEMBERS = {"description", "owner", "mode", "value", "properties", "additional_properties"}
_PROPERTY_MEMBERS = {"type", "description", "required", "enum", "min", "max", "pattern", "max_length"}


@dataclass(frozen=True, slots=True)
class PropertySpec:
    name: str
    type: PropertyType
    required: bool = False
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    max_length: int | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    name: str
    description: str
    owner: str
    mode: Mode
    value: ValueRule
    additional_properties: bool
    properties: tuple[PropertySpec, ...]


@dataclass(frozen=True, slots=True)
class TrackingPlan:
    naming: str
    mode: Mode
    """The mode of the events that do not name their own."""
    events: Mapping[str, PlannedEvent]

    @classmethod
    def empty(cls) -> TrackingPlan:
        return cls("snake_case", "observe", {})

    @property
    def exists(self) -> bool:
        """A plan exists once it names an event: before that, nothing is checked."""
        return bool(self.events)


def read_plan(document: Mapping[str, Any], problems: list[Problem]) -> TrackingPlan:
    """The plan of `document` (empty when it has no `events`); its problems appended to `problems`."""
    raw = document.get(SECTION)
    if raw is None:
        return TrackingPlan.empty()
    if not isinstance(raw, dict):
        problems.append(Problem(SECTION, "must be an object mapping event names to their definitions"))
        return TrackingPlan.empty()
    options = raw.get(OPTIONS_KEY, {})
    naming, mode = _options(options, child(SECTION, OPTIONS_KEY), problems)
    rule = NAMING[naming]
    if len(raw) > MAX_EVENTS + 1:
        problems.append(Problem(SECTION, f"a plan names at most {MAX_EVENTS} events; got {len(raw) - 1}"))
        return TrackingPlan.empty()
    events: dict[str, PlannedEvent] = {}
    for name, entry in raw.items():
        if name == OPTIONS_KEY:
            continue
        path = child(SECTION, name)
        before = len(problems)
        if not is_key(name):
            problems.append(
                Problem(
                    path,
                    "an event name must start with a letter or digit and use only letters, digits, '.', '_', ':' and '-'",
                )
            )
            continue
        if rule.fullmatch(name) is None:
            problems.append(
                Problem(path, f"the event name does not follow the plan's naming rule ({naming})")
            )
        if not isinstance(entry, dict):
            problems.append(Problem(path, "must be an object (description, owner, properties, ...)"))
            continue
        event = _event(name, entry, path, mode, naming, problems)
        if event is not None and len(problems) == before:
            events[name] = event
    return TrackingPlan(naming, mode, events)


def _options(options: Any, path: str, problems: list[Problem]) -> tuple[str, Mode]:
    if not isinstance(options, dict):
        problems.append(Problem(path, "must be an object with naming and mode"))
        return "snake_case", "observe"
    _unknown(options, _OPTION_MEMBERS, path, problems)
    naming = options.get("naming", "snake_case")
    if not isinstance(naming, str) or naming not in NAMING:
        problems.append(
            Problem(child(path, "naming"), f"must be one of {', '.join(NAMING)}; got {given(naming)}")
        )
        naming = "snake_case"
    mode = options.get("mode", "observe")
    if mode not in MODES:
        problems.append(Problem(child(path, "mode"), f"must be enforce or observe; got {given(mode)}"))
        mode = "observe"
    return naming, mode


def _event(
    name: str, entry: Mapping[str, Any], path: str, mode: Mode, naming: str, problems: list[Problem]
) -> PlannedEvent | None:
    _unknown(entry, _EVENT_MEMBERS, path, problems)
    for text in ("description", "owner"):
        if text in entry and not (isinstance(entry[text], str) and len(entry[text]) <= MAX_TEXT):
            problems.append(Problem(child(path, text), f"must be text of at most {MAX_TEXT} characters"))
    own_mode = entry.get("mode", mode)
    if own_mode not in MODES:
        problems.append(Problem(child(path, "mode"), f"must be enforce or observe; got {given(own_mode)}"))
    value = entry.get("value", "optional")
    if value not in VALUE_RULES:
        problems.append(
            Problem(child(path, "value"), f"must be required, optional or forbidden; got {given(value)}")
        )
    additional = entry.get("additional_properties", True)
    if type(additional) is not bool:
        problems.append(Problem(child(path, "additional_properties"), "must be true or false"))
    raw_properties = entry.get("properties", {})
    properties: list[PropertySpec] = []
    where = child(path, "properties")
    if not isinstance(raw_properties, dict):
        problems.append(Problem(where, "must be an object mapping property names to their types"))
    elif len(raw_properties) > MAX_PROPERTIES:
        problems.append(Problem(where, f"an event has at most {MAX_PROPERTIES} planned properties"))
    else:
        for key, spec in raw_properties.items():
            prop = _property(key, spec, child(where, key), naming, problems)
            if prop is not None:
                properties.append(prop)
    if own_mode not in MODES or value not in VALUE_RULES or type(additional) is not bool:
        return None
    return PlannedEvent(
        name=name,
        description=str(entry.get("description", "")),
        owner=str(entry.get("owner", "")),
        mode=own_mode,
        value=value,
        additional_properties=additional,
        properties=tuple(properties),
    )


def _property(key: Any, spec: Any, path: str, naming: str, problems: list[Problem]) -> PropertySpec | None:
    before = len(problems)
    if not isinstance(key, str) or not key or len(key) > 64:
        problems.append(Problem(path, "a property name is text of 1 to 64 characters"))
        return None
    if NAMING[naming].fullmatch(key) is None:
        problems.append(Problem(path, f"the property name does not follow the plan's naming rule ({naming})"))
    if not isinstance(spec, dict):
        problems.append(Problem(path, "must be an object with at least a type"))
        return None
    _unknown(spec, _PROPERTY_MEMBERS, path, problems)
    kind = spec.get("type")
    if kind not in TYPES:
        problems.append(Problem(child(path, "type"), f"must be one of {', '.join(TYPES)}; got {given(kind)}"))
        return None
    required = spec.get("required", False)
    if type(required) is not bool:
        problems.append(Problem(child(path, "required"), "must be true or false"))
    enum = spec.get("enum")
    if enum is not None and (
        not isinstance(enum, list)
        or not enum
        or len(enum) > MAX_ENUM
        or any(not _is_type(item, kind) for item in enum)
    ):
        problems.append(
            Problem(child(path, "enum"), f"must be a list of 1 to {MAX_ENUM} values of type {kind}")
        )
    low, high = spec.get("min"), spec.get("max")
    for bound, member in ((low, "min"), (high, "max")):
        if bound is not None and (kind not in ("number", "integer") or not _is_type(bound, "number")):
            problems.append(Problem(child(path, member), "is a number, for number and integer properties"))
    if (
        low is not None
        and high is not None
        and _is_type(low, "number")
        and _is_type(high, "number")
        and low > high
    ):
        problems.append(Problem(child(path, "max"), f"must not be below min ({low})"))
    pattern = spec.get("pattern")
    if pattern is not None:
        if kind != "string" or not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN:
            problems.append(
                Problem(
                    child(path, "pattern"),
                    f"is a regular expression of at most {MAX_PATTERN} characters, for string properties",
                )
            )
        else:
            try:
                re.compile(pattern)
                nested = _nested_repeat(pattern)
            except re.error as exc:
                problems.append(Problem(child(path, "pattern"), f"is not a valid regular expression ({exc})"))
            else:
                if nested:
                    problems.append(
                        Problem(
                            child(path, "pattern"),
                            "repeats a group that is itself only a repetition (such as (a+)+): matching it can take "
                            "exponential time on every event; write it without the nested repetition",
                        )
                    )
    max_length = spec.get("max_length")
    if max_length is not None and (
        kind != "string" or type(max_length) is not int or not 1 <= max_length <= 100_000
    ):
        problems.append(Problem(child(path, "max_length"), "is a whole number from 1, for string properties"))
    description = spec.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_TEXT:
        problems.append(Problem(child(path, "description"), f"must be text of at most {MAX_TEXT} characters"))
    if len(problems) != before:
        return None
    return PropertySpec(
        name=key,
        type=kind,
        required=required,
        enum=tuple(enum) if enum is not None else None,
        min=low,
        max=high,
        pattern=pattern,
        max_length=max_length,
        description=description,
    )


def _nested_repeat(pattern: str) -> bool:
    """Whether a repetition repeats nothing but another repetition, as `(a+)+` or `((ab)*)*` do (the shape of
    catastrophic backtracking), read from the standard library's parse of the pattern."""
    parser: Any = importlib.import_module("re._parser")
    repeats = {parser.MAX_REPEAT, parser.MIN_REPEAT}

    def only_repeat(items: Any) -> bool:
        while len(items) == 1 and items[0][0] is parser.SUBPATTERN:
            items = items[0][1][3]
        return len(items) == 1 and items[0][0] in repeats

    def walk(items: Any) -> bool:
        for op, value in items:
            if op in repeats and (only_repeat(value[2]) or walk(value[2])):
                return True
            if op is parser.SUBPATTERN and walk(value[3]):
                return True
            if op is parser.BRANCH and any(walk(branch) for branch in value[1]):
                return True
        return False

    return bool(walk(parser.parse(pattern)))


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return type(value) is bool
    if kind == "integer":
        return type(value) is int or (type(value) is float and value.is_integer())
    return type(value) in (int, float)


def _unknown(entry: Mapping[str, Any], known: set[str], path: str, problems: list[Problem]) -> None:
    for member in entry:
        if member not in known:
            problems.append(
                Problem(child(path, str(member)), f"unknown member; use {', '.join(sorted(known))}")
            )


def unplanned_metric_events(
    plan: TrackingPlan, metric_events: Mapping[str, tuple[str, ...]]
) -> list[Problem]:
    """Once a plan exists, a metric may read only planned events: a problem at each metric that reads another."""
    if not plan.exists:
        return []
    problems = []
    for key, names in metric_events.items():
        for name in names:
            if name not in plan.events:
                problems.append(
                    Problem(
                        child("metrics", key),
                        f"reads the event {given(name)}, which the tracking plan (events) does not name; "
                        "add it to the plan or read a planned event",
                    )
                )
    return problems
