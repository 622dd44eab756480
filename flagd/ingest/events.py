"""One batch of events, validated event by event: a bad event is reported, its neighbours are kept.

    {"events": [
      {"kind": "exposure", "event_id": "<uuid>", "timestamp": "2026-11-24T10:00:00Z" | <epoch ms>,
       "experiment": "<key>", "phase": 1, "variant": "<name>", "unit": "<id>", "attributes": {"country": "NL"}},
      {"kind": "track", "event_id": "<uuid>", "timestamp": ..., "event": "<name>", "unit": "<id>",
       "value": 12.5, "properties": {...}}
    ]}

Each rejection has the event's index, a stable code and a sentence saying what to fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from flagd.identifiers import is_key

Kind = Literal["exposure", "track"]
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
_EXPOSURE_MEMBERS = {"kind", "event_id", "timestamp", "experiment", "phase", "variant", "unit", "attributes"}
_TRACK_MEMBERS = {"kind", "event_id", "timestamp", "event", "unit", "value", "properties"}


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_events: int = 5_000
    max_unit_length: int = 256
    max_attributes: int = 32
    max_properties_bytes: int = 4_096
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
        return Rejection(
            -1,
            "batch_too_large",
            f"a batch holds at most {limits.max_events} events (FLAGD_EVENTS_MAX_BATCH); got {len(events)}",
        )
    accepted, rejected = [], []
    for index, raw in enumerate(events):
        try:
            accepted.append(_event(raw, limits, now))
        except _Invalid as invalid:
            rejected.append(Rejection(index, invalid.code, invalid.message))
    return Batch(tuple(accepted), tuple(rejected))


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
    try:
        text = orjson.dumps(properties)
    except (TypeError, orjson.JSONEncodeError):
        raise _Invalid(
            "invalid_properties", "properties must be plain JSON, nested at most 8 levels"
        ) from None
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
    elif isinstance(raw, str) and len(raw) <= 40:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise _Invalid(
                "invalid_timestamp", f"timestamp must be RFC 3339 with a zone, got {_shown(raw)}"
            ) from None
        if moment.tzinfo is None:
            raise _Invalid(
                "invalid_timestamp", f"timestamp needs a time zone (Z or +hh:mm), got {_shown(raw)}"
            )
    else:
        raise _Invalid(
            "invalid_timestamp", f"timestamp must be RFC 3339 text or epoch milliseconds, got {_shown(raw)}"
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
