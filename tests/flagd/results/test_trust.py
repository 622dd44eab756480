"""Data a product manager can trust (issue 20): only exposures of what really ran reach an analysis, phases
are never reused, traffic comes from the phase, and every client path carries the same segments."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from flagd_sdk import AsyncClient
from tests.flagd.results.test_decisions import DOCUMENT as CHECKOUT
from tests.flagd.results.test_decisions import dataset, run
from tests.support import LiveServer

FLAG = {"state": "ENABLED", "variants": {"a": "a", "b": "b", "onepage": "onepage"}, "defaultVariant": "a"}
METRICS = {"bought": {"type": "conversion", "event": "purchase", "direction": "increase"}}


def document(*keys: str, salt: str | None = None) -> dict[str, Any]:
    """One flag per experiment key (flag `<key>-flag`), each experiment splitting a and b evenly."""
    experiments = {
        key: {
            "flag": f"{key}-flag",
            "variants": {"a": 1, "b": 1},
            "metrics": [{"metric": "bought", "role": "primary"}],
            **({"salt": salt} if salt else {}),
        }
        for key in keys
    }
    return {"flags": {f"{key}-flag": FLAG for key in keys}, "metrics": METRICS, "experiments": experiments}


def exposure(
    experiment: str, unit: str, variant: str = "a", phase: int = 1, at: datetime | None = None
) -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.uuid4()),
        "timestamp": (at or datetime.now(UTC)).isoformat(),
        "experiment": experiment,
        "phase": phase,
        "variant": variant,
        "unit": unit,
    }


def purchase(unit: str, at: datetime | None = None) -> dict[str, Any]:
    return {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": (at or datetime.now(UTC)).isoformat(),
        "event": "purchase",
        "unit": unit,
    }


async def post(sdk: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    sent = await sdk.post("/v1/events", json={"events": events})
    assert sent.status_code in (200, 422), sent.text
    body: dict[str, Any] = (
        sent.json()
        if sent.status_code == 200
        else {"accepted": 0, "rejected": sent.json()["error"]["details"]}
    )
    return body


async def results(http: httpx.AsyncClient, key: str, **params: str) -> dict[str, Any]:
    answer = await http.get(f"/v1/experiments/{key}/results", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def refused_counted(http: httpx.AsyncClient, key: str, expected: dict[str, int]) -> dict[str, Any]:
    """The results once the worker's counters (flushed every few seconds) show `expected` refusals."""
    for _ in range(300):
        body = await results(http, key)
        if body["refusedExposures"] == expected:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"refused exposures {body['refusedExposures']}, expected {expected}")


async def rejection_stats(admin: httpx.AsyncClient, expected: dict[str, int]) -> None:
    for _ in range(300):
        stats = (await admin.get("/v1/admin/events/stats")).json()
        found = Counter[str]()
        for row in stats["rejected"]:
            found[row["code"]] += row["count"]
        if all(found[code] == count for code, count in expected.items()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"rejections {dict(found)}, expected {expected}")


async def test_should_refuse_exposures_of_what_never_ran_each_with_its_code(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=document("onepage"))).status_code == 200
    assert (await admin.post("/v1/admin/experiments/onepage/start")).status_code == 200
    now = datetime.now(UTC)
    answer = await post(
        sdk,
        [
            exposure("onepgae", "u1"),  # misspelt
            exposure("onepage", "u2", variant="onepage"),  # a variant of the flag, not of the experiment
            exposure("onepage", "u3", phase=2),  # a phase that has not started
            exposure("onepage", "u4", at=now - timedelta(minutes=10)),  # before the phase began
            exposure("onepage", "u5", variant="a"),
            exposure("onepage", "u6", variant="b"),
        ],
    )
    assert answer["accepted"] == 2
    codes = {r["index"]: r["code"] for r in answer["rejected"]}
    assert codes == {0: "unknown_experiment", 1: "unknown_variant", 2: "unknown_phase", 3: "outside_phase"}
    assert "'onepage' is not one of phase 1's variants (a, b)" in answer["rejected"][1]["message"]
    body = await refused_counted(
        results_client, "onepage", {"outside_phase": 1, "unknown_phase": 1, "unknown_variant": 1}
    )
    assert {u["variant"]: u["units"] for u in body["units"]} == {"a": 1, "b": 1}
    assert body["progress"]["units"] == 2
    await rejection_stats(
        admin, {"unknown_experiment": 1, "unknown_variant": 1, "unknown_phase": 1, "outside_phase": 1}
    )
    # Phase 2 begins with nothing: the exposures sent for it early were refused.
    assert (await admin.post("/v1/admin/experiments/onepage/new-phase")).status_code == 200
    second = await results(results_client, "onepage")
    assert second["phase"] == 2
    assert all(u["units"] == 0 for u in second["units"])
    assert next(c for c in second["health"] if c["check"] == "sample ratio")["ok"]


