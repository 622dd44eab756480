"""Issue 24's rollouts end to end: OFREP, POST /v1/events, the served flags, and a monitor on a clock the
test controls (the server's own monitor is off, so only the test's clock moves stages)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.settings import Settings
from tests.flagd.rollouts.traffic import FLAG_SET, Clock, Traffic, definition, monitor
from tests.support import LiveServer, bearer, create_key, running_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, rollouts_monitor_seconds=0, config_poll_seconds=0.2)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running_server(create_app(settings)) as live:
        yield live


@pytest.fixture
async def sdk(server: LiveServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    token = await create_key(database_url, Scope.SDK, "app", server_exposures=False)
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, headers=bearer(token)) as http:
        yield http


async def _start(admin: httpx.AsyncClient, key: str, body: dict[str, object]) -> int:
    assert (await admin.put("/v1/admin/flag-set", json=FLAG_SET)).status_code == 200
    started = await admin.post("/v1/rollouts", json={"key": key, "definition": body})
    assert started.status_code == 201, started.text
    version: int = started.json()["configVersion"]
    return version


async def test_should_roll_a_harmful_variant_back_before_ten_percent_and_return_its_units(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    settings: Settings,
    server: LiveServer,
    database_url: str,
) -> None:
    version = await _start(admin, "harmful", definition(1, 5, 10, 25, 50, 100, min_units=8_000))
    traffic = Traffic(sdk, {"old": 0.30, "new": 0.39})  # +30% relative
    clock = Clock()
    reached: dict[str, str] = {}
    moves: list[tuple[str, str]] = []
    next_unit = 0
    async with monitor(settings, clock) as watcher:
        while not any(move == "rollback" for _, move in moves) and traffic.sent < 40_000:
            document = await traffic.served(version)
            units = [f"u{next_unit + i}" for i in range(2_000)]
            next_unit += len(units)
            reached.update({u: v for u, v in (await traffic.visit(document, units)).items() if v == "new"})
            clock.advance(3_601)
            moves = await watcher.run_once()
            if moves:
                version = await _config(admin)
    rollout = (await admin.get("/v1/rollouts/harmful")).json()
    assert rollout["state"] == "rolled_back", rollout
    assert max(t["percent"] for t in rollout["transitions"]) <= 10  # never passed 10% of units
    harm = rollout["transitions"][-1]
    assert harm["action"] == "rollback"
    assert harm["statistics"]["guardrails"][0]["harmed"] is True
    assert harm["statistics"]["guardrails"][0]["ciLow"] > 0
    # At once: the next served set (SDK) and OFREP give every unit the new variant reached back the old one.
    document = await traffic.served(version)
    assert set(traffic.assign(document, reached).values()) == {"old"}
    for unit in list(reached)[:20]:
        answer = await sdk.post("/ofrep/v1/evaluate/flags/checkout", json={"context": {"targetingKey": unit}})
        assert answer.json()["variant"] == "old"
    audit = (await admin.get("/v1/admin/audit", params={"entity": "rollout", "key": "harmful"})).json()
    assert next(e["action"] for e in audit["entries"]) == "rollback"


async def test_should_take_a_harmless_variant_to_everyone_on_schedule(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, settings: Settings
) -> None:
    version = await _start(admin, "harmless", definition(1, 10, 50, 100, min_units=500))
    traffic = Traffic(sdk, {"old": 0.30, "new": 0.30})
    clock = Clock()
    first_new: dict[str, str] = {}
    async with monitor(settings, clock) as watcher:
        for stage in range(3):
            document = await traffic.served(version)
            units = [f"u{i}" for i in range(600)]  # the same units each stage: none may move back
            assigned = await traffic.visit(document, units)
            assert all(assigned[u] == "new" for u in first_new), "a unit moved back"
            first_new.update({u: v for u, v in assigned.items() if v == "new"})
            clock.advance(3_599)
            assert await watcher.run_once() == []  # not before the stage's minimum duration
            clock.advance(2)
            assert await watcher.run_once() == [("harmless", "complete" if stage == 2 else "advance")]
            version = await _config(admin)
    rollout = (await admin.get("/v1/rollouts/harmless")).json()
    assert rollout["state"] == "completed"
    assert [s["percent"] for s in rollout["shareOverTime"]] == [1, 10, 50, 100]
    document = await traffic.served(version)
    assert set(traffic.assign(document, [f"u{i}" for i in range(600)]).values()) == {"new"}


async def _config(admin: httpx.AsyncClient) -> int:
    response = await admin.get("/v1/admin/flag-set")
    return int(response.headers["ETag"].strip('"').removeprefix("cfg-"))
