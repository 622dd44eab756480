"""The tracking plan as code (applied, dry-run, exported, audited, problems located), what really arrives
(the observed schema and its differences from the plan), and `flagd events plan` / `tail --unit --check`."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import orjson

from flagd.tracking.observed import example
from tests.flagd.test_cli_flags import flagd
from tests.flagd.tracking.test_arrival import PLAN, apply_plan, track


async def run_flagd(*args: str, database_url: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(flagd, *args, database_url=database_url)
    return done.returncode, done.stdout, done.stderr


async def test_should_refuse_a_plan_with_located_problems_and_change_nothing(
    admin: httpx.AsyncClient,
) -> None:
    bad: dict[str, Any] = {
        "$plan": {"naming": "shouting", "mode": "strict"},
        "SignedUp": {"description": "camel case, against the default rule"},
        "signup": {
            "value": "sometimes",
            "colour": "blue",
            "properties": {
                "plan": {"type": "text"},
                "seats": {"type": "integer", "min": 10, "max": 1},
                "coupon": {"type": "string", "pattern": "(unclosed"},
                "tier": {"type": "integer", "enum": ["gold"]},
                "ref": {"type": "string", "pattern": "(a+)+"},  # catastrophic backtracking on every event
            },
        },
    }
    response = await admin.put("/v1/admin/flag-set", json={"flags": {}, "events": bad})
    assert response.status_code == 422, response.text
    paths = {d["path"] for d in response.json()["error"]["details"]}
    assert {
        "events.$plan.naming",
        "events.$plan.mode",
        "events.SignedUp",
        "events.signup.value",
        "events.signup.colour",
        "events.signup.properties.plan.type",
        "events.signup.properties.seats.max",
        "events.signup.properties.coupon.pattern",
        "events.signup.properties.tier.enum",
        "events.signup.properties.ref.pattern",
    } <= paths, paths
    assert "events" not in (await admin.get("/v1/admin/flag-set")).json()
    unplanned_metric = {
        "flags": {},
        "events": PLAN,
        "metrics": {"signup-rate": {"type": "conversion", "event": "user_signup", "direction": "increase"}},
    }
    response = await admin.put("/v1/admin/flag-set", json=unplanned_metric)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["path"] == "metrics.signup-rate"
    assert '"user_signup", which the tracking plan (events) does not name' in detail["message"]


async def test_should_apply_dry_run_export_and_audit_the_plan(
    admin: httpx.AsyncClient, database_url: str
) -> None:
    document = {
        "flags": {},
        "events": PLAN,
        "metrics": {"signup-rate": {"type": "conversion", "event": "signup", "direction": "increase"}},
    }
    dry = await admin.put("/v1/admin/flag-set?dry_run=true", json=document)
    assert dry.status_code == 200, dry.text
    assert {(c["entity"], c["key"]) for c in dry.json()["changes"] if c["entity"] == "event"} == {
        ("event", "$plan"),
        ("event", "signup"),
        ("event", "order_paid"),
    }
    assert "events" not in (await admin.get("/v1/admin/flag-set")).json()
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    assert (await admin.get("/v1/admin/flag-set")).json()["events"] == PLAN
    again = await admin.put("/v1/admin/flag-set", json=document)
    assert again.json()["changes"] == []  # applying the same file twice changes nothing
    audit = (await admin.get("/v1/admin/audit?entity=event")).json()["entries"]
    assert {e["key"] for e in audit} == {"$plan", "signup", "order_paid"}
    plan = (await admin.get("/v1/admin/events/plan")).json()
    assert (plan["exists"], plan["mode"], plan["unplanned"]) == (True, "enforce", "observe")
    signup = next(e for e in plan["events"] if e["name"] == "signup")
    assert sorted(p["name"] for p in signup["properties"]) == ["coupon", "plan", "seats", "trial"]
    code, out, err = await run_flagd("events", "plan", "show", "--json", database_url=database_url)
    assert code == 0, err
    assert orjson.loads(out)["events"] == plan["events"]


async def test_should_keep_what_really_arrives_and_its_differences_from_the_plan(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await apply_plan(
        admin,
        {**PLAN, "$plan": {"mode": "observe"}, "signup": {**PLAN["signup"], "additional_properties": True}},
    )
    events = [
        track("signup", {"plan": "pro", "seats": 2, "ref": "newsletter"}),
        track("signup", {"plan": "gold", "seats": "3", "ref": None}),
        track("signup", {"plan": "free", "seats": 4, "token": "sk_live_4f9a8b7c6d5e4f3a2b1c"}),
        track("checkout_started", {"step": 1}),
    ]
    assert (await sdk.post("/v1/events", json={"events": events})).status_code == 200
    body: dict[str, Any] = {}
    for _ in range(60):
        body = (await admin.get("/v1/admin/events/schema")).json()
        if len(body["events"]) == 2:
            break
        await asyncio.sleep(0.1)
    signup = next(e for e in body["events"] if e["name"] == "signup")
    props = {p["name"]: p for p in signup["properties"]}
    assert signup["sampledEvents"] == 3
    assert props["seats"]["types"] == {"integer": 2, "string": 1}
    assert (props["ref"]["sharePresent"], props["ref"]["shareNull"]) == (0.3333, 0.3333)
    assert props["token"]["examples"] == []  # a secret-looking string is never kept
    assert set(props["plan"]["examples"]) == {"pro", "gold", "free"}
    kinds = {(d["kind"], d["event"], d["property"]) for d in body["differences"]}
    assert {
        ("unplanned_event", "checkout_started", None),
        ("new_property", "signup", "ref"),
        ("new_property", "signup", "token"),
        ("type_change", "signup", "seats"),
        ("enum_value_not_planned", "signup", "plan"),
    } <= kinds, kinds
    only = (await admin.get("/v1/admin/events/schema?event=checkout_started")).json()
    assert [e["name"] for e in only["events"]] == ["checkout_started"]


async def test_should_tail_one_unit_with_the_plan_check(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str
) -> None:
    await apply_plan(admin, {**PLAN, "$plan": {"mode": "observe"}})
    good = track("signup", {"plan": "pro"}, unit="device-7")
    twice = {**track("signup", {"plan": "pro"}, unit="device-7"), "timestamp": good["timestamp"]}
    wrong = track("signup", {"plan": "gold"}, unit="device-7")
    other = track("signup", {"plan": "pro"}, unit="someone-else")
    assert (await sdk.post("/v1/events", json={"events": [good, twice, wrong, other]})).status_code == 200
    code, out, err = await run_flagd(
        "events",
        "tail",
        "--since",
        "60",
        "--unit",
        "device-7",
        "--check",
        "--json",
        "--limit",
        "3",
        database_url=database_url,
    )
    assert code == 0, err
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert {line["unit"] for line in lines} == {"device-7"}
    checks = [line["check"] for line in lines]
    assert sorted(c["matches"] for c in checks) == [False, True, True]
    assert [v["code"] for c in checks for v in c["violations"]] == ["not_in_enum"]
    assert sum(c["repeatSeconds"] is not None for c in checks) == 2  # fired again within a second


def test_should_keep_only_short_harmless_examples() -> None:
    assert example("pro") == (True, "pro")
    assert example(12) == (True, 12)
    for secret in ("sk_live_4f9a8b7c6d5e4f3a", "eyJhbGciOiJIUzI1NiJ9", "a@b.example", "x" * 25, {"a": 1}):
        assert example(secret) == (False, None), secret