async def test_should_continue_a_re_created_keys_phases_so_old_exposures_never_join(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    doc = document("reborn")
    assert (await admin.put("/v1/admin/flag-set", json=doc)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/reborn/start")).status_code == 200
    assert (await post(sdk, [exposure("reborn", f"u{i}") for i in range(40)]))["accepted"] == 40
    assert (await admin.post("/v1/admin/experiments/reborn/stop")).status_code == 200
    assert (await admin.delete("/v1/admin/experiments/reborn")).status_code == 204
    assert (await admin.put("/v1/admin/flag-set", json=doc)).status_code == 200
    started = await admin.post("/v1/admin/experiments/reborn/start")
    assert started.status_code == 200, started.text
    assert started.json()["phase"] == 2  # not phase 1 again
    body = await results(results_client, "reborn")
    assert body["phase"] == 2
    assert {u["variant"]: u["units"] for u in body["units"]} == {"a": 0, "b": 0}
    # No exposure of the old incarnation counts: the split is not "skewed" by them.
    assert "sample ratio" not in body["decision"].get("failedChecks", [])
    old = await results_client.get("/v1/experiments/reborn/results", params={"phase": "1"})
    assert old.status_code == 400
    assert "has no phase 1: it has run phase 2" in old.json()["error"]["message"]
    # An exposure of the old phase (logged late, within the clock skew of its end) stays in the old phase.
    assert (await post(sdk, [exposure("reborn", "u99", phase=1)]))["accepted"] == 1
    assert all(u["units"] == 0 for u in (await results(results_client, "reborn"))["units"])


async def test_should_estimate_traffic_and_the_series_from_the_phase_only(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=document("traffic"))).status_code == 200
    assert (await admin.post("/v1/admin/experiments/traffic/start")).status_code == 200
    week_ago = datetime.now(UTC) - timedelta(days=7)
    refused = await post(sdk, [exposure("traffic", "early", at=week_ago)])
    assert [r["code"] for r in refused["rejected"]] == ["outside_phase"]
    events = [exposure("traffic", f"u{i}", variant="ab"[i % 2]) for i in range(200)]
    assert (await post(sdk, events))["accepted"] == 200
    body = await results(results_client, "traffic")
    # 200 units in the phase's first minutes, over at least an hour: 4,800 a day, not one.
    assert body["unitsPerDay"] == 4800.0
    series = (await results_client.get("/v1/experiments/traffic/results/timeseries")).json()
    assert [d["day"] for d in series["days"]] == [datetime.now(UTC).date().isoformat()]


async def test_should_count_only_metric_events_received_since_the_phase_started(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    doc = document("health")
    assert (await admin.put("/v1/admin/flag-set", json=doc)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/health/start")).status_code == 200
    assert (await post(sdk, [purchase(f"u{i}") for i in range(50)]))["accepted"] == 50
    assert (await admin.post("/v1/admin/experiments/health/stop")).status_code == 200
    assert (await admin.put("/v1/admin/flag-set", json=doc)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/health/start")).status_code == 200
    arrive = next(
        c for c in (await results(results_client, "health"))["health"] if c["check"] == "exposures arrive"
    )
    assert arrive["ok"], arrive
    assert (await post(sdk, [purchase("late")]))["accepted"] == 1
    arrive = next(
        c for c in (await results(results_client, "health"))["health"] if c["check"] == "exposures arrive"
    )
    assert not arrive["ok"]
    assert arrive["found"].startswith("1 metric event arrived since the phase started")


async def test_should_break_ofrep_exposures_down_by_context_like_sdk_ones_and_honour_the_salt(
    server: LiveServer,
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    sdk_key: str,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
) -> None:
    doc = document("via-ofrep", "via-sdk", salt="my-fixed-salt")
    assert (await admin.put("/v1/admin/flag-set", json=doc)).status_code == 200
    for key in ("via-ofrep", "via-sdk"):
        started = await admin.post(f"/v1/admin/experiments/{key}/start")
        assert started.status_code == 200, started.text
    salts = await conn.fetch("SELECT key, salt FROM experiments ORDER BY key")
    assert [r["salt"] for r in salts] == ["my-fixed-salt", "my-fixed-salt"]  # the author's, not a drawn one
    rng = random.Random(7)
    contexts = [
        {
            "targetingKey": f"user-{i}",
            "platform": rng.choice(["ios", "android", "web"]),
            "age": rng.randrange(18, 80),
        }
        for i in range(300)
    ]
    for context in contexts:
        evaluated = await sdk.post("/ofrep/v1/evaluate/flags/via-ofrep-flag", json={"context": context})
        assert evaluated.status_code == 200, evaluated.text
    async with AsyncClient(server.url, sdk_key, init_timeout=10.0, flush_seconds=0.2) as client:
        for context in contexts:
            attributes = {k: v for k, v in context.items() if k != "targetingKey"}
            client.variant("via-sdk-flag", str(context["targetingKey"]), attributes)
        assert await client.flush(30.0)
    for _ in range(300):  # server-recorded exposures are written in the background
        counts = await conn.fetch("SELECT experiment, count(*) AS n FROM exposures GROUP BY experiment")
        if {r["experiment"]: r["n"] for r in counts} == {"via-ofrep": 300, "via-sdk": 300}:
            break
        await asyncio.sleep(0.05)
    by_segment = {}
    for key in ("via-ofrep", "via-sdk"):
        body = await results(results_client, key, segment="platform")
        by_segment[key] = {
            value["value"]: {v["variant"]: v["units"] for v in value["metrics"][0]["variants"]}
            for value in body["segments"]["values"]
        }
    assert by_segment["via-ofrep"] == by_segment["via-sdk"]
    assert set(by_segment["via-ofrep"]) == {"ios", "android", "web"}
    stored = await conn.fetchval(
        "SELECT attributes FROM exposures WHERE experiment = 'via-ofrep' AND unit = 'user-0'"
    )
    assert set(orjson.loads(stored)) == {"platform", "age"}


def timeless(body: dict[str, Any]) -> dict[str, Any]:
    """The results without what moves with the clock alone (the look's time, traffic a day and what is
    projected from it, which the headline quotes) or is meant to change (the refusals)."""
    moving = ("asOf", "freshness", "refusedExposures", "unitsPerDay", "headline")
    kept = {k: v for k, v in body.items() if k not in moving}
    kept["progress"] = {k: v for k, v in body["progress"].items() if k != "daysRemaining"}
    kept["metrics"] = [
        {**m, "comparisons": [{k: v for k, v in c.items() if k != "impact"} for c in m["comparisons"]]}
        for m in body["metrics"]
    ]
    kept["decision"] = {
        k: v
        for k, v in body["decision"].items()
        if k != "reason" or body["decision"]["action"] != "keep running"
    }
    return kept


async def test_should_give_the_same_results_when_5_percent_of_exposures_are_polluted(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    database_url: str,
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.05}, "new": {"purchase": 0.13, "error": 0.05}}
    events = dataset(units=4000, rates=rates, days=3)
    clean = await run(admin, sdk, results_client, events, database_url)
    exposures = [e for e in events if e["kind"] == "exposure"]
    # A deleted and re-created experiment: exposures of its old phase no longer belong anywhere.
    ghost = document("ghost")
    both = {
        section: {**CHECKOUT[section], **ghost[section]} for section in ("flags", "metrics", "experiments")
    }
    assert (await admin.put("/v1/admin/flag-set", json=both)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/ghost/start")).status_code == 200
    assert (await admin.post("/v1/admin/experiments/ghost/stop")).status_code == 200
    assert (await admin.delete("/v1/admin/experiments/ghost")).status_code == 204
    rng = random.Random(11)
    polluted = rng.sample(exposures, len(exposures) // 20)
    kinds = ["unknown_variant", "unknown_phase", "outside_phase", "re-created"]
    sent: Counter[str] = Counter()
    pollution = []
    phase_start = min(datetime.fromisoformat(e["timestamp"]) for e in exposures)
    for index, original in enumerate(polluted):
        kind = kinds[index % len(kinds)]
        event = {**original, "event_id": str(uuid.uuid4()), "unit": f"polluter-{index}"}
        if kind == "unknown_variant":
            event["variant"] = "newer"
        elif kind == "unknown_phase":
            event["phase"] = 7
        elif kind == "outside_phase":
            event["timestamp"] = (phase_start - timedelta(days=2)).isoformat()
        else:
            event["experiment"], event["variant"] = "ghost", "a"
            kind = "outside_phase"  # its phase ended before these were logged
        sent[kind] += 1
        pollution.append(event)
    answer = await post(sdk, pollution)
    assert answer["accepted"] == 0
    assert Counter(r["code"] for r in answer["rejected"]) == sent
    polluted_body = await results(results_client, "checkout")
    assert timeless(polluted_body) == timeless(clean)
    assert clean["decision"]["action"] in ("ship", "keep running")
    await rejection_stats(admin, dict(sent))
