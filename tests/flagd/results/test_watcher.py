"""The results watcher on live servers: events through POST /v1/events that harm a guardrail, skew the split
or make a winner are each notified once in the outbox, by two servers watching one database, and not again."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.settings import Settings
from tests.support import LiveServer, bearer, create_key, running_server

WATCH_SECONDS = 0.05


def _flag() -> dict[str, Any]:
    return {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "old"}


def _experiment(flag: str, *metrics: tuple[str, str]) -> dict[str, Any]:
    return {
        "flag": flag,
        "variants": {"old": 1, "new": 1},
        "metrics": [{"metric": metric, "role": role} for metric, role in metrics],
    }


DOCUMENT: dict[str, Any] = {
    "flags": {name: _flag() for name in ("f-harm", "f-skew", "f-win", "f-empty")},
    "metrics": {
        "bought": {"type": "conversion", "event": "purchase", "direction": "increase"},
        "errors": {"type": "conversion", "event": "error", "direction": "decrease"},
        "silent": {"type": "conversion", "event": "never_sent", "direction": "increase"},
    },
    "experiments": {
        "harm": _experiment("f-harm", ("bought", "primary"), ("errors", "guardrail")),
        "skew": _experiment("f-skew", ("bought", "primary")),
        "win": _experiment("f-win", ("bought", "primary")),
        "empty": _experiment("f-empty", ("silent", "primary")),
    },
}


def _track(name: str, unit: str, at: datetime) -> dict[str, Any]:
    return {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": at.isoformat(),
        "event": name,
        "unit": unit,
    }


def simulated(
    experiment: str, units: dict[str, int], rates: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """`units` exposed per variant now, and each variant's events at exactly its rates."""
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for variant, count in units.items():
        for i in range(count):
            unit = f"{experiment}-{variant}-{i}"
            events.append(
                {
                    "kind": "exposure",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": now.isoformat(),
                    "experiment": experiment,
                    "phase": 1,
                    "variant": variant,
                    "unit": unit,
                }
            )
            for name, rate in rates[variant].items():
                if i < round(count * rate):  # exactly that share of the variant's units
                    events.append(_track(name, unit, now + timedelta(milliseconds=200)))
    return events


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, results_watch_seconds=WATCH_SECONDS)


