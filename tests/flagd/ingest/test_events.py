"""Batches decoded within their bounds and validated event by event (issue 11's pure part)."""

from __future__ import annotations

import gzip
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import orjson
import pytest

from flagd.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from flagd.ingest.decode import DecodeLimits, decode
from flagd.ingest.events import Batch, Rejection, read_batch
from flagd.ingest.fields import EventLimits

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def exposure(**overrides: Any) -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.UUID(int=1)),
        "timestamp": "2026-11-24T11:59:00Z",
        "experiment": "one-page-checkout",
        "phase": 1,
        "variant": "one-page",
        "unit": "user-1",
        "attributes": {"country": "NL", "platform": "ios"},
        **overrides,
    }


def track(**overrides: Any) -> dict[str, Any]:
    return {
        "kind": "track",
        "event_id": str(uuid.UUID(int=2)),
        "timestamp": int((NOW - timedelta(seconds=5)).timestamp() * 1000),
        "event": "order_paid",
        "unit": "user-1",
        "value": 49.5,
        "properties": {"currency": "EUR"},
        **overrides,
    }


def batch(*events: dict[str, Any]) -> Batch:
    result = read_batch({"events": list(events)}, EventLimits(), NOW)
    assert isinstance(result, Batch)
    return result


def test_should_accept_valid_exposures_and_track_events() -> None:
    result = batch(exposure(), track())
    assert result.rejected == ()
    first, second = result.accepted
    assert (first.kind, first.experiment, first.phase, first.variant, first.attributes["country"]) == (
        "exposure",
        "one-page-checkout",
        1,
        "one-page",
        "NL",
    )
    assert (second.kind, second.name, second.value, second.timestamp) == (
        "track",
        "order_paid",
        49.5,
        NOW - timedelta(seconds=5),
    )


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (exposure(event_id="not-a-uuid"), "invalid_event_id"),
        (exposure(event_id=None), "invalid_event_id"),
        (exposure(timestamp="2026-11-24T13:00:00Z"), "timestamp_in_future"),
        (exposure(timestamp="2025-01-01T00:00:00Z"), "timestamp_too_old"),
        (exposure(timestamp="2026-11-24T11:00:00"), "invalid_timestamp"),
        (exposure(phase="1"), "invalid_phase"),
        (exposure(unit=""), "invalid_unit"),
        (exposure(unit="a\x00b"), "invalid_unit"),
        (exposure(experiment="bad key\n"), "invalid_experiment"),
        (exposure(attributes={"nested": {"a": 1}}), "invalid_attributes"),
        (track(value=float("nan")), "invalid_value"),
        (track(value="12"), "invalid_value"),
        (track(properties={"blob": "x" * 5000}), "properties_too_large"),
        (track(extra=1), "unknown_field"),
        ({"kind": "click"}, "unknown_kind"),
        ("not an object", "malformed_event"),
    ],
)
def test_should_reject_a_bad_event_and_keep_its_neighbours(event: Any, code: str) -> None:
    result = batch(exposure(), event, track())
    assert len(result.accepted) == 2
    (rejection,) = result.rejected
    assert (rejection.index, rejection.code) == (1, code)
    assert rejection.message
    assert rejection.problems[0].code == code
    assert rejection.message.startswith(rejection.problems[0].message)


def test_should_report_every_problem_of_a_refused_event_the_first_ones_code_first() -> None:
    event = exposure(event_id=None, timestamp="yesterday", phase=0, variant=["a"], colour="red")
    (rejection,) = batch(event).rejected
    assert rejection.to_json() == {
        "index": 0,
        "code": "unknown_field",
        "message": 'unknown field "colour"; a exposure event has attributes, event_id, experiment, kind, phase, '
        "timestamp, unit, variant (and 4 more, listed in problems: event_id, timestamp, phase, variant)",
        "problems": [
            {
                "field": "colour",
                "code": "unknown_field",
                "message": 'unknown field "colour"; a exposure event has attributes, event_id, experiment, kind, '
                "phase, timestamp, unit, variant",
            },
            {
                "field": "event_id",
                "code": "invalid_event_id",
                "message": "event_id must be a UUID in its 36-character form (UUIDv7 recommended); got nothing",
            },
            {
                "field": "timestamp",
                "code": "invalid_timestamp",
                "message": "timestamp must be RFC 3339, such as 2026-11-24T10:00:00.123Z or 2026-11-24T11:00:00+01:00 "
                '(a zone is required, a fraction follows a dot); got "yesterday"',
            },
            {
                "field": "phase",
                "code": "invalid_phase",
                "message": "phase must be a whole number from 1; got 0",
            },
            {
                "field": "variant",
                "code": "invalid_variant",
                "message": "variant must be non-empty text of at most 256 characters, without NUL; got a list",
            },
        ],
    }


def test_should_list_at_most_ten_problems_of_one_event() -> None:
    event = track(**{f"extra{i}": i for i in range(30)}, event_id=1, unit=None)
    (rejection,) = batch(event).rejected
    assert len(rejection.problems) == 10
    assert rejection.code == "unknown_field"


