"""OFREP evaluations of a running experiment's flag are exposures, recorded by the server itself."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from flagd.auth.keys import Scope
from tests.pipelined import post_request, send_pipelined
from tests.support import TIMEOUT, LiveServer, bearer, create_key, serving_workers

DOCUMENT: dict[str, Any] = {
    "flags": {
        "checkout": {"state": "ENABLED", "variants": {"off": "off", "on": "on"}, "defaultVariant": "off"},
        "banner": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a"},
    },
    "experiments": {
        "one-page": {
            "flag": "checkout",
            "variants": {"off": 50, "on": 50},
            "eligibility": {"in": [{"var": "country"}, ["NL", "BE"]]},
        },
    },
}


async def start_experiment(admin: httpx.AsyncClient, document: dict[str, Any] = DOCUMENT) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    started = await admin.post("/v1/admin/experiments/one-page/start")
    assert started.status_code == 200, started.text


async def evaluate(http: httpx.AsyncClient, unit: str, **context: Any) -> dict[str, Any]:
    response = await http.post(
        "/ofrep/v1/evaluate/flags/checkout", json={"context": {"targetingKey": unit, **context}}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def exposures_when_settled(conn: asyncpg.Connection, expected: int, wait: float = 20.0) -> list[Any]:
    """The exposure rows once `expected` are there (they are written after the answer), or at the timeout."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        rows = await conn.fetch("SELECT * FROM exposures ORDER BY unit")
        if len(rows) >= expected or asyncio.get_running_loop().time() > deadline:
            return list(rows)
        await asyncio.sleep(0.05)


async def test_should_record_an_exposure_per_unit_with_the_variant_served(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await start_experiment(admin)
    served = {}
    for unit in (f"user-{i}" for i in range(50)):
        for _ in range(3):
            body = await evaluate(sdk, unit, country="NL")
            assert body["metadata"]["experimentExposure"] is True
            served[unit] = body["variant"]
    outside = await evaluate(sdk, "user-from-fr", country="FR")
    assert outside["metadata"]["experimentExposure"] is False
    rows = await exposures_when_settled(conn, 50)
    assert {r["unit"]: r["variant"] for r in rows} == served
    assert {(r["experiment"], r["phase"], r["source"]) for r in rows} == {("one-page", 1, "server")}
    # An evaluation outside the experiment, or of a flag without one, is no exposure.
    await evaluate(sdk, "late-one", country="BE")
    await sdk.post("/ofrep/v1/evaluate/flags/banner", json={"context": {"targetingKey": "u"}})
    rows = await exposures_when_settled(conn, 51)
    assert "user-from-fr" not in {r["unit"] for r in rows}
    assert len(rows) == 51


async def test_should_not_record_when_the_request_or_the_key_says_so(
    server: LiveServer,
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_experiment(admin)
    for value in ("off", "false", "0"):
        response = await sdk.post(
            "/ofrep/v1/evaluate/flags/checkout",
            json={"context": {"targetingKey": f"opted-{value}", "country": "NL"}},
            headers={"Flagd-Server-Exposures": value},
        )
        assert response.json()["metadata"]["experimentExposure"] is True
    quiet = await create_key(database_url, Scope.SDK, "logs-its-own", server_exposures=False)
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url, headers=bearer(quiet)) as own:
        await evaluate(own, "key-opted-out", country="NL")
    # Bulk evaluation fills a client's cache: no exposure, and it says where exposures go.
    bulk = await sdk.post(
        "/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "bulk", "country": "NL"}}
    )
    assert bulk.json()["metadata"]["eventsEndpoint"] == "/v1/events"
    assert bulk.json()["metadata"]["serverExposures"] is False
    checkout = next(f for f in bulk.json()["flags"] if f["key"] == "checkout")
    assert checkout["metadata"]["experimentExposure"] is True
    # A unit that is recorded, sent last: once it is there, the others would have been too.
    await evaluate(sdk, "marker", country="NL")
    rows = await exposures_when_settled(conn, 1)
    assert [r["unit"] for r in rows] == ["marker"]


async def test_should_record_exactly_one_exposure_per_unit_over_two_workers(
    database_url: str, tmp_path: Path
) -> None:
    admin_key = await create_key(database_url, Scope.ADMIN)
    sdk_key = await create_key(database_url, Scope.SDK)
    units = [f"unit-{i:05d}" for i in range(10_000)]
    document = {
        **DOCUMENT,
        "experiments": {"one-page": {"flag": "checkout", "variants": {"off": 1, "on": 1}}},
    }
    server, base = await serving_workers(database_url, tmp_path / "serve.log")
    port = int(base.rsplit(":", 1)[1])
    try:
        async with httpx.AsyncClient(base_url=base, headers=bearer(admin_key), timeout=30) as admin:
            await start_experiment(admin, document)
        # Ten rounds over all units, each round in a new order, over 16 connections (the kernel spreads
        # connections over both workers, so most units are evaluated by both).
        rng = random.Random(7)
        order = [u for _ in range(10) for u in rng.sample(units, len(units))]
        headers = {"Authorization": f"Bearer {sdk_key}"}
        requests = [
            post_request("/ofrep/v1/evaluate/flags/checkout", {"context": {"targetingKey": u}}, headers)
            for u in order
        ]
        lanes = 16

        async def lane_after(lane: int) -> list[tuple[int, bytes]]:
            # Connections opened one after another (20 ms apart), so each worker's loop gets to accept some:
            # opened all at once, a busy machine can hand every one to the same worker.
            await asyncio.sleep(lane * 0.02)
            return await send_pipelined("127.0.0.1", port, requests[lane::lanes])

        answers = await asyncio.gather(*(lane_after(lane) for lane in range(lanes)))
        served: dict[str, set[str]] = {}
        for lane, lane_answers in enumerate(answers):
            for unit, (status, body) in zip(order[lane::lanes], lane_answers, strict=True):
                assert status == 200, body
                served.setdefault(unit, set()).add(orjson.loads(body)["variant"])
        conn = await asyncpg.connect(database_url)
        try:
            rows = await exposures_when_settled(conn, len(units), wait=30)
            # Whatever else arrives late would show up now.
            await asyncio.sleep(1.0)
            count = await conn.fetchval("SELECT count(*) FROM exposures")
        finally:
            await conn.close()
    finally:
        code = await asyncio.to_thread(server.stop)
    assert code == 0, server.output
    # The access log names each line's worker process: both served evaluations.
    workers = set(
        re.findall(r"\[(\d+)\] flagd\.access: .* \"POST /ofrep/v1/evaluate/flags/checkout", server.output)
    )
    assert len(workers) == 2, workers
    assert all(len(variants) == 1 for variants in served.values())
    assert count == len(units) == len(rows)
    assert {r["unit"]: r["variant"] for r in rows} == {u: next(iter(v)) for u, v in served.items()}
    assert not any(r["multiple_variants"] for r in rows)
