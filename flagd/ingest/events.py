"""One batch of events, validated event by event: a bad event is reported, its neighbours are kept.

    {"events": [
      {"kind": "exposure", "event_id": "<uuid>", "timestamp": "2026-11-24T10:00:00Z" | <epoch ms>,
       "experiment": "<key>", "phase": 1, "variant": "<name>", "unit": "<id>", "attributes": {"country": "NL"}},
      {"kind": "track", "event_id": "<uuid>", "timestamp": ..., "event": "<name>", "unit": "<id>",
       "value": 12.5, "properties": {...}}
    ]}

Each rejection has the event's index, a stable code and a sentence saying what to fix.

A timestamp is RFC 3339 (`2026-11-24T10:00:00Z`, `2026-11-24t10:00:00.5+01:00`: date, `T` or `t`,
time, fraction after a dot, then `Z`, `z` or an offset) or whole milliseconds since 1970; nothing
else (ISO 8601's week dates, basic format or hour-only times are not RFC 3339). Properties nest at
most `max_properties_depth` levels (the object itself is the first) and hold integers within
64 bits: anything else is refused, never stored rounded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import orjson

from flagd.identifiers import is_key

Kind = Literal["exposure", "track"]
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
_EXPOSURE_MEMBERS = {"kind", "event_id", "timestamp", "experiment", "phase", "variant", "unit", "attributes"}
_TRACK_MEMBERS = {"kind", "event_id", "timestamp", "event", "unit", "value", "properties"}
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_events: int = 5_000
    max_unit_length: int = 256
    max_attributes: int = 32
    max_properties_bytes: int = 4_096
    max_properties_depth: int = 8
    max_future_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=30)


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

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Batch:
    accepted: tuple[Event, ...]
    rejected: tuple[Rejection, ...]


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_batch(document: Any, limits: EventLimits, now: datetime) -> Batch | Rejection:
    """The events of a batch document; a Rejection (index -1) when the document itself is unusable."""
    if not isinstance(document, dict) or set(document) != {"events"}:
        return Rejection(
            -1, "malformed_batch", 'a batch is an object with one member, "events": a list of events'
        )
    events = document["events"]
    if not isinstance(events, list):
        return Rejection(-1, "malformed_batch", '"events" must be a list')
    if len(events) > limits.max_events:
        return too_many_events(len(events), limits.max_events)
    accepted, rejected = [], []
    for index, raw in enumerate(events):
        try:
            accepted.append(_event(raw, limits, now))
        except _Invalid as invalid:
            rejected.append(Rejection(index, invalid.code, invalid.message))
    return Batch(tuple(accepted), tuple(rejected))


def too_many_events(count: int, limit: int) -> Rejection:
    """The refusal of a whole batch of `count` events, past the limit; the same for JSON and msgpack."""
    return Rejection(
        -1, "batch_too_large", f"a batch holds at most {limit} events (FLAGD_EVENTS_MAX_BATCH); got {count}"
    )


def _event(raw: Any, limits: EventLimits, now: datetime) -> Event:
    if not isinstance(raw, dict):
        raise _Invalid("malformed_event", "an event must be an object")
    kind = raw.get("kind")
    if kind not in ("exposure", "track"):
        raise _Invalid("unknown_kind", f'kind must be "exposure" or "track", got {_shown(kind)}')
    known = _EXPOSURE_MEMBERS if kind == "exposure" else _TRACK_MEMBERS
    if not known.issuperset(raw):
        unknown = sorted(str(k) for k in raw if k not in known)
        raise _Invalid(
            "unknown_field", f"unknown field {unknown[0]!r}; a {kind} event has {', '.join(sorted(known))}"
        )
    event_id = _event_id(raw.get("event_id"))
    timestamp = _timestamp(raw.get("timestamp"), limits, now)
    unit = _text(raw.get("unit"), "unit", limits.max_unit_length)
    if kind == "exposure":
        experiment = raw.get("experiment")
        if not is_key(experiment):
            raise _Invalid(
                "invalid_experiment", f"experiment must be an experiment key, got {_shown(experiment)}"
            )
        phase = raw.get("phase")
        if type(phase) is not int or not 1 <= phase <= 1_000_000:
            raise _Invalid("invalid_phase", f"phase must be a whole number from 1, got {_shown(phase)}")
        variant = _text(raw.get("variant"), "variant", 256)
        attributes = _attributes(raw.get("attributes", {}), limits)
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
    name = raw.get("event")
    if not is_key(name):
        raise _Invalid(
            "invalid_event_name",
            f"event must be an event name (letters, digits, . _ : -), got {_shown(name)}",
        )
    value = raw.get("value")
    if value is not None and (
        type(value) not in (int, float) or not math.isfinite(value) or abs(value) > 1e15
    ):
        raise _Invalid("invalid_value", f"value must be a finite number within 1e15, got {_shown(value)}")
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        raise _Invalid("invalid_properties", "properties must be an object")
    _check_properties(properties, limits.max_properties_depth)
    try:
        text = orjson.dumps(properties)
    except (TypeError, orjson.JSONEncodeError):
        raise _Invalid("invalid_properties", "properties must be plain JSON") from None
    size = len(text)
    if b"\\u0000" in text:
        # PostgreSQL's jsonb cannot hold NUL; refused here so it cannot fail the write of its neighbours.
        raise _Invalid("invalid_properties", "properties must not contain the NUL character (\\u0000)")
    if size > limits.max_properties_bytes:
        raise _Invalid(
            "properties_too_large",
            f"properties take {size} bytes as JSON; the limit is {limits.max_properties_bytes} (FLAGD_EVENTS_MAX_PROPERTIES_BYTES)",
        )
    return Event(
        "track",
        event_id,
        timestamp,
        unit,
        name=name,
        value=None if value is None else float(value),
        attributes=properties,
        payload=text.decode() if properties else None,
    )


def _event_id(raw: Any) -> str:
    if not isinstance(raw, str) or _UUID.fullmatch(raw) is None:
        raise _Invalid(
            "invalid_event_id",
            f"event_id must be a UUID in its 36-character form (UUIDv7 recommended), got {_shown(raw)}",
        )
    return raw.lower()


def _timestamp(raw: Any, limits: EventLimits, now: datetime) -> datetime:
    if type(raw) is int:
        if not 0 <= raw <= 10**14:
            raise _Invalid("invalid_timestamp", f"a numeric timestamp is milliseconds since 1970, got {raw}")
        moment = datetime.fromtimestamp(raw / 1000, tz=UTC)
    elif isinstance(raw, str):
        moment = _rfc3339(raw)
    else:
        raise _Invalid(
            "invalid_timestamp",
            f"timestamp must be RFC 3339 text or whole milliseconds since 1970, got {_shown(raw)}",
        )
    if moment > now + limits.max_future_skew:
        raise _Invalid(
            "timestamp_in_future",
            f"timestamp {_shown(raw)} is more than {limits.max_future_skew} ahead; check the client's clock",
        )
    if moment < now - limits.max_age:
        raise _Invalid(
            "timestamp_too_old", f"timestamp {_shown(raw)} is more than {limits.max_age.days} days old"
        )
    return moment


def _rfc3339(raw: str) -> datetime:
    match = _RFC3339.fullmatch(raw) if len(raw) <= 40 else None
    if match is None:
        raise _Invalid(
            "invalid_timestamp",
            "timestamp must be RFC 3339, such as 2026-11-24T10:00:00.123Z or 2026-11-24T11:00:00+01:00 "
            f"(a zone is required, a fraction follows a dot), got {_shown(raw)}",
        )
    year, month, day, hour, minute, second, fraction, sign, zone_hours, zone_minutes = match.groups()
    try:
        offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes)) if sign else timedelta(0)
        if int(zone_minutes or 0) > 59:
            raise ValueError
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError:
        raise _Invalid(
            "invalid_timestamp", f"timestamp {_shown(raw)} is not a valid date, time or offset"
        ) from None


def _check_properties(properties: dict[str, Any], max_depth: int) -> None:
    """Nested at most `max_depth` levels, integers within 64 bits; iterative, and stops at the first
    container nested too deeply, so its cost is linear whatever the shape."""
    stack: list[tuple[Any, str, int]] = [(properties, "properties", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise _Invalid(
                    "properties_too_deep",
                    f"properties nest at most {max_depth} levels (objects and lists, the properties object "
                    f"being the first); {path} is deeper",
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, _member_path(path, key), depth + 1) for key, item in items)
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            raise _Invalid(
                "invalid_properties",
                f"{path} is the integer {str(value)[:30]}, outside the 64-bit range "
                f"({INT64_MIN} to {INT64_MAX}); it cannot be stored exactly: send it as a string",
            )
        elif isinstance(value, float) and not math.isfinite(value):
            raise _Invalid("invalid_properties", f"{path} is {value}; JSON has no such number: send null")


def _member_path(path: str, key: object) -> str:
    """Where a value is, for messages: cut short, so a long key costs nothing per value under it."""
    if len(path) > 80:
        return path
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{str(key)[:40]}"


def _text(raw: Any, name: str, limit: int) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > limit or "\x00" in raw:
        raise _Invalid(
            f"invalid_{name}", f"{name} must be non-empty text of at most {limit} characters, without NUL"
        )
    return raw


def _attributes(raw: Any, limits: EventLimits) -> dict[str, Any]:
    if not isinstance(raw, dict) or len(raw) > limits.max_attributes:
        raise _Invalid(
            "invalid_attributes", f"attributes must be an object of at most {limits.max_attributes} members"
        )
    for key, value in raw.items():
        if (
            not (isinstance(value, str | bool | int | float) or value is None)
            or (isinstance(value, str) and (len(value) > 256 or "\x00" in value))
            or (isinstance(value, int) and not -(2**63) <= value < 2**63)
            or (isinstance(value, float) and not math.isfinite(value))
            or not isinstance(key, str)
            or not key
            or len(key) > 64
            or "\x00" in key
        ):
            raise _Invalid(
                "invalid_attributes",
                f"attribute {str(key)[:40]!r} (a name of 1 to 64 characters) must be a string of at most 256 "
                "characters without NUL, a finite number, a boolean or null",
            )
    return dict(raw)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
