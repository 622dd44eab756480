"""Batches decoded within their bounds and validated event by event (issue 11's pure part)."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import orjson
import pytest

from flagd.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from flagd.ingest.decode import DecodeLimits, decode
from flagd.ingest.events import Batch, EventLimits, Rejection, read_batch

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