def test_should_check_the_common_fields_of_an_event_of_unknown_kind() -> None:
    (rejection,) = batch({"kind": None, "unit": ""}).rejected
    assert [(p.field, p.code) for p in rejection.problems] == [
        ("kind", "unknown_kind"),
        ("event_id", "invalid_event_id"),
        ("timestamp", "invalid_timestamp"),
        ("unit", "invalid_unit"),
    ]
    assert rejection.problems[0].message == 'kind must be "exposure" or "track"; got nothing'


def _with_bytes_member(event: dict[Any, Any]) -> dict[Any, Any]:
    event[b"raw"] = 1  # msgpack keys may be binary
    return event


@pytest.mark.parametrize(
    "event",
    [
        exposure(kind=None),
        exposure(event_id=b"\x00"),
        exposure(timestamp={"at": 1}),
        exposure(experiment=None),
        exposure(phase=[1]),
        exposure(attributes={b"k": 1}),
        exposure(attributes=None),
        _with_bytes_member(exposure()),
        track(event=None),
        track(value={"a": 1}),
        track(properties=[1]),
        track(properties={"a": float("inf")}),
        track(properties={b"k": {"x": 1}}),
    ],
)
def test_should_describe_what_an_event_gave_in_words(event: dict[Any, Any]) -> None:
    (rejection,) = batch(event).rejected
    for text in (
        rejection.message,
        *(p.message for p in rejection.problems),
        *(p.field for p in rejection.problems),
    ):
        assert not re.search(r"None|\bb'|\{'|\['|\[1|\binf\b", text), text


def test_should_refuse_a_batch_that_is_not_a_list_of_events_or_too_long() -> None:
    assert isinstance(read_batch([exposure()], EventLimits(), NOW), Rejection)
    assert isinstance(read_batch({"events": {}}, EventLimits(), NOW), Rejection)
    too_many = read_batch({"events": [exposure()] * 11}, EventLimits(max_events=10), NOW)
    assert isinstance(too_many, Rejection)
    assert too_many.code == "batch_too_large"


def test_should_decode_json_msgpack_and_gzip_alike() -> None:
    document = {"events": [exposure(), track()]}
    limits = DecodeLimits()
    as_json = decode(orjson.dumps(document), "application/json", None, limits)
    as_msgpack = decode(msgpack.packb(document), "application/msgpack", None, limits)
    gzipped = decode(gzip.compress(msgpack.packb(document)), "application/msgpack", "gzip", limits)
    assert as_json == as_msgpack == gzipped == document


