"""The members of an event, each read on its own: the value, or Invalid with the problem in words.

`flagd.ingest.events` reads an event with these, in one order, twice for a refused event: at full speed up
to its first problem, then every reader once more to list all of its problems.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flagd.identifiers import is_key
from flagd.timestamps import rfc3339
from flagd_sdk.evaluation.problems import given

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
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
    max_value: float | None = None
    """A track value's magnitude must be below it (client keys' batches: FLAGD_CLIENT_EVENTS_MAX_VALUE)."""
    batch_setting: str = "FLAGD_EVENTS_MAX_BATCH"
    """The variable that sets `max_events`, named when a batch is refused."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    """The event's member at fault ("" for the event as a whole)."""
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class Invalid(Exception):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.problem = FieldProblem(field, code, message)


def experiment(raw: Any) -> str:
    if not is_key(raw):
        raise Invalid(
            "experiment", "invalid_experiment", f"experiment must be an experiment key; got {given(raw)}"
        )
    return str(raw)


def phase(raw: Any) -> int:
    if type(raw) is not int or not 1 <= raw <= 1_000_000:
        raise Invalid("phase", "invalid_phase", f"phase must be a whole number from 1; got {given(raw)}")
    return raw


def event_name(raw: Any) -> str:
    if not is_key(raw):
        raise Invalid(
            "event",
            "invalid_event_name",
            f"event must be an event name (letters, digits, . _ : -); got {given(raw)}",
        )
    return str(raw)


def value(raw: Any, bound: float | None = None) -> float | None:
    """The value of a track event; with a `bound`, its magnitude below it (client keys' events)."""
    if raw is None:
        return None
    if type(raw) not in (int, float) or not math.isfinite(raw) or abs(raw) > 1e15:
        raise Invalid(
            "value", "invalid_value", f"value must be a finite number within 1e15; got {given(raw)}"
        )
    if bound is not None and not abs(raw) < bound:
        raise Invalid(
            "value",
            "value_out_of_range",
            f"a value sent with a client key must lie strictly between -{bound:g} and {bound:g} "
            f"(FLAGD_CLIENT_EVENTS_MAX_VALUE); got {given(raw)}",
        )
    return float(raw)


def properties(properties: Any, limits: EventLimits) -> bytes:
    """The properties as stored JSON text."""
    if not isinstance(properties, dict):
        raise Invalid(
            "properties", "invalid_properties", f"properties must be an object; got {given(properties)}"
        )
    _check_properties(properties, limits.max_properties_depth)
    try:
        text = orjson.dumps(properties)
    except (TypeError, orjson.JSONEncodeError):
        raise Invalid("properties", "invalid_properties", "properties must be plain JSON") from None
    if b"\\u0000" in text:
        # PostgreSQL's jsonb cannot hold NUL; refused here so it cannot fail the write of its neighbours.
        raise Invalid(
            "properties", "invalid_properties", "properties must not contain the NUL character (\\u0000)"
        )
    if len(text) > limits.max_properties_bytes:
        raise Invalid(
            "properties",
            "properties_too_large",
            f"properties take {len(text)} bytes as JSON; the limit is {limits.max_properties_bytes} "
            "(FLAGD_EVENTS_MAX_PROPERTIES_BYTES)",
        )
    return text


def event_id(raw: Any) -> str:
    if not isinstance(raw, str) or _UUID.fullmatch(raw) is None:
        raise Invalid(
            "event_id",
            "invalid_event_id",
            f"event_id must be a UUID in its 36-character form (UUIDv7 recommended); got {given(raw)}",
        )
    return raw.lower()


def timestamp(raw: Any, limits: EventLimits, now: datetime) -> datetime:
    if type(raw) is int:
        if not 0 <= raw <= 10**14:
            raise Invalid(
                "timestamp", "invalid_timestamp", f"a numeric timestamp is milliseconds since 1970; got {raw}"
            )
        moment = datetime.fromtimestamp(raw / 1000, tz=UTC)
    elif isinstance(raw, str):
        moment = _rfc3339(raw)
    else:
        raise Invalid(
            "timestamp",
            "invalid_timestamp",
            f"timestamp must be RFC 3339 text or whole milliseconds since 1970; got {given(raw)}",
        )
    if moment > now + limits.max_future_skew:
        raise Invalid(
            "timestamp",
            "timestamp_in_future",
            f"timestamp {given(raw)} is more than {limits.max_future_skew} ahead; check the client's clock",
        )
    if moment < now - limits.max_age:
        raise Invalid(
            "timestamp",
            "timestamp_too_old",
            f"timestamp {given(raw)} is more than {limits.max_age.days} days old",
        )
    return moment


def _rfc3339(raw: str) -> datetime:
    try:
        moment = rfc3339(raw)
    except ValueError:
        raise Invalid(
            "timestamp", "invalid_timestamp", f"timestamp {given(raw)} is not a valid date, time or offset"
        ) from None
    if moment is None:
        raise Invalid(
            "timestamp",
            "invalid_timestamp",
            "timestamp must be RFC 3339, such as 2026-11-24T10:00:00.123Z or 2026-11-24T11:00:00+01:00 "
            f"(a zone is required, a fraction follows a dot); got {given(raw)}",
        )
    return moment


def _check_properties(properties: dict[str, Any], max_depth: int) -> None:
    """Nested at most `max_depth` levels, integers within 64 bits; iterative, and stops at the first
    container nested too deeply, so its cost is linear whatever the shape."""
    stack: list[tuple[Any, str, int]] = [(properties, "properties", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise Invalid(
                    "properties",
                    "properties_too_deep",
                    f"properties nest at most {max_depth} levels (objects and lists, the properties object "
                    f"being the first); {path} is deeper",
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, _member_path(path, key), depth + 1) for key, item in items)
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            raise Invalid(
                "properties",
                "invalid_properties",
                f"{path} is the integer {str(value)[:30]}, outside the 64-bit range "
                f"({INT64_MIN} to {INT64_MAX}); it cannot be stored exactly: send it as a string",
            )
        elif isinstance(value, float) and not math.isfinite(value):
            raise Invalid(
                "properties",
                "invalid_properties",
                f"{path} is {given(value)}; JSON has no such number: send null",
            )


def _member_path(path: str, key: object) -> str:
    """Where a value is, for messages: cut short, so a long key costs nothing per value under it."""
    if len(path) > 80:
        return path
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key[:40]}" if isinstance(key, str) else f"{path}[{given(key)}]"


def text(raw: Any, name: str, limit: int) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > limit or "\x00" in raw:
        raise Invalid(
            name,
            f"invalid_{name}",
            f"{name} must be non-empty text of at most {limit} characters, without NUL; got {given(raw)}",
        )
    return raw


def attributes(raw: Any, limits: EventLimits) -> dict[str, Any]:
    if not isinstance(raw, dict) or len(raw) > limits.max_attributes:
        raise Invalid(
            "attributes",
            "invalid_attributes",
            f"attributes must be an object of at most {limits.max_attributes} members; got "
            + (f"{len(raw)} members" if isinstance(raw, dict) else given(raw)),
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
            raise Invalid(
                "attributes",
                "invalid_attributes",
                f"attribute {given(key)} (a name of 1 to 64 characters) must be a string of at most 256 "
                "characters without NUL, a finite number, a boolean or null",
            )
    return dict(raw)
