"""Schedules through the API against an in-process server whose executor polls every 50 ms: a due change
is made once, by the services a change by hand goes through, audited under `schedule:<id>` and notified;
a change that no longer fits fails with its reason and changes nothing; bad requests change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from flagd.auth.keys import Scope
from flagd.settings import Settings
from tests.support import LiveServer, bearer, create_key, flag_definition

EXPERIMENTS: dict[str, Any] = {
    "flags": {
        "checkout": {"state": "ENABLED", "variants": {"off": "off", "on": "on"}, "defaultVariant": "off"}
    },
    "metrics": {"checkout-rate": {"type": "conversion", "event": "checkout", "direction": "increase"}},
    "experiments": {
        "one-page": {
            "flag": "checkout",
            "variants": {"off": 50, "on": 50},
            "allocation_bp": 10000,
            "metrics": [{"metric": "checkout-rate", "role": "primary"}],
        }
    },
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, schedules_poll_seconds=0.05)


@pytest.fixture
async def results(server: LiveServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, headers=bearer(token)) as http:
        yield http


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def settled(http: httpx.AsyncClient, schedule_id: int) -> dict[str, Any]:
    """The schedule once it is no longer pending (the executor polls every 50 ms)."""
    for _ in range(400):
        body: dict[str, Any] = (await http.get(f"/v1/schedules/{schedule_id}")).json()
        if body["status"] != "pending":
            return body
        await asyncio.sleep(0.025)
    raise AssertionError(f"schedule {schedule_id} was never executed: {body}")


async def serving(http: httpx.AsyncClient, version: int) -> None:
    """Until the server serves config `version` (it reloads after each schedule it executes)."""
    for _ in range(400):
        ready = await http.get("/readyz")
        if ready.json()["configVersion"] >= version:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never served config version {version}")


async def make_due(database_url: str, schedule_id: int) -> None:
    """Move a schedule's due time to now: the test's clock, instead of waiting for it."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE schedules SET due_at = now() WHERE id = $1", schedule_id)
    finally:
        await conn.close()


async def audit(admin: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await admin.get("/v1/admin/audit", params=query)).json()["entries"]
    return entries


async def notifications(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT kind, subject, payload::text AS payload FROM notifications"
            " WHERE kind = 'schedule.executed' ORDER BY created_at"
        )
    finally:
        await conn.close()


