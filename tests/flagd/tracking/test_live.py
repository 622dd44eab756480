"""The QA view of one unit (GET /v1/events/live, the page /events/live): events posted through POST /v1/events
come back with the plan's verdict, repeats marked, a cursor that moves past settled events only, and clear
errors for what cannot be read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from flagd.auth.keys import Scope
from flagd.ingest.repository import StoredEvent
from flagd.routes import live_events
from flagd.tracking.check import CompiledPlan
from flagd.tracking.live import LiveQuery, Position, read_live
from flagd.tracking.plan import read_plan
from flagd.tracking.tail import TailCheck
from tests.flagd.ingest.conftest import checkout_ran as checkout_ran  # a fixture: exposures of checkout
from tests.flagd.ingest.test_post_events import exposure
from tests.flagd.tracking.test_arrival import PLAN, apply_plan, track
from tests.flagd.web.test_sessions import logged_in
from tests.support import LiveServer, bearer, create_key

OBSERVED = {**PLAN, "$plan": {"mode": "observe"}}


@pytest.fixture
async def results(server: LiveServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server that sends a results key."""
    token = await create_key(database_url, Scope.RESULTS, "qa")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, headers=bearer(token)) as http:
        yield http


def at(event: dict[str, Any], seconds_ago: float) -> dict[str, Any]:
    return {**event, "timestamp": (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()}


async def post(sdk: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    answer = await sdk.post("/v1/events", json={"events": list(events)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(events), answer.text


@pytest.mark.usefixtures("checkout_ran")
async def test_should_give_each_event_of_the_unit_the_plans_verdict_and_mark_the_repeat(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results: httpx.AsyncClient
) -> None:
    await apply_plan(admin, OBSERVED)
    good = at(track("signup", {"plan": "pro"}, unit="device-7"), 30)
    twice = {**track("signup", {"plan": "pro"}, unit="device-7"), "timestamp": good["timestamp"]}
    wrong = at(track("signup", {"plan": "gold", "seats": "3"}, unit="device-7"), 10)
    unplanned = at(track("SignedUp", unit="device-7"), 20)
    paid = at(track("order_paid", {"currency": "EUR"}, value=9.5, unit="device-7"), 40)
    other = track("signup", {"plan": "pro"}, unit="someone-else")
    seen = exposure("device-7")
    await post(sdk, good, twice, wrong, unplanned, paid, other, seen)

    answer = await results.get("/v1/events/live", params={"unit": "device-7"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unit"] == "device-7"
    assert body["planExists"] is True
    assert body["more"] is False
    by_id = {e["id"]: e for e in body["events"]}
    assert set(by_id) == {e["event_id"] for e in (good, twice, wrong, unplanned, paid, seen)}
    assert all(e["unit"] == "device-7" for e in body["events"])
    shown = by_id[seen["event_id"]]
    assert (shown["kind"], shown["name"], shown["variant"], shown["phase"]) == (
        "exposure",
        "checkout",
        "treatment",
        1,
    )
    assert (shown["check"], shown["attributes"], shown["repeated"]) == (None, {"country": "NL"}, False)
    for event in (good, twice):
        assert by_id[event["event_id"]]["check"] == {"matches": True, "planned": True, "violations": []}
    # Sent in one batch, the two copies are stored in id order: the second of them fired again, 0 s later.
    copies = [by_id[good["event_id"]], by_id[twice["event_id"]]]
    assert sorted(c["repeated"] for c in copies) == [False, True]
    assert [c["repeatSeconds"] for c in copies if c["repeated"]] == [0.0]
    wrong_check = by_id[wrong["event_id"]]["check"]
    assert wrong_check["matches"] is False
    assert wrong_check["planned"] is True
    assert [(v["code"], v["path"]) for v in wrong_check["violations"]] == [
        ("not_in_enum", "properties.plan"),
        ("wrong_type", "properties.seats"),
    ]
    assert "must be one of" in wrong_check["violations"][0]["message"]
    assert by_id[wrong["event_id"]]["repeated"] is False  # 20 s after the copies: not a repeat
    unplanned_check = by_id[unplanned["event_id"]]["check"]
    assert unplanned_check["planned"] is False
    assert [v["code"] for v in unplanned_check["violations"]] == ["unplanned_event", "bad_name"]
    assert by_id[paid["event_id"]]["value"] == 9.5
    assert by_id[paid["event_id"]]["check"]["matches"] is True
    assert by_id[wrong["event_id"]]["properties"] == {"plan": "gold", "seats": "3"}

    limited = (await results.get("/v1/events/live", params={"unit": "device-7", "limit": 2})).json()
    assert len(limited["events"]) == 2  # the newest two, oldest first
    assert [e["id"] for e in limited["events"]] == [e["id"] for e in body["events"][-2:]]
    # An admin key reads it too.
    assert (await admin.get("/v1/events/live", params={"unit": "someone-else"})).json()["events"][0][
        "id"
    ] == (other["event_id"])


async def test_should_move_the_cursor_past_settled_events_only(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str
) -> None:
    await apply_plan(admin, OBSERVED)
    first = [track("signup", {"plan": "pro"}, unit="qa-phone") for _ in range(3)]
    await post(sdk, *first)
    conn = await asyncpg.connect(database_url)
    try:
        plan = CompiledPlan.compile(read_plan({"events": OBSERVED}, []))

        async def read(after: Position | None, now: datetime) -> tuple[list[str], Position]:
            query = LiveQuery.parse("qa-phone", None if after is None else after.encode(), None)
            page = await read_live(conn, query, plan=plan, unplanned="observe", now=now, max_age_days=30)
            return [e.row.id for e in page.events], page.cursor

        # Read 1 s after they arrived: shown, but the cursor stays before them, so the next read sends them again.
        arrived = await conn.fetchval("SELECT max(received_at) FROM events WHERE unit = 'qa-phone'")
        ids, fresh = await read(None, arrived + timedelta(seconds=1))
        assert set(ids) == {e["event_id"] for e in first}
        again, _ = await read(fresh, arrived + timedelta(seconds=1))
        assert set(again) == set(ids)
        # Read as if 10 s later, they have settled: the cursor moves past them, and a read after it sends
        # only what came since, its repeats judged against the events before the cursor.
        _, settled = await read(None, datetime.now(UTC) + timedelta(seconds=10))
        second = {**track("signup", {"plan": "pro"}, unit="qa-phone"), "timestamp": first[0]["timestamp"]}
        await post(sdk, second)
        query = LiveQuery.parse("qa-phone", settled.encode(), None)
        later = datetime.now(UTC) + timedelta(seconds=10)
        page = await read_live(conn, query, plan=plan, unplanned="observe", now=later, max_age_days=30)
        assert [e.row.id for e in page.events] == [second["event_id"]]
        assert page.events[0].verdict["repeatSeconds"] is not None
        assert Position.decode(page.cursor.encode()) == Position(
            page.events[0].row.received_at, second["event_id"]
        )
    finally:
        await conn.close()


async def test_should_refuse_what_it_cannot_read_with_a_code_that_says_why(
    server: LiveServer, sdk: httpx.AsyncClient, results: httpx.AsyncClient
) -> None:
    cases = [
        ({}, "unit_required"),
        ({"unit": ""}, "unit_required"),
        ({"unit": "x" * 257}, "unit_too_long"),
        ({"unit": "a\x00b"}, "invalid_parameter"),
        ({"unit": "u", "after": "yesterday"}, "invalid_cursor"),
        ({"unit": "u", "after": "123.not-an-id"}, "invalid_cursor"),
        ({"unit": "u", "after": "9" * 18 + "."}, "invalid_cursor"),
        ({"unit": "u", "limit": "0"}, "invalid_parameter"),
        ({"unit": "u", "limit": "201"}, "invalid_parameter"),
    ]
    for params, code in cases:
        answer = await results.get("/v1/events/live", params=params)
        assert answer.status_code == 400, (params, answer.text)
        error = answer.json()["error"]
        assert error["code"] == code, (params, error)
        assert len(error["message"]) > 30
    assert (await results.get("/v1/events/live", params={"unit": "x" * 256})).status_code == 200
    forbidden = await sdk.get("/v1/events/live", params={"unit": "u"})
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as anonymous:
        assert (await anonymous.get("/v1/events/live", params={"unit": "u"})).status_code == 401
        rows = await anonymous.get("/events/live/rows", params={"unit": "u"})
        assert (rows.status_code, rows.json()["error"]["code"]) == (401, "unauthorized")
        page = await anonymous.get("/events/live", params={"unit": "u"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fevents%2Flive%3Funit%3Du"


async def test_should_render_the_page_with_a_session_and_escape_a_hostile_unit(
    server: LiveServer, admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str
) -> None:
    await apply_plan(admin, OBSERVED)
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    await post(sdk, track("signup", {"plan": "<b>gold</b>"}, unit=hostile))
    http = await logged_in(server, await create_key(database_url, Scope.RESULTS, "qa"))
    try:
        empty = await http.get("/events/live")
        assert empty.status_code == 200
        assert 'id="unit"' in empty.text
        assert 'id="live-rows"' not in empty.text
        assert '<a href="/events/live">Live events</a>' in empty.text
        page = await http.get("/events/live", params={"unit": hostile})
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert 'src="/static/live-events.js"' in page.text
        assert (
            "script-src" not in page.headers["content-security-policy"]
        )  # default-src 'self': no inline script
        rows = await http.get("/events/live/rows", params={"unit": hostile})
        assert rows.status_code == 200
        [event] = rows.json()["events"]
        assert event["unit"] == hostile
        assert event["check"]["violations"][0]["code"] == "not_in_enum"
        too_long = await http.get("/events/live", params={"unit": "x" * 300})
        assert too_long.status_code == 400
        assert "at most 256 characters" in too_long.text
        bad_cursor = await http.get("/events/live/rows", params={"unit": "u", "after": "x"})
        assert (bad_cursor.status_code, bad_cursor.json()["error"]["code"]) == (400, "invalid_cursor")
        script = await http.get("/static/live-events.js")
        assert script.status_code == 200
        assert "innerHTML" not in script.text
    finally:
        await http.aclose()


def test_should_find_a_repeat_among_the_last_few_timestamps_not_only_the_latest() -> None:
    """Events stored together come in id order, not in the order of their timestamps."""
    checker = TailCheck(CompiledPlan.compile(read_plan({"events": OBSERVED}, [])), "observe")
    start = datetime(2026, 12, 2, 10, tzinfo=UTC)

    def row(seconds: float, unit: str = "d") -> StoredEvent:
        moment = start + timedelta(seconds=seconds)
        return StoredEvent("track", "id", moment, moment, "signup", unit, '{"plan": "pro"}')

    gaps = [checker.verdict(row(s))["repeatSeconds"] for s in (5.0, 0.0, 0.3, 3.0)]
    assert gaps == [None, None, pytest.approx(0.3), None]
    assert checker.verdict(row(0.3, unit="another"))["repeatSeconds"] is None


async def test_should_answer_busy_while_another_live_read_runs_on_the_worker(
    server: LiveServer, results: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One read in flight per worker (a first read scans the hour's events): the next one is told to come back.
    monkeypatch.setattr(live_events, "_in_flight", live_events.MAX_READS_IN_FLIGHT)
    busy = await results.get("/v1/events/live", params={"unit": "u"})
    assert (busy.status_code, busy.json()["error"]["code"]) == (503, "live_busy")
    assert busy.headers["Retry-After"] == "1"
    monkeypatch.setattr(live_events, "_in_flight", 0)
    assert (await results.get("/v1/events/live", params={"unit": "u"})).status_code == 200
    assert live_events._in_flight == 0  # released after the read
