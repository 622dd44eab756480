"""One batch of events, validated event by event: a bad event is reported, its neighbours are kept.

    {"events": [
      {"kind": "exposure", "event_id": "<uuid>", "timestamp": "2026-11-24T10:00:00Z" | <epoch ms>,
       "experiment": "<key>", "phase": 1, "variant": "<name>", "unit": "<id>", "attributes": {"country": "NL"}},
      {"kind": "track", "event_id": "<uuid>", "timestamp": ..., "event": "<name>", "unit": "<id>",
       "value": 12.5, "properties": {...}}
    ]}

Each rejection has the event's index, a stable code and a sentence saying what to fix: those of its first
problem, and, in `problems`, every problem of the event (at most MAX_PROBLEMS), each with its field. An event
is read at full speed until its first problem; only a refused event is read again for the others.

A timestamp is RFC 3339 (`2026-11-24T10:00:00Z`, `2026-11-24t10:00:00.5+01:00`: date, `T` or `t`,
time, fraction after a dot, then `Z`, `z` or an offset) or whole milliseconds since 1970; nothing
else (ISO 8601's week dates, basic format or hour-only times are not RFC 3339). Properties nest at
most `max_properties_depth` levels (the object itself is the first) and hold integers within
64 bits: anything else is refused, never stored rounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from flagd.ingest import fields
from flagd_sdk.evaluation.problems import given

Kind = Literal["exposure", "track"]
_EXPOSURE_MEMBERS = {"kind", "event_id", "timestamp", "experiment", "phase", "variant", "unit", "attributes"}
_TRACK_MEMBERS = {"kind", "event_id", "timestamp", "event", "unit", "value", "properties"}
MAX_PROBLEMS = 10
"""Most problems listed for one refused event."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: Kind
    event_id: str
    """The event's UUID in its canonical lowercase form."""
    timestamp: datetime
    unit: str
    experiment: str | None = None
    phase: int | None = None
    variant: str | None = None
    name: str | None = None
    value: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    """Exposure attributes, or track properties."""
    payload: str | None = None
    """`attributes` as JSON text, as stored (None when there are none)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    code: str
    message: str
    problems: tuple[fields.FieldProblem, ...] = ()
    """Every problem of a refused event, the first one's code and message being the rejection's."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "code": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [p.to_json() for p in self.problems]
        return body


@dataclass(frozen=True, slots=True)
class Batch:
    accepted: tuple[Event, ...]
    rejected: tuple[Rejection, ...]


def read_batch(document: Any, limits: fields.EventLimits, now: datetime) -> Batch | Rejection:
    """The events of a batch document; a Rejection (index -1) when the document itself is unusable."""
    if not isinstance(document, dict) or set(document) != {"events"}:
        return Rejection(
            -1, "malformed_batch", 'a batch is an object with one member, "events": a list of events'
        )
    events = document["events"]
    if not isinstance(events, list):
        return Rejection(-1, "malformed_batch", '"events" must be a list')
    if len(events) > limits.max_events:
        return too_many_events(len(events), limits.max_events, limits.batch_setting)
    accepted, rejected = [], []
    for index, raw in enumerate(events):
        try:
            accepted.append(_event(raw, limits, now))
        except fields.Invalid as invalid:
            rejected.append(_rejection(index, raw, limits, now, invalid.problem))
    return Batch(tuple(accepted), tuple(rejected))


def too_many_events(count: int, limit: int, setting: str = "FLAGD_EVENTS_MAX_BATCH") -> Rejection:
    """The refusal of a whole batch of `count` events, past the limit (set by `setting`); the same for JSON
    and msgpack."""
    return Rejection(-1, "batch_too_large", f"a batch holds at most {limit} events ({setting}); got {count}")


def _rejection(
    index: int, raw: Any, limits: fields.EventLimits, now: datetime, first: fields.FieldProblem
) -> Rejection:
    problems = _problems(raw, limits, now)
    if not problems or problems[0] != first:  # the two readings check in one order; never differ
        problems = (first,)
    message = first.message
    if len(problems) > 1:
        others = ", ".join(p.field or "the event" for p in problems[1:])
        message += f" (and {len(problems) - 1} more, listed in problems: {others})"
    return Rejection(index, first.code, message, problems)


