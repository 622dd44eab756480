"""The rollouts API: bad input refused with a located reason, moves by hand, and every move made once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.rollouts.service import RolloutService
from flagd.settings import Settings
from flagd.storage.pool import open_pool
from tests.flagd.rollouts.traffic import FLAG_SET, Clock, definition, monitor
from tests.support import LiveServer, bearer, create_key, running_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, rollouts_monitor_seconds=0)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running_server(create_app(settings)) as live:
        yield live


async def _flags(admin: httpx.AsyncClient) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=FLAG_SET)).status_code == 200


async def test_should_refuse_bad_rollouts_with_what_to_fix(
    admin: httpx.AsyncClient, server: LiveServer, database_url: str
) -> None:
    await _flags(admin)
    bad = {
        "flag": "checkout",
        "variant": "newest",
        "stages": [{"percent": 10}, {"percent": 5}, {"percent": "all"}],
        "guardrails": [{"metric": "nope"}],
        "on_harm": "panic",
    }
    answer = await admin.post("/v1/rollouts", json={"key": "r", "definition": bad})
    assert answer.status_code == 422
    paths = {d["path"] for d in answer.json()["error"]["details"]}
    assert {"variant", "stages[1].percent", "stages[2].percent", "guardrails[0]", "on_harm"} <= paths
    for body, status, code in [
        ({"key": "r"}, 400, "missing_field"),
        ({"key": "r", "definition": [], "extra": 1}, 400, "unknown_field"),
        ({"key": "r", "definition": []}, 400, "invalid_parameter"),
        ({"key": "bad key", "definition": {}}, 422, "validation_failed"),
        ({"key": "r", "definition": {"flag": "nope", "variant": "new"}}, 422, "validation_failed"),
    ]:
        answer = await admin.post("/v1/rollouts", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), body
    results = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(results)) as reader:
        refused = await reader.post(
            "/v1/rollouts", json={"key": "r", "definition": definition(100, min_units=1)}
        )
        assert refused.status_code == 403
        assert (await reader.get("/v1/rollouts/none")).json()["error"]["code"] == "rollout_not_found"
        assert (await reader.get("/v1/rollouts")).json() == {"rollouts": []}  # nothing written


async def test_should_move_by_hand_audit_notify_and_refuse_what_does_not_apply(
    admin: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await _flags(admin)
    started = await admin.post(
        "/v1/rollouts", json={"key": "r", "definition": definition(1, 50, 100, min_units=1)}
    )
    assert started.json()["state"] == "running"
    assert started.json()["percent"] == 1
    again = await admin.post(
        "/v1/rollouts", json={"key": "r2", "definition": definition(1, 100, min_units=1)}
    )
    assert again.json()["error"]["code"] == "rollout_conflict"
    assert (await admin.post("/v1/rollouts", json={"key": "r", "definition": {}})).json()["error"][
        "code"
    ] == "rollout_exists"
    assert (await admin.post("/v1/rollouts/r/pause")).json()["state"] == "paused"
    assert (await admin.post("/v1/rollouts/r/pause")).json()["error"]["code"] == "rollout_state"
    too_long = await admin.post("/v1/rollouts/r/resume", json={"reason": "x" * 501})
    assert too_long.json()["error"]["code"] == "invalid_parameter"
    assert (await admin.post("/v1/rollouts/r/resume", json={"reason": "looked fine"})).json()[
        "state"
    ] == "running"
    advanced = (await admin.post("/v1/rollouts/r/advance")).json()
    assert (advanced["stage"], advanced["percent"], advanced["phase"]) == (1, 50, 2)
    assert (await admin.post("/v1/rollouts/r/rollback")).json()["state"] == "rolled_back"
    assert (await admin.post("/v1/rollouts/r/advance")).status_code == 409
    detail = (await admin.get("/v1/rollouts/r")).json()
    assert [t["action"] for t in detail["transitions"]] == ["start", "pause", "resume", "advance", "rollback"]
    assert detail["transitions"][2]["reason"] == "looked fine"
    assert [s["percent"] for s in detail["shareOverTime"]] == [1, 1, 1, 50, 0]
    # Every flag change also notifies flag.changed (the rollout's moves change its flag); the rollout's own kinds:
    kinds = [
        r["kind"]
        for r in await conn.fetch(
            "SELECT kind FROM notifications WHERE kind LIKE 'rollout.%' ORDER BY created_at, id"
        )
    ]
    assert kinds == ["rollout.advanced", "rollout.rolled_back"]
    audit = (await admin.get("/v1/admin/audit", params={"entity": "rollout"})).json()["entries"]
    assert [e["action"] for e in reversed(audit)] == ["start", "pause", "resume", "advance", "rollback"]
    phases = await conn.fetch(
        "SELECT phase, ended_at FROM experiment_phases WHERE experiment = 'rollout:r' ORDER BY phase"
    )
    assert [p["phase"] for p in phases] == [1, 2]
    assert all(p["ended_at"] is not None for p in phases)


async def test_should_make_each_transition_once_when_two_hosts_decide_together(
    admin: httpx.AsyncClient, settings: Settings, conn: asyncpg.Connection
) -> None:
    await _flags(admin)
    body = definition(1, 50, 100, min_units=1, seconds=0)
    assert (await admin.post("/v1/rollouts", json={"key": "r", "definition": body})).status_code == 201
    version = await conn.fetchval("SELECT version FROM rollouts WHERE key = 'r'")
    # Two hosts' monitors (each its own pool) look at the same version: no traffic, so both decide to hold.
    clock = Clock()
    async with monitor(settings, clock) as one, monitor(settings, clock) as other:
        made = await asyncio.gather(one.run_once(), other.run_once())
    assert sorted(made, key=len) == [[], [("r", "hold")]]
    # And two operators' moves from one version: one commits, the other finds it moved and changes nothing.
    pools = [await open_pool(settings) for _ in range(2)]
    try:

        async def advance(pool: asyncpg.Pool) -> object:
            async with pool.acquire() as c, c.transaction():
                return await RolloutService(c, "ops").move(
                    "r", "advance", reason="by hand", version=version + 1
                )

        outcomes = await asyncio.gather(*(advance(pool) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    assert sorted(o is None for o in outcomes) == [False, True]
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM rollout_transitions ORDER BY id")]
    assert actions == ["start", "hold", "advance"]
    audited = await conn.fetchval("SELECT count(*) FROM audit_log WHERE entity = 'rollout'")
    assert audited == 3
