"""The tracking plan checked on arrival, against a live server and a real database: enforce refuses each
violation with its code and path and stores the valid events once; observe stores all and counts exactly."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from flagd.settings import Settings

PLAN: dict[str, Any] = {
    "$plan": {"naming": "snake_case", "mode": "enforce"},
    "signup": {
        "description": "A visitor created an account.",
        "owner": "growth",
        "value": "forbidden",
        "additional_properties": False,
        "properties": {
            "plan": {"type": "string", "required": True, "enum": ["free", "pro"]},
            "seats": {"type": "integer", "min": 1, "max": 500},
            "coupon": {"type": "string", "max_length": 8, "pattern": "[A-Z0-9]+"},
            "trial": {"type": "boolean"},
        },
    },
    "order_paid": {
        "description": "An order was paid.",
        "value": "required",
        "properties": {"currency": {"type": "string"}},
    },
}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The server-wide setting for unplanned events: observe, unless a test asks for another."""
    return replace(settings, events_unplanned=getattr(request, "param", "observe"))


def track(
    event: str, properties: dict[str, Any] | None = None, value: float | None = None, unit: str = "u1"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "event": event,
        "unit": unit,
        "properties": properties or {},
    }
    if value is not None:
        body["value"] = value
    return body


def mixed_batch() -> tuple[list[dict[str, Any]], list[list[tuple[str, str]]]]:
    """Events of every kind of violation between valid ones, and the (code, path) list each must get."""
    cases: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        (track("signup", {"plan": "pro", "seats": 3, "coupon": "AB12", "trial": True}), []),
        (track("SignedUp", {"plan": "pro"}), [("unplanned_event", "event"), ("bad_name", "event")]),
        (track("signup", {"seats": 3}), [("missing_property", "properties.plan")]),
        (track("signup", {"plan": "pro", "seats": "3"}), [("wrong_type", "properties.seats")]),
        (track("signup", {"plan": "gold"}), [("not_in_enum", "properties.plan")]),
        (track("signup", {"plan": "free", "seats": 0}), [("out_of_range", "properties.seats")]),
        (track("signup", {"plan": "free", "coupon": "ABCDEFGHIJ"}), [("too_long", "properties.coupon")]),
        (track("signup", {"plan": "free", "coupon": "ab"}), [("pattern_mismatch", "properties.coupon")]),
        (track("signup", {"plan": "free", "utm": "x"}), [("unexpected_property", "properties.utm")]),
        (track("signup", {"plan": "free"}, value=1.0), [("value_unexpected", "value")]),
        (track("order_paid", {"currency": "EUR"}), [("value_missing", "value")]),
        (
            track("order_paid", {"currency": "EUR", "Bad-Name": 1}, value=3.0),
            [("bad_name", "properties.Bad-Name")],
        ),
        (
            track("signup", {"plan": 7, "seats": 900, "trial": "yes"}, value=2.0),
            [
                ("wrong_type", "properties.plan"),
                ("out_of_range", "properties.seats"),
                ("wrong_type", "properties.trial"),
                ("value_unexpected", "value"),
            ],
        ),
        (track("order_paid", {"currency": "USD"}, value=9.5), []),
        ({"kind": "exposure", "event_id": "nope"}, [("invalid_event_id", "event_id")]),
    ]
    return [c[0] for c in cases], [c[1] for c in cases]


async def apply_plan(admin: httpx.AsyncClient, plan: dict[str, Any]) -> None:
    response = await admin.put("/v1/admin/flag-set", json={"flags": {}, "events": plan})
    assert response.status_code == 200, response.text


async def violations(admin: httpx.AsyncClient, expected_total: int) -> Counter[tuple[str, str, str]]:
    """The persisted violation counts, once the worker's flush brought them all (it runs every 2 s)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for _ in range(60):
        body = (await admin.get("/v1/admin/events/plan")).json()
        counts = Counter()
        for row in body["violations"]:
            counts[(row["event"], row["code"], row["mode"])] += row["count"]
        if sum(counts.values()) >= expected_total:
            return counts
        await asyncio.sleep(0.1)
    return counts


@pytest.mark.parametrize("settings", ["enforce"], indirect=True)
async def test_should_refuse_every_violation_in_enforce_and_store_the_valid_events_once(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await apply_plan(admin, PLAN)
    events, expected = mixed_batch()
    response = await sdk.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    got = {r["index"]: [(p["code"], p["field"]) for p in r["problems"]] for r in body["rejected"]}
    assert got[14][0] == ("invalid_event_id", "event_id")  # refused before the plan is checked
    assert {i: c for i, c in got.items() if i != 14} == {i: c for i, c in enumerate(expected[:14]) if c}
    first = next(r for r in body["rejected"] if r["index"] == 12)
    assert first["code"] == "wrong_type"
    assert "and 3 more" in first["message"]
    again = await sdk.post("/v1/events", json={"events": events})  # a retry: the valid ones are stored once
    assert again.json()["accepted"] == 2
    stored = sorted(str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM events"))
    assert stored == sorted([events[0]["event_id"], events[13]["event_id"]])
    per_batch = sum(len(codes) for codes in expected[:14])
    counts = await violations(admin, 2 * per_batch)
    assert counts[("signup", "wrong_type", "enforce")] == 2 * 3
    assert counts[("SignedUp", "unplanned_event", "enforce")] == 2
    assert sum(counts.values()) == 2 * per_batch


async def test_should_store_every_event_in_observe_mode_and_count_each_violation_exactly(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await apply_plan(admin, {**PLAN, "$plan": {"mode": "observe"}})
    events, expected = mixed_batch()
    response = await sdk.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events) - 1
    assert [r["index"] for r in response.json()["rejected"]] == [14]
    assert await conn.fetchval("SELECT count(*) FROM events") == len(events) - 1  # all but the malformed one
    want = Counter(
        (events[i]["event"], code, "observe")
        for i, codes in enumerate(expected)
        for code, _ in codes
        if i != 14
    )
    assert await violations(admin, sum(want.values())) == want
    metrics = (await admin.get("/metrics")).text
    assert 'flagd_event_plan_violations_total{code="not_in_enum",event="signup",mode="observe"}' in metrics
