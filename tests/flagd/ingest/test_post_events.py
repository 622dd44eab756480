"""POST /v1/events against a live server and a real database: what is acknowledged is what is stored."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgpack
import orjson
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.ingest.partitions import ensure_partitions, prune
from flagd.settings import Settings
from tests.support import bearer, create_key, running_server

pytestmark = pytest.mark.usefixtures("checkout_ran")


def now_text(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def track(unit: str = "user-1", **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": now_text(),
        "event": "order_paid",
        "unit": unit,
        "value": 12.5,
        "properties": {"currency": "EUR"},
        **overrides,
    }


def exposure(unit: str = "user-1", variant: str = "treatment", **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.uuid4()),
        "timestamp": now_text(),
        "experiment": "checkout",
        "phase": 1,
        "variant": variant,
        "unit": unit,
        "attributes": {"country": "NL"},
        **overrides,
    }


async def post(sdk: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    return await sdk.post("/v1/events", json={"events": events})


async def stored_ids(conn: asyncpg.Connection) -> list[str]:
    return [str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM events ORDER BY event_id")]


async def test_should_store_accepted_events_before_answering(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    events = [track(f"user-{i}") for i in range(5)] + [exposure()]
    response = await post(sdk, events)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 6, "rejected": []}
    # No waiting: the answer came after the commit.
    assert await stored_ids(conn) == sorted(e["event_id"] for e in events[:5])
    row = await conn.fetchrow("SELECT * FROM exposures")
    assert row is not None
    assert (row["experiment"], row["phase"], row["unit"], row["variant"], row["source"]) == (
        "checkout",
        1,
        "user-1",
        "treatment",
        "client",
    )
    stored = await conn.fetchrow("SELECT value, properties, name FROM events WHERE unit = 'user-0'")
    assert stored is not None
    assert (stored["value"], stored["name"]) == (12.5, "order_paid")
    assert stored["properties"] == '{"currency": "EUR"}'


async def test_should_store_a_batch_sent_twice_once(sdk: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    events = [track(f"user-{i}") for i in range(20)] + [exposure(f"user-{i}") for i in range(20)]
    first, second = await post(sdk, events), await post(sdk, events)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["accepted"] == 40
    assert len(await stored_ids(conn)) == 20
    assert await conn.fetchval("SELECT count(*) FROM exposures") == 20


async def test_should_store_a_retry_arriving_days_later_once(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    # An event from four days ago, sent now and again (a client that was offline, then retried).
    old = track(timestamp=now_text(-timedelta(days=4)))
    assert (await post(sdk, [old])).status_code == 200
    assert (await post(sdk, [old, track()])).status_code == 200
    assert (
        await conn.fetchval("SELECT count(*) FROM events WHERE event_id = $1", uuid.UUID(old["event_id"]))
        == 1
    )
    partition = await conn.fetchval(
        "SELECT tableoid::regclass::text FROM events WHERE event_id = $1", uuid.UUID(old["event_id"])
    )
    assert partition == f"events_p{datetime.fromisoformat(old['timestamp']):%Y%m%d}"


async def test_should_store_the_valid_events_of_a_mixed_batch_and_report_each_invalid_one(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    valid = [track("a"), exposure("b"), track("c")]
    invalid: list[Any] = [
        track(event_id="not-a-uuid"),
        track(event_id=None),
        {k: v for k, v in track().items() if k != "event_id"},
        track(timestamp=now_text(timedelta(days=2))),
        track(timestamp=now_text(-timedelta(days=400))),
        track(value="12"),
        track(properties={"blob": "x" * 10_000}),
        track(properties={"text": "a\x00b"}),
        exposure(phase="1"),
        exposure(attributes={"plan": {"nested": True}}),
        {"kind": "purchase"},
        "not an object",
    ]
    events = [valid[0], *invalid[:6], valid[1], *invalid[6:], valid[2]]
    response = await post(sdk, events)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 3
    codes = {r["index"]: r["code"] for r in body["rejected"]}
    assert codes == {
        1: "invalid_event_id",
        2: "invalid_event_id",
        3: "invalid_event_id",
        4: "timestamp_in_future",
        5: "timestamp_too_old",
        6: "invalid_value",
        8: "properties_too_large",
        9: "invalid_properties",
        10: "invalid_phase",
        11: "invalid_attributes",
        12: "unknown_kind",
        13: "malformed_event",
    }
    assert all(r["message"] for r in body["rejected"])
    assert await stored_ids(conn) == sorted([valid[0]["event_id"], valid[2]["event_id"]])
    assert await conn.fetchval("SELECT count(*) FROM exposures") == 1


async def test_should_answer_422_when_every_event_is_invalid(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await post(sdk, [track(event_id="x"), track(value=float("nan")) | {"value": None, "unit": ""}])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [d["index"] for d in error["details"]] == [0, 1]
    assert await stored_ids(conn) == []


async def test_should_read_msgpack_and_gzip(sdk: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    events = [track(f"m{i}", timestamp=int(datetime.now(UTC).timestamp() * 1000)) for i in range(10)]
    packed = msgpack.packb({"events": events})
    response = await sdk.post(
        "/v1/events",
        content=gzip.compress(packed),
        headers={"content-type": "application/msgpack", "content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert len(await stored_ids(conn)) == 10


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"\xc1\xc1", {"content-type": "application/msgpack"}, 400, "malformed_body"),
        (b"{not json", {}, 400, "malformed_body"),
        (b'{"events": {}}', {}, 400, "malformed_batch"),
        (b'{"events": [], "extra": 1}', {}, 400, "malformed_batch"),
        (b"[]", {}, 400, "malformed_batch"),
        (gzip.compress(b" " * (17 * 1024 * 1024)), {"content-encoding": "gzip"}, 413, "payload_too_large"),
        (b"\x1f\x8b\x08\x00garbage", {"content-encoding": "gzip"}, 400, "malformed_body"),
        (b'{"events": []}', {"content-encoding": "br"}, 415, "unsupported_media_type"),
        (b'{"events": []}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b"x" * (4 * 1024 * 1024 + 1), {}, 413, "payload_too_large"),
    ],
    ids=[
        "msgpack",
        "json",
        "events-object",
        "extra-member",
        "array",
        "gzip-bomb",
        "bad-gzip",
        "br",
        "text",
        "big",
    ],
)
async def test_should_refuse_unreadable_batches_with_a_reason(
    sdk: httpx.AsyncClient,
    conn: asyncpg.Connection,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await sdk.post("/v1/events", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert await stored_ids(conn) == []


async def test_should_refuse_a_batch_over_the_event_limit(sdk: httpx.AsyncClient) -> None:
    response = await post(sdk, [track() for _ in range(5_001)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"


async def test_should_name_the_events_body_limit_when_a_body_passes_it(sdk: httpx.AsyncClient) -> None:
    too_big = await sdk.post("/v1/events", content=b"x" * (4 * 1024 * 1024 + 1))
    assert too_big.status_code == 413
    message = too_big.json()["error"]["message"]
    assert "FLAGD_EVENTS_MAX_BODY_BYTES" in message
    assert "FLAGD_MAX_BODY_BYTES" not in message


async def test_should_refuse_a_msgpack_batch_over_the_event_limit_as_a_json_one(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    events = [track() for _ in range(5_001)]
    as_json = await post(sdk, events)
    as_msgpack = await sdk.post(
        "/v1/events",
        content=msgpack.packb({"events": events}),
        headers={"content-type": "application/msgpack"},
    )
    assert as_msgpack.status_code == as_json.status_code == 413
    assert as_msgpack.json() == as_json.json()
    assert as_msgpack.json()["error"]["code"] == "batch_too_large"
    for _ in range(300):  # both counted in the stats (the counters reach the database every few seconds)
        stats = (await admin.get("/v1/admin/events/stats")).json()
        if sum(r["count"] for r in stats["rejected"] if r["code"] == "batch_too_large") == 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"batch_too_large counted {stats['rejected']}, expected twice")


async def test_should_store_a_batch_sent_in_two_gzip_members(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    events = [track(f"g{i}") for i in range(4)]
    text = orjson.dumps({"events": events})
    half = len(text) // 2
    response = await sdk.post(
        "/v1/events",
        content=gzip.compress(text[:half]) + gzip.compress(text[half:]),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert await stored_ids(conn) == sorted(e["event_id"] for e in events)


async def test_should_refuse_keys_without_sdk_scope(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    missing = await client.post("/v1/events", json={"events": [track()]})
    wrong = await client.post(
        "/v1/events",
        json={"events": [track()]},
        headers={"Authorization": "Bearer flagd_0000000000_" + "A" * 43},
    )
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert await stored_ids(conn) == []


async def test_should_keep_the_first_assignment_and_mark_units_seen_in_two_variants(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    early, late = now_text(-timedelta(minutes=10)), now_text()
    # The later exposure arrives first; the earlier one, in another variant, arrives after.
    assert (await post(sdk, [exposure("u1", "control", timestamp=late)])).status_code == 200
    assert (await post(sdk, [exposure("u1", "treatment", timestamp=early)])).status_code == 200
    # Within one batch, two variants of one unit.
    assert (await post(sdk, [exposure("u2", "control"), exposure("u2", "treatment")])).status_code == 200
    assert (await post(sdk, [exposure("u3", "control"), exposure("u3", "control")])).status_code == 200
    rows = {r["unit"]: r for r in await conn.fetch("SELECT * FROM exposures")}
    assert rows["u1"]["variant"] == "treatment"
    assert rows["u1"]["exposed_at"] == datetime.fromisoformat(early)
    assert [rows[u]["multiple_variants"] for u in ("u1", "u2", "u3")] == [True, True, False]


async def test_should_count_stored_and_rejected_events_in_the_stats(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await post(sdk, [track("a"), track("b"), track("c", event="signup"), exposure(), track(event_id="x")])
    for _ in range(100):  # the counters are added every two seconds
        stats = (await admin.get("/v1/admin/events/stats")).json()
        if stats["events"] and stats["rejected"]:
            break
        await asyncio.sleep(0.1)
    today = datetime.now(UTC).date().isoformat()
    assert {(e["name"], e["count"]) for e in stats["events"] if e["day"] == today} == {
        ("order_paid", 2),
        ("signup", 1),
    }
    assert stats["exposures"] == [{"day": today, "experiment": "checkout", "units": 1}]
    assert [(r["code"], r["count"]) for r in stats["rejected"]] == [("invalid_event_id", 1)]
    assert {(s["kind"], s["name"]) for s in stats["lastSeen"]} == {
        ("track", "order_paid"),
        ("track", "signup"),
        ("exposure", "checkout"),
    }
    assert (await sdk.get("/v1/admin/events/stats")).status_code == 403
    assert (await admin.get("/v1/admin/events/stats?days=0")).status_code == 400


async def test_should_drop_old_partitions_and_not_recreate_them(
    sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    old, recent = track(timestamp=now_text(-timedelta(days=10))), track()
    assert (await post(sdk, [old, recent])).status_code == 200
    cutoff = (datetime.now(UTC) - timedelta(days=5)).date()
    result = await prune(conn, cutoff)
    assert f"events_p{datetime.fromisoformat(old['timestamp']):%Y%m%d}" in result.dropped
    assert await stored_ids(conn) == [recent["event_id"]]
    assert await ensure_partitions(conn, datetime.now(UTC).date(), 31, 7) == []
    # The same old event sent again lands in the default partition: the window is the kept days.
    assert (await post(sdk, [old])).status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM events_default") == 1


async def test_should_refuse_with_503_when_the_queue_is_full_and_store_what_it_accepted(
    settings: Settings, database_url: str, conn: asyncpg.Connection
) -> None:
    # A lock held on the events table stalls every commit, so the queue fills up behind it.
    small = replace(settings, events_max_queued=1_000, events_max_batch=500, events_commit_timeout=30.0)
    key = await create_key(database_url, Scope.SDK)
    async with (
        running_server(create_app(small)) as live,
        httpx.AsyncClient(base_url=live.url, headers=bearer(key), timeout=30.0) as http,
    ):
        blocker = await asyncpg.connect(database_url)
        try:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            batches = [[track(f"b{b}-{i}") for i in range(300)] for b in range(8)]
            pending = [asyncio.create_task(post(http, batch)) for batch in batches]
            done, _ = await asyncio.wait(pending, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
            refused = [task.result() for task in done]
            await transaction.rollback()
        finally:
            await blocker.close()
        answers = [await task for task in pending]
    assert refused, "no batch was refused while the queue was full"
    assert all(r.status_code == 503 for r in refused)
    statuses = [r.status_code for r in answers]
    assert set(statuses) == {200, 503}
    full = [r for r in answers if r.status_code == 503]
    assert all(r.json()["error"]["code"] == "queue_full" and r.headers["retry-after"] == "1" for r in full)
    stored = set(await stored_ids(conn))
    for batch, answer in zip(batches, answers, strict=True):
        ids = {e["event_id"] for e in batch}
        assert ids <= stored if answer.status_code == 200 else not ids & stored