async def test_should_enable_a_flag_when_due_once_audited_and_notified(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results: httpx.AsyncClient, database_url: str
) -> None:
    created = await admin.post(
        "/v1/admin/flags", json={"key": "banner", "definition": flag_definition(state="DISABLED")}
    )
    assert created.status_code == 201, created.text
    later = await admin.post(
        "/v1/schedules", json={"action": "disable_flag", "target": "banner", "dueAt": at(3600)}
    )
    assert later.status_code == 201, later.text
    now = await admin.post(
        "/v1/schedules",
        json={"action": "enable_flag", "target": "banner", "dueAt": at(-60), "allowPast": True},
    )
    assert now.status_code == 201, now.text
    assert now.headers["location"] == f"/v1/schedules/{now.json()['id']}"

    done = await settled(results, now.json()["id"])
    assert done["status"] == "executed", done
    assert done["result"]["changed"] is True
    assert done["executedBy"]
    await serving(sdk, done["result"]["configVersion"])
    served = await sdk.post("/ofrep/v1/evaluate/flags/banner", json={"context": {"targetingKey": "u1"}})
    assert served.json()["reason"] == "STATIC", served.text  # DISABLED before
    # The one due earlier ran; the one due in an hour still waits.
    assert (await results.get(f"/v1/schedules/{later.json()['id']}")).json()["status"] == "pending"

    actor = f"schedule:{now.json()['id']}"
    flag_entries = [e for e in await audit(admin, entity="flag", key="banner") if e["actor"] == actor]
    assert [(e["action"], e["after"]["state"]) for e in flag_entries] == [("update", "ENABLED")]
    executions = await audit(admin, entity="schedule", key=str(now.json()["id"]))
    assert [e["action"] for e in executions] == ["execute", "create"]
    assert executions[0]["after"]["status"] == "executed"
    sent = await notifications(database_url)
    assert [(n["kind"], n["subject"]) for n in sent] == [("schedule.executed", "banner")]
    assert f'"schedule":{now.json()["id"]}' in sent[0]["payload"].replace(" ", "")

    listed = (await results.get("/v1/schedules", params={"status": "pending"})).json()["schedules"]
    assert [s["id"] for s in listed] == [later.json()["id"]]
    cancelled = await admin.post(f"/v1/schedules/{later.json()['id']}/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled"), cancelled.text
    again = await admin.post(f"/v1/schedules/{later.json()['id']}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "schedule_not_pending")
    executed_again = await admin.post(f"/v1/schedules/{now.json()['id']}/cancel")
    assert executed_again.status_code == 409


async def test_should_fail_an_update_when_the_flag_changed_since_but_toggle_state_anyway(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results: httpx.AsyncClient, database_url: str
) -> None:
    await admin.post("/v1/admin/flags", json={"key": "color", "definition": flag_definition()})
    update = {"action": "update_flag", "target": "color", "dueAt": at(3600)}
    pinned = await admin.post(
        "/v1/schedules", json={**update, "definition": flag_definition(defaultVariant="on")}
    )
    assert (pinned.status_code, pinned.json()["flagVersion"]) == (201, 1), pinned.text
    toggle = await admin.post(
        "/v1/schedules", json={"action": "disable_flag", "target": "color", "dueAt": at(3600)}
    )
    # Someone changes the flag by hand before the schedules are due.
    edited = await admin.put(
        "/v1/admin/flags/color",
        json={"definition": flag_definition(metadata={"team": "web"})},
        headers={"If-Match": '"1"'},
    )
    assert edited.status_code == 200, edited.text
    await make_due(database_url, pinned.json()["id"])
    failed = await settled(results, pinned.json()["id"])
    assert failed["status"] == "failed"
    assert failed["result"] is None
    assert "changed since" in failed["error"]
    assert "version 2, not version 1" in failed["error"]
    flag = (await admin.get("/v1/admin/flags/color")).json()
    assert (flag["version"], flag["definition"]["defaultVariant"]) == (2, "off")  # not overwritten
    assert not [
        e for e in await audit(admin, entity="flag", key="color") if e["actor"].startswith("schedule:")
    ]

    await make_due(database_url, toggle.json()["id"])
    assert (await settled(results, toggle.json()["id"]))["status"] == "executed"
    flag = (await admin.get("/v1/admin/flags/color")).json()
    assert flag["definition"] == flag_definition(metadata={"team": "web"}, state="DISABLED")
    kinds = [
        (n["kind"], '"status":"failed"' in n["payload"].replace(" ", ""))
        for n in await notifications(database_url)
    ]
    assert kinds == [("schedule.executed", True), ("schedule.executed", False)]

    # Pinned to the version it was made on, an update runs.
    fresh = await admin.post(
        "/v1/schedules", json={**update, "definition": flag_definition(defaultVariant="on")}
    )
    await make_due(database_url, fresh.json()["id"])
    updated = await settled(results, fresh.json()["id"])
    assert updated["status"] == "executed", updated
    await serving(sdk, updated["result"]["configVersion"])
    served = await sdk.post("/ofrep/v1/evaluate/flags/color", json={"context": {"targetingKey": "u1"}})
    assert served.json()["variant"] == "on", served.text


async def test_should_start_and_stop_an_experiment_and_fail_what_its_lifecycle_refuses(
    admin: httpx.AsyncClient, results: httpx.AsyncClient, database_url: str
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=EXPERIMENTS)).status_code == 200
    ids = []
    for action in ("start_experiment", "stop_experiment", "stop_experiment"):
        made = await admin.post(
            "/v1/schedules", json={"action": action, "target": "one-page", "dueAt": at(3600)}
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    outcomes = []
    for schedule_id in ids:
        await make_due(database_url, schedule_id)
        outcomes.append(await settled(results, schedule_id))
    assert [o["status"] for o in outcomes] == ["executed", "executed", "failed"]
    assert (outcomes[0]["result"]["state"], outcomes[0]["result"]["phase"]) == ("running", 1)
    assert "stopped" in outcomes[2]["error"]
    lifecycle = await audit(admin, entity="experiment", key="one-page")
    assert [(e["action"], e["actor"]) for e in lifecycle if e["action"] != "create"] == [
        ("stop", f"schedule:{ids[1]}"),
        ("start", f"schedule:{ids[0]}"),
    ]


async def test_should_refuse_bad_schedules_and_write_nothing(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results: httpx.AsyncClient,
    server: LiveServer,
    database_url: str,
) -> None:
    await admin.put("/v1/admin/flag-set", json=EXPERIMENTS)
    good = {"action": "enable_flag", "target": "checkout", "dueAt": at(3600)}
    cases: list[tuple[Any, int, str]] = [
        ([good], 400, "wrong_type"),
        ({**good, "when": 1}, 400, "unknown_field"),
        ({"action": "enable_flag", "target": "checkout"}, 400, "missing_field"),
        ({**good, "action": "delete_flag"}, 400, "invalid_schedule"),
        ({**good, "target": "no spaces"}, 400, "invalid_schedule"),
        ({**good, "target": 7}, 400, "invalid_schedule"),
        ({**good, "dueAt": "tomorrow"}, 400, "invalid_schedule"),
        ({**good, "dueAt": "2026-12-24T18:00:00"}, 400, "invalid_schedule"),  # no zone
        ({**good, "dueAt": "2026-02-30T18:00:00Z"}, 400, "invalid_schedule"),
        ({**good, "dueAt": 1767000000}, 400, "invalid_schedule"),
        ({**good, "allowPast": "yes"}, 400, "invalid_schedule"),
        ({**good, "definition": flag_definition()}, 400, "invalid_schedule"),
        ({**good, "action": "update_flag"}, 400, "invalid_schedule"),
        ({**good, "dueAt": at(-60)}, 422, "schedule_in_past"),
        ({**good, "dueAt": "9999-12-31T23:59:59Z"}, 422, "schedule_too_far"),
        (
            {**good, "action": "update_flag", "definition": {"state": "ENABLED", "variants": {}}},
            422,
            "validation_failed",
        ),
        ({**good, "target": "nothing"}, 404, "flag_not_found"),
        ({**good, "action": "start_experiment", "target": "nothing"}, 404, "experiment_not_found"),
    ]
    for body, status, code in cases:
        answer = await admin.post("/v1/schedules", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (body, answer.text)
        assert answer.json()["error"]["message"]
    raw = [
        (b"{not json", {"Content-Type": "application/json"}, 400, "malformed_body"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (
            b'{"a": "' + b"x" * 1_100_000 + b'"}',
            {"Content-Type": "application/json"},
            413,
            "payload_too_large",
        ),
    ]
    for content, headers, status, code in raw:
        answer = await admin.post("/v1/schedules", content=content, headers=headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert (await sdk.post("/v1/schedules", json=good)).status_code == 403
    assert (await results.post("/v1/schedules", json=good)).status_code == 403
    assert (await sdk.get("/v1/schedules")).status_code == 403
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/v1/schedules")).status_code == 401
    for path in (
        "/v1/schedules/0",
        "/v1/schedules/abc",
        "/v1/schedules/99999999999999999999",
        "/v1/schedules/5",
    ):
        answer = await results.get(path)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "schedule_not_found"), path
    assert (await admin.post("/v1/schedules/5/cancel")).json()["error"]["code"] == "schedule_not_found"
    assert (await results.post("/v1/schedules/5/cancel")).status_code == 403
    for query in ({"status": "done"}, {"limit": "0"}, {"before": "-1"}):
        answer = await results.get("/v1/schedules", params=query)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_parameter"), query
    assert (await results.get("/v1/schedules")).json() == {"schedules": []}
    assert not [e for e in await audit(admin, entity="schedule")]