async def _notifications(conn: asyncpg.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    # The watcher's kinds only: the test's flag and experiment changes notify flag.changed besides.
    rows = await conn.fetch(
        "SELECT kind, subject, payload::text AS payload FROM notifications WHERE kind LIKE 'experiment.%' ORDER BY id"
    )
    return [(row["kind"], row["subject"], orjson.loads(row["payload"])) for row in rows]


async def _rounds(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["experiment"]: r["rounds"] for r in await conn.fetch("SELECT * FROM experiment_watch")}


async def _until_rounds(conn: asyncpg.Connection, at_least: dict[str, int]) -> None:
    """Until every experiment of `at_least` was watched at least that many rounds."""
    for _ in range(400):
        rounds = await _rounds(conn)
        if all(rounds.get(key, 0) >= n for key, n in at_least.items()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the watcher did not reach {at_least} rounds: {rounds}")


async def _post(sdk: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    response = await sdk.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text


async def test_should_notify_each_change_once_with_two_servers_watching(
    server: LiveServer,
    settings: Settings,
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    conn: asyncpg.Connection,
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    # The metrics' events have arrived before (so "no event has arrived yet" is not what this test sees).
    before = datetime.now(UTC)
    await _post(sdk, [_track("purchase", "earlier", before), _track("error", "earlier", before)])
    async with running_server(create_app(settings)):  # a second server on the same database
        for key in DOCUMENT["experiments"]:
            assert (await admin.post(f"/v1/admin/experiments/{key}/start")).status_code == 200
        # Started, no data yet: watched, nothing notified (the empty experiment's failing check, which it
        # keeps to the end, is noise).
        await _until_rounds(conn, dict.fromkeys(DOCUMENT["experiments"], 1))
        assert await _notifications(conn) == []
        equal = {"purchase": 0.1, "error": 0.04}
        # In one batch, one transaction: no round sees one experiment's events before another's exposures.
        await _post(
            sdk,
            simulated("harm", {"old": 500, "new": 500}, {"old": equal, "new": {**equal, "error": 0.3}})
            + simulated("skew", {"old": 600, "new": 900}, {"old": equal, "new": equal})
            + simulated("win", {"old": 500, "new": 500}, {"old": equal, "new": {"purchase": 0.6}}),
        )
        for _ in range(400):
            if len(await _notifications(conn)) >= 5:
                break
            await asyncio.sleep(0.05)
        # Two more rounds of every experiment after the notifications: none repeated, none added.
        seen = await _rounds(conn)
        await _until_rounds(conn, {key: n + 2 for key, n in seen.items()})
        notifications = await _notifications(conn)
    assert Counter((kind, subject) for kind, subject, _ in notifications) == {
        ("experiment.guardrail_harmed", "harm"): 1,
        ("experiment.decision_changed", "harm"): 1,
        ("experiment.health_failed", "skew"): 1,
        ("experiment.decision_changed", "skew"): 1,
        ("experiment.decision_changed", "win"): 1,
    }, notifications
    payloads = {(kind, subject): payload for kind, subject, payload in notifications}
    harmed = payloads["experiment.guardrail_harmed", "harm"]
    assert (harmed["change"]["metric"], harmed["change"]["variant"]) == ("errors", "new")
    assert harmed["change"]["absolute"]["ciLow"] > 0  # the always-valid interval of a rise in errors
    assert harmed["change"]["treatment"]["mean"] == pytest.approx(0.3)
    assert (harmed["phase"], harmed["link"]) == (1, "/experiments/harm")
    assert harmed["units"] == {"old": 500, "new": 500}
    stopped = payloads["experiment.decision_changed", "harm"]
    assert stopped["change"] == {
        "from": {"action": "keep running", "variant": None},
        "to": {"action": "stop", "variant": "new"},
    }
    assert "errors" in stopped["decision"]["reason"]
    assert stopped["headline"].startswith("New is hurting Errors")
    skewed = payloads["experiment.health_failed", "skew"]
    assert skewed["change"]["check"] == "sample ratio"
    assert skewed["change"]["sampleRatio"]["mismatch"] is True
    assert skewed["change"]["sampleRatio"]["pValue"] < 0.001
    assert payloads["experiment.decision_changed", "skew"]["change"]["to"]["action"] == "investigate"
    shipped = payloads["experiment.decision_changed", "win"]
    assert shipped["change"]["to"] == {"action": "ship", "variant": "new"}
    assert shipped["results"] == "/v1/experiments/win/results?phase=1"
    assert (await _rounds(conn)).keys() == set(DOCUMENT["experiments"])


async def test_should_watch_nothing_when_turned_off(
    settings: Settings, admin_key: str, sdk_key: str, database_url: str, conn: asyncpg.Connection
) -> None:
    results_key = await create_key(database_url, Scope.RESULTS, "pm")
    off = create_app(replace(settings, results_watch_seconds=0))
    async with running_server(off) as live, httpx.AsyncClient(base_url=live.url, timeout=30.0) as http:
        admin, sdk, results = bearer(admin_key), bearer(sdk_key), bearer(results_key)
        document = {**DOCUMENT, "experiments": {"harm": DOCUMENT["experiments"]["harm"]}}
        assert (await http.put("/v1/admin/flag-set", json=document, headers=admin)).status_code == 200
        assert (await http.post("/v1/admin/experiments/harm/start", headers=admin)).status_code == 200
        rates = {"old": {"error": 0.04}, "new": {"error": 0.3}}
        events = simulated("harm", {"old": 600, "new": 600}, rates)
        assert (await http.post("/v1/events", json={"events": events}, headers=sdk)).status_code == 200
        body = (await http.get("/v1/experiments/harm/results", headers=results)).json()
        # There would be something to notify.
        assert {"metric": "errors", "variant": "new", "verdict": "harmed"} in body["guardrails"]
        await asyncio.sleep(20 * WATCH_SECONDS)  # twenty rounds of the watcher, were it on
    assert await conn.fetchval("SELECT count(*) FROM experiment_watch") == 0
    assert await conn.fetchval("SELECT count(*) FROM notifications WHERE kind LIKE 'experiment.%'") == 0
