"""Experiments through the API: written as flags as code, read by results keys, moved through their lifecycle."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flagd.auth.keys import Scope
from tests.support import LiveServer, bearer, create_key

DOCUMENT: dict[str, Any] = {
    "flags": {
        "checkout": {"state": "ENABLED", "variants": {"off": "off", "on": "on"}, "defaultVariant": "off"},
        "search": {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "old"},
    },
    "metrics": {
        "checkout-rate": {"type": "conversion", "event": "checkout", "direction": "increase"},
        "revenue": {"type": "sum", "event": "purchase", "direction": "increase"},
    },
    "layers": {"main": {"holdout_bp": 1000}},
    "experiments": {
        "one-page": {
            "flag": "checkout",
            "hypothesis": "One page lifts checkout by 2%",
            "variants": {"off": 50, "on": 50},
            "allocation_bp": 6000,
            "layer": "main",
            "metrics": [
                {"metric": "checkout-rate", "role": "primary"},
                {"metric": "revenue", "role": "guardrail"},
            ],
        },
        "new-search": {
            "flag": "search",
            "variants": {"old": 1, "new": 1},
            "allocation_bp": 4000,
            "layer": "main",
        },
    },
}


@pytest.fixture
async def results(server: LiveServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, headers=bearer(token)) as http:
        yield http


async def snapshot(admin: httpx.AsyncClient) -> tuple[Any, Any]:
    return (await admin.get("/v1/admin/flag-set")).json(), (await admin.get("/v1/admin/experiments")).json()


async def test_should_apply_start_and_serve_an_experiment(
    admin: httpx.AsyncClient, results: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    applied = await admin.put("/v1/admin/flag-set", json=DOCUMENT)
    assert applied.status_code == 200, applied.text
    assert applied.json()["counts"]["create"] == 7  # 2 flags, 2 metrics, 1 layer, 2 experiments
    again = await admin.put("/v1/admin/flag-set", json=DOCUMENT)
    assert again.json()["counts"] == {"create": 0, "update": 0, "delete": 0}
    listed = (await results.get("/v1/admin/experiments")).json()["experiments"]
    assert {(e["key"], e["state"]) for e in listed} == {("one-page", "draft"), ("new-search", "draft")}
    assert (await results.post("/v1/admin/experiments/one-page/start")).status_code == 403

    started = await admin.post("/v1/admin/experiments/one-page/start")
    assert started.status_code == 200, started.text
    assert (started.json()["state"], started.json()["phase"], started.json()["slotStart"]) == (
        "running",
        1,
        1000,
    )
    served = (await sdk.get("/v1/flags")).json()
    assert served["flags"]["checkout"]["metadata"]["experimentKey"] == "one-page"
    assert "experiments" not in served  # SDKs get flags only
    reasons = set()
    for i in range(300):
        evaluated = await sdk.post(
            "/ofrep/v1/evaluate/flags/checkout", json={"context": {"targetingKey": f"u{i}"}}
        )
        reasons.add(evaluated.json()["reason"])
    assert reasons == {"SPLIT", "DEFAULT"}  # in the experiment, or the flag's own default
    exported = (await admin.get("/v1/admin/flag-set")).json()
    assert exported["flags"]["checkout"] == DOCUMENT["flags"]["checkout"]
    assert exported["experiments"]["one-page"] == DOCUMENT["experiments"]["one-page"]


async def test_should_refuse_what_a_running_experiment_forbids_and_change_nothing(
    admin: httpx.AsyncClient,
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/one-page/start")).status_code == 200
    before = await snapshot(admin)

    reweighted = copy.deepcopy(DOCUMENT)
    reweighted["experiments"]["one-page"]["variants"] = {"off": 10, "on": 90}
    refused = await admin.put("/v1/admin/flag-set", json=reweighted)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "experiment_running")
    assert "new phase" in refused.json()["error"]["message"]

    without = copy.deepcopy(DOCUMENT)
    del without["experiments"]["one-page"]
    pruned = await admin.put("/v1/admin/flag-set?prune=true", json=without)
    assert pruned.status_code == 409
    assert "stop it" in pruned.json()["error"]["message"]

    over = await admin.post("/v1/admin/experiments/new-search/start")  # 1000 holdout + 6000 + 4000 > 10000
    assert over.status_code == 409
    assert "3000 of 10000 basis points free" in over.json()["error"]["message"]
    assert await snapshot(admin) == before

    flags_only = {"flags": DOCUMENT["flags"]}
    kept = await admin.put("/v1/admin/flag-set?prune=true", json=flags_only)
    assert kept.status_code == 200  # sections a file leaves out are left alone
    assert (await admin.get("/v1/admin/experiments/one-page")).json()["state"] == "running"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            ("metrics", "revenue", {"type": "median", "event": "purchase", "direction": "increase"}),
            "metrics.revenue.type",
        ),
        (
            (
                "metrics",
                "ratio",
                {"type": "ratio", "numerator": "revenue", "denominator": "revenue", "direction": "increase"},
            ),
            "metrics.ratio",
        ),
        (("experiments", "x", {"flag": "missing", "variants": {"a": 1, "b": 1}}), "experiments.x.flag"),
        (
            ("experiments", "x", {"flag": "checkout", "variants": {"off": 1, "maybe": 1}}),
            "experiments.x.variants.maybe",
        ),
    ],
)
async def test_should_refuse_invalid_definitions_and_change_nothing(
    admin: httpx.AsyncClient, change: tuple[str, str, Any], path: str
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    before = await snapshot(admin)
    section, key, definition = change
    document = copy.deepcopy(DOCUMENT)
    document[section][key] = definition
    refused = await admin.put("/v1/admin/flag-set", json=document)
    assert refused.status_code == 422
    assert path in [d["path"] for d in refused.json()["error"]["details"]]
    assert await snapshot(admin) == before


async def test_should_move_through_phases_and_launch(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/one-page/start")).status_code == 200
    phase = await admin.post("/v1/admin/experiments/one-page/new-phase")
    assert (phase.status_code, phase.json()["phase"]) == (200, 2)
    assert (await sdk.get("/v1/flags")).json()["flags"]["checkout"]["metadata"]["experimentPhase"] == 2
    launched = await admin.post("/v1/admin/experiments/one-page/launch", json={"variant": "on"})
    assert (launched.status_code, launched.json()["state"]) == (200, "launched")
    flag = (await sdk.get("/v1/flags")).json()["flags"]["checkout"]
    assert flag["defaultVariant"] == "on"
    assert "experimentKey" not in flag.get("metadata", {})
    audit = (await admin.get("/v1/admin/audit?entity=experiment&key=one-page")).json()["entries"]
    assert [e["action"] for e in audit][:3] == ["launch", "new_phase", "start"]
    wrong = await admin.post("/v1/admin/experiments/one-page/stop")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (409, "lifecycle_conflict")
    missing = await admin.post("/v1/admin/experiments/nope/start")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "experiment_not_found")


async def test_should_start_the_next_phase_with_a_changed_definition_in_one_config_version(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/one-page/start")).status_code == 200
    reweighted = {**DOCUMENT["experiments"]["one-page"], "variants": {"off": 30, "on": 70}}
    refused = await admin.put("/v1/admin/experiments/one-page", json={"definition": reweighted})
    assert refused.status_code == 409
    assert (
        "start a new phase with the change (`flagd experiments new-phase one-page --file FILE`, or "
        'POST /v1/admin/experiments/one-page/new-phase with the body {"definition": ...}), or stop it '
        "(`flagd experiments stop one-page`), apply the change and start it again"
    ) in refused.json()["error"]["message"]

    phase = await admin.post("/v1/admin/experiments/one-page/new-phase", json={"definition": reweighted})
    assert (phase.status_code, phase.json()["state"], phase.json()["phase"]) == (200, "running", 2)
    stored = (await admin.get("/v1/admin/experiments/one-page")).json()
    assert (stored["definition"]["variants"], stored["phase"]) == ({"off": 30, "on": 70}, 2)
    served = (await sdk.get("/v1/flags")).json()["flags"]["checkout"]
    assert served["metadata"]["experimentPhase"] == 2
    audit = (await admin.get("/v1/admin/audit?entity=experiment&key=one-page")).json()["entries"]
    assert [(e["action"], e["configVersion"]) for e in audit][:2] == [
        ("new_phase", phase.json()["configVersion"]),
        ("update", phase.json()["configVersion"]),
    ]
    assert audit[1]["after"]["variants"] == {"off": 30, "on": 70}
    # The stored definition now is the phase's: applying it again changes nothing.
    again = await admin.put("/v1/admin/experiments/one-page", json={"definition": reweighted})
    assert (again.status_code, again.json()["configVersion"]) == (200, phase.json()["configVersion"])


@pytest.mark.parametrize(
    ("definition", "status", "code"),
    [
        ({"flag": "checkout", "variants": {"off": 1, "maybe": 1}}, 422, "validation_failed"),
        (
            {"flag": "checkout", "variants": {"off": 1, "on": 1}, "allocation_bp": 9500},
            409,
            "lifecycle_conflict",
        ),
        ("not an object", 400, "invalid_parameter"),
    ],
    ids=["invalid", "no-room-in-the-layer", "not-an-object"],
)
async def test_should_refuse_a_new_phase_with_a_bad_definition_and_change_nothing(
    admin: httpx.AsyncClient, definition: Any, status: int, code: str
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/one-page/start")).status_code == 200
    with_layer = {**definition, "layer": "main"} if isinstance(definition, dict) else definition
    before = await snapshot(admin)
    refused = await admin.post("/v1/admin/experiments/one-page/new-phase", json={"definition": with_layer})
    assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)
    assert await snapshot(admin) == before


async def test_should_refuse_a_new_phase_of_a_draft_saying_how_to_start_it(admin: httpx.AsyncClient) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    before = await snapshot(admin)
    refused = await admin.post(
        "/v1/admin/experiments/one-page/new-phase", json={"definition": DOCUMENT["experiments"]["one-page"]}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "lifecycle_conflict")
    assert refused.json()["error"]["message"] == (
        "experiment 'one-page' is draft; only a running experiment has phases: apply the change "
        "(`flagd apply FILE`) and start it (`flagd experiments start one-page`), which begins its next phase"
    )
    assert await snapshot(admin) == before


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "experiment.yaml"


async def test_should_apply_start_and_export_the_example_experiment_file(
    server: LiveServer, admin: httpx.AsyncClient, results: httpx.AsyncClient, database_url: str
) -> None:
    applied = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flagd", "apply", str(EXAMPLE), "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    assert "+ experiment one-page-checkout" in applied.stdout
    await asyncio.sleep(0.2)  # the server follows the change over NOTIFY
    started = await admin.post("/v1/admin/experiments/one-page-checkout/start")
    assert started.status_code == 200, started.text
    read_back = (await results.get("/v1/admin/experiments/one-page-checkout")).json()
    assert (read_back["state"], read_back["phase"]) == ("running", 1)
    assert read_back["definition"]["metrics"][0] == {"metric": "checkout-rate", "role": "primary"}
    metrics = (await results.get("/v1/admin/metrics")).json()["metrics"]
    assert {m["key"] for m in metrics} == set(yaml.safe_load(EXAMPLE.read_text())["metrics"])
    exported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flagd", "export", "--format", "yaml", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert yaml.safe_load(exported.stdout) == yaml.safe_load(
        EXAMPLE.read_text()
    )  # the author's file, round trip


async def test_should_create_replace_and_delete_one_metric_or_experiment(
    admin: httpx.AsyncClient, results: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    evaluators_before = (await admin.get("/v1/admin/flag-set")).json().get("$evaluators")
    metric = {"type": "count", "event": "search", "direction": "increase"}
    created = await admin.post("/v1/admin/metrics", json={"key": "searches", "definition": metric})
    assert created.status_code == 201, created.text
    duplicate = await admin.post("/v1/admin/metrics", json={"key": "searches", "definition": metric})
    assert (duplicate.status_code, duplicate.json()["error"]["code"]) == (409, "metric_exists")
    assert (await results.get("/v1/admin/metrics/searches")).json()["definition"] == metric
    bad = await admin.put("/v1/admin/metrics/searches", json={"definition": {**metric, "type": "median"}})
    assert bad.status_code == 422
    assert (await admin.delete("/v1/admin/metrics/searches")).status_code == 204
    assert (await results.get("/v1/admin/metrics/searches")).status_code == 404
    assert (await admin.get("/v1/admin/flag-set")).json().get("$evaluators") == evaluators_before

    assert (await admin.post("/v1/admin/experiments/one-page/start")).status_code == 200
    running_edit = await admin.put(
        "/v1/admin/experiments/one-page",
        json={"definition": {**DOCUMENT["experiments"]["one-page"], "variants": {"off": 1, "on": 9}}},
    )
    assert (running_edit.status_code, running_edit.json()["error"]["code"]) == (409, "experiment_running")
    running_delete = await admin.delete("/v1/admin/experiments/one-page")
    assert running_delete.status_code == 409
    assert (await admin.delete("/v1/admin/experiments/new-search")).status_code == 204
    assert {e["key"] for e in (await results.get("/v1/admin/experiments")).json()["experiments"]} == {
        "one-page"
    }
    audit = (await admin.get("/v1/admin/audit?entity=metric&key=searches")).json()["entries"]
    assert [e["action"] for e in audit] == ["delete", "create"]