def test_should_stop_inflating_a_gzip_bomb_at_the_limit() -> None:
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")  # about 50 KB that inflate to 50 MB
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge, match="inflates to more than 1048576 bytes"):
        decode(bomb, "application/json", "gzip", DecodeLimits(max_inflated_bytes=1_048_576))


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "error"),
    [
        (b"\xc1\xc1\xc1", "application/msgpack", None, MalformedBody),
        (msgpack.packb({"events": []}) + b"\x01", "application/msgpack", None, MalformedBody),
        (b"\x91" * 5000 + b"\xc0", "application/msgpack", None, MalformedBody),
        (b"not gzip", "application/json", "gzip", MalformedBody),
        (gzip.compress(b'{"events": []}')[:-10], "application/json", "gzip", MalformedBody),
        (b'{"events": [}', "application/json", None, MalformedBody),
        (b"", "application/json", None, MalformedBody),
        (b"events", "text/plain", None, UnsupportedMediaType),
        (b"{}", "application/json", "br", UnsupportedMediaType),
    ],
    ids=[
        "not-msgpack",
        "trailing-bytes",
        "deep-msgpack",
        "not-gzip",
        "cut-gzip",
        "bad-json",
        "empty",
        "text",
        "brotli",
    ],
)
def test_should_refuse_bodies_it_cannot_read_with_a_reason(
    body: bytes, content_type: str, encoding: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        decode(body, content_type, encoding, DecodeLimits())
    assert str(raised.value)


def test_should_read_every_member_of_a_multi_member_gzip_body() -> None:
    # RFC 1952 2.2: a gzip file is a series of members (`cat a.gz b.gz`); each may end in zero padding.
    text = orjson.dumps({"events": [exposure(), track()]})
    body = gzip.compress(text[:20]) + gzip.compress(text[20:]) + b"\x00\x00"
    assert decode(body, "application/json", "gzip", DecodeLimits()) == {"events": [exposure(), track()]}
    members = gzip.compress(b"x" * 600) * 2  # within the limit each, not together
    with pytest.raises(PayloadTooLarge, match="FLAGD_EVENTS_MAX_INFLATED_BYTES"):
        decode(members, "application/json", "gzip", DecodeLimits(max_inflated_bytes=1_000))
    with pytest.raises(MalformedBody, match="not valid gzip"):
        decode(gzip.compress(text) + b"trailing", "application/json", "gzip", DecodeLimits())


def test_should_refuse_a_msgpack_batch_over_the_count_limit_as_json_is_refused() -> None:
    events = [track()] * 5_001
    as_json = read_batch({"events": events}, EventLimits(), NOW)
    assert isinstance(as_json, Rejection)
    with pytest.raises(PayloadTooLarge) as raised:
        decode(msgpack.packb({"events": events}), "application/msgpack", None, DecodeLimits())
    assert (raised.value.code, raised.value.message) == (as_json.code, as_json.message)
    assert "FLAGD_EVENTS_MAX_BATCH" in as_json.message
    # Declared, not read: a header claiming four billion events is refused as fast.
    claimed = b"\x81\xa6events\xdd\xff\xff\xff\xff"
    with pytest.raises(PayloadTooLarge, match="got 4294967295"):
        decode(claimed, "application/msgpack", None, DecodeLimits())


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-W48-2T11:59:00Z",  # ISO 8601 week date
        "20261124T115900Z",  # ISO 8601 basic format
        "2026-11-24T11+00:00",  # hour only
        "2026-11-24T11:59Z",  # no seconds
        "2026-11-24T11:59:00,5Z",  # decimal comma
        "2026-11-24T11:59:00",  # no zone
        "2026-11-24 11:59:00Z",  # a space for T
        "2026-11-24T11:59:00+0000",  # offset without a colon
        "2026-11-24T11:59:00+24:00",
        "2026-11-24T11:59:00+01:60",
        "2026-02-30T11:59:00Z",
        "2026-11-24T11:59:0\u0661Z",  # an Arabic-Indic digit
        "2026-11-24T11:59:00.Z",
        11.5,
        True,
    ],
)
def test_should_refuse_timestamps_that_are_not_rfc_3339_or_whole_milliseconds(timestamp: Any) -> None:
    (rejection,) = batch(track(timestamp=timestamp)).rejected
    assert rejection.code == "invalid_timestamp", rejection.message


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-24T11:59:00Z", datetime(2026, 11, 24, 11, 59, tzinfo=UTC)),
        ("2026-11-24t11:59:00z", datetime(2026, 11, 24, 11, 59, tzinfo=UTC)),
        ("2026-11-24T12:59:00.25+01:00", datetime(2026, 11, 24, 11, 59, 0, 250_000, tzinfo=UTC)),
        ("2026-11-24T11:59:00.123456789-00:00", datetime(2026, 11, 24, 11, 59, 0, 123_456, tzinfo=UTC)),
        (1795521540000, datetime(2026, 11, 24, 11, 59, tzinfo=UTC)),
    ],
)
def test_should_read_rfc_3339_timestamps_in_either_case_and_milliseconds(
    timestamp: Any, expected: datetime
) -> None:
    (event,) = batch(track(timestamp=timestamp)).accepted
    assert event.timestamp == expected


def nested(depth: int) -> dict[str, Any]:
    """Properties `depth` levels deep: the properties object is the first."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_should_refuse_properties_nested_deeper_than_eight_levels() -> None:
    assert batch(track(properties=nested(8))).rejected == ()
    for depth in (9, 100):
        (rejection,) = batch(track(properties=nested(depth))).rejected
        assert rejection.code == "properties_too_deep"
        assert "at most 8 levels" in rejection.message
    (listed,) = batch(track(properties={"l": [[[[[[[[1]]]]]]]]})).rejected
    assert listed.code == "properties_too_deep"


def test_should_refuse_integers_beyond_64_bits_in_properties_and_attributes_instead_of_rounding() -> None:
    body = b'{"events": [%s, %s, %s]}' % (
        orjson.dumps(track(properties={"id": 1})).replace(b'"id":1', b'"id":123456789012345678901234'),
        orjson.dumps(exposure(attributes={"n": 1})).replace(b'"n":1', b'"n":123456789012345678901234'),
        orjson.dumps(track(properties={"max": 2**63 - 1, "min": -(2**63), "float": 1e300})),
    )
    document = decode(body, "application/json", None, DecodeLimits())
    result = read_batch(document, EventLimits(), NOW)
    assert isinstance(result, Batch)
    assert [(r.index, r.code) for r in result.rejected] == [
        (0, "invalid_properties"),
        (1, "invalid_attributes"),
    ]
    assert "properties.id is the integer 123456789012345678901234" in result.rejected[0].message
    (kept,) = result.accepted
    assert kept.attributes == {"max": 2**63 - 1, "min": -(2**63), "float": 1e300}
    unsigned = decode(
        msgpack.packb({"events": [track(properties={"u": 2**64 - 1})]}),
        "application/msgpack",
        None,
        DecodeLimits(),
    )
    batch = read_batch(unsigned, EventLimits(), NOW)
    assert isinstance(batch, Batch)
    (too_big,) = batch.rejected
    assert too_big.code == "invalid_properties"
