"""A running experiment stored in the database is served compiled into its flag, over /v1/flags and OFREP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx

from flagd.experiments.compile import served_definition
from flagd.experiments.model import Experiment, Layer
from flagd_sdk.evaluation import FlagType, load_flag_set

FLAG = {"state": "ENABLED", "variants": {"off": "off", "on": "on"}, "defaultVariant": "off"}
EXPERIMENT = {
    "flag": "checkout",
    "hypothesis": "One page lifts checkout",
    "variants": {"off": 1, "on": 1},
    "allocation_bp": 6000,
    "layer": "checkout-layer",
    "metrics": [{"metric": "checkout-rate", "role": "primary"}],
}


async def store(database_url: str, *, experiment: dict[str, Any], state: str = "running") -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO flags (key, definition) VALUES ('checkout', $1::json)", json.dumps(FLAG)
        )
        await conn.execute(
            "INSERT INTO metrics (key, definition) VALUES ('checkout-rate', $1::json)",
            json.dumps({"type": "conversion", "event": "checkout", "direction": "increase"}),
        )
        await conn.execute(
            "INSERT INTO layers (key, definition) VALUES ('checkout-layer', $1::json)",
            json.dumps({"holdout_bp": 1000}),
        )
        await conn.execute(
            "INSERT INTO experiments (key, definition, state, phase, salt, slot_start) "
            "VALUES ('one-page', $1::json, $2, 1, 'phase-1-salt', 1000)",
            json.dumps(experiment),
            state,
        )
        await conn.execute("UPDATE config_state SET version = version + 1")
        await conn.execute("SELECT pg_notify('flagd_config', 'x')")
    finally:
        await conn.close()


async def wait_for_version(sdk: httpx.AsyncClient, version: int) -> httpx.Response:
    for _ in range(100):
        response = await sdk.get("/v1/flags")
        if response.headers.get("x-flagd-config-version") == str(version):
            return response
        await asyncio.sleep(0.05)
    raise AssertionError("the stored change was not served")


async def test_should_serve_a_running_experiment_compiled_and_assign_over_ofrep_as_locally(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient, database_url: str
) -> None:
    await store(database_url, experiment=EXPERIMENT)
    served = (await wait_for_version(sdk, 1)).json()
    flag = served["flags"]["checkout"]
    assert flag["metadata"] == {
        "experimentKey": "one-page",
        "experimentPhase": 1,
        "experimentUnit": "targetingKey",
        "layer": "checkout-layer",
    }
    stored = Experiment(
        "one-page",
        "checkout",
        (("off", 1), ("on", 1)),
        "phase-1-salt",
        6000,
        layer="checkout-layer",
        slot_start=1000,
        state="running",
        phase=1,
    )
    expected = served_definition(
        FLAG, stored, Layer("checkout-layer", "layer:checkout-layer", 1000), [stored]
    )
    assert flag == expected
    local = load_flag_set(served)
    in_experiment = 0
    for i in range(10_000):  # every unit of the acceptance check, over HTTP
        unit = f"user-{i}"
        remote = await sdk.post("/ofrep/v1/evaluate/flags/checkout", json={"context": {"targetingKey": unit}})
        mine = local.resolve(FlagType.ANY, "checkout", None, {"targetingKey": unit})
        assert (remote.json()["variant"], remote.json()["reason"]) == (mine.variant, mine.reason.value)
        in_experiment += mine.reason.value == "SPLIT"
    assert 5_700 < in_experiment < 6_300  # 6,000 of 10,000 basis points
    authored = (await admin.get("/v1/admin/flag-set")).json()
    assert authored["flags"]["checkout"] == FLAG  # what the author wrote, not the compiled rule


async def test_should_serve_the_authors_flag_when_its_experiment_no_longer_reads(
    sdk: httpx.AsyncClient, client: httpx.AsyncClient, database_url: str
) -> None:
    broken = {**EXPERIMENT, "variants": {"off": 1, "gone": 1}}
    await store(database_url, experiment=broken)
    served = (await wait_for_version(sdk, 1)).json()
    assert served["flags"]["checkout"] == FLAG
    ready = (await client.get("/readyz")).json()
    assert any(p["path"].startswith("experiments.one-page.variants") for p in ready["problems"])
    evaluated = await sdk.post("/ofrep/v1/evaluate/flags/checkout", json={"context": {"targetingKey": "u"}})
    assert evaluated.json()["variant"] == "off"


async def test_should_serve_a_draft_experiments_flag_unchanged(
    sdk: httpx.AsyncClient, database_url: str
) -> None:
    await store(database_url, experiment=EXPERIMENT, state="draft")
    served = (await wait_for_version(sdk, 1)).json()
    assert served["flags"]["checkout"] == FLAG