def _event(raw: Any, limits: fields.EventLimits, now: datetime) -> Event:
    """The event, or fields.Invalid at its first problem: the fast path, for events that are right."""
    kind = _kind(raw)
    for member in _unknown_members(raw, kind):
        raise _unknown_member(member, kind)
    event_id = fields.event_id(raw.get("event_id"))
    timestamp = fields.timestamp(raw.get("timestamp"), limits, now)
    unit = fields.text(raw.get("unit"), "unit", limits.max_unit_length)
    if kind == "exposure":
        experiment = fields.experiment(raw.get("experiment"))
        phase = fields.phase(raw.get("phase"))
        variant = fields.text(raw.get("variant"), "variant", 256)
        attributes = fields.attributes(raw.get("attributes", {}), limits)
        return Event(
            "exposure",
            event_id,
            timestamp,
            unit,
            experiment,
            phase,
            variant,
            attributes=attributes,
            payload=orjson.dumps(attributes).decode() if attributes else None,
        )
    name = fields.event_name(raw.get("event"))
    value = fields.value(raw.get("value"), limits.max_value)
    properties = raw.get("properties", {})
    text = fields.properties(properties, limits)
    return Event(
        "track",
        event_id,
        timestamp,
        unit,
        name=name,
        value=value,
        attributes=properties,
        payload=text.decode() if properties else None,
    )


def _problems(raw: Any, limits: fields.EventLimits, now: datetime) -> tuple[fields.FieldProblem, ...]:
    """Every problem of a refused event (at most MAX_PROBLEMS), in the order `_event` meets them."""
    found: list[fields.FieldProblem] = []

    def check(read: Callable[[], object]) -> None:
        try:
            read()
        except fields.Invalid as invalid:
            found.append(invalid.problem)

    try:
        kind: Kind | None = _kind(raw)
    except fields.Invalid as invalid:
        if not isinstance(raw, dict):
            return (invalid.problem,)
        found.append(invalid.problem)
        kind = None
    if kind is not None:
        found += [_unknown_member(member, kind).problem for member in _unknown_members(raw, kind)]
    check(lambda: fields.event_id(raw.get("event_id")))
    check(lambda: fields.timestamp(raw.get("timestamp"), limits, now))
    check(lambda: fields.text(raw.get("unit"), "unit", limits.max_unit_length))
    if kind == "exposure":
        check(lambda: fields.experiment(raw.get("experiment")))
        check(lambda: fields.phase(raw.get("phase")))
        check(lambda: fields.text(raw.get("variant"), "variant", 256))
        check(lambda: fields.attributes(raw.get("attributes", {}), limits))
    elif kind == "track":
        check(lambda: fields.event_name(raw.get("event")))
        check(lambda: fields.value(raw.get("value"), limits.max_value))
        check(lambda: fields.properties(raw.get("properties", {}), limits))
    return tuple(found[:MAX_PROBLEMS])


def _kind(raw: Any) -> Kind:
    if not isinstance(raw, dict):
        raise fields.Invalid("", "malformed_event", f"an event must be an object; got {given(raw)}")
    kind = raw.get("kind")
    if kind == "exposure":
        return "exposure"
    if kind == "track":
        return "track"
    raise fields.Invalid("kind", "unknown_kind", f'kind must be "exposure" or "track"; got {given(kind)}')


def _unknown_members(raw: dict[Any, Any], kind: Kind) -> list[Any]:
    known = _EXPOSURE_MEMBERS if kind == "exposure" else _TRACK_MEMBERS
    if known.issuperset(raw):
        return []
    return sorted((k for k in raw if k not in known), key=str)


def _unknown_member(member: Any, kind: Kind) -> fields.Invalid:
    known = _EXPOSURE_MEMBERS if kind == "exposure" else _TRACK_MEMBERS
    field = member[:64] if isinstance(member, str) else f"[{given(member)}]"
    return fields.Invalid(
        field,
        "unknown_field",
        f"unknown field {given(member)}; a {kind} event has {', '.join(sorted(known))}",
    )
