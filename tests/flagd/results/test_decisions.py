"""Simulated experiments through the real ingestion path, with what was injected known: the decision follows."""

from __future__ import annotations

import itertools
import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import backdate_phase

DOCUMENT: dict[str, Any] = {
    "flags": {
        "page": {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "old"}
    },
    "metrics": {
        "bought": {
            "name": "Purchase rate",
            "type": "conversion",
            "event": "purchase",
            "direction": "increase",
        },
        "errors": {"type": "conversion", "event": "error", "direction": "decrease"},
    },
    "experiments": {
        "checkout": {
            "flag": "page",
            "variants": {"old": 1, "new": 1},
            "metrics": [{"metric": "bought", "role": "primary"}, {"metric": "errors", "role": "guardrail"}],
        }
    },
}


def dataset(
    *,
    units: int,
    rates: dict[str, dict[str, float]],
    share_new: float = 0.5,
    days: int = 1,
    cut_day: int | None = None,
    seed: int = 3,
) -> list[dict[str, Any]]:
    """Units exposed over `days` days (the `cut_day`-th day keeps 20% of its units), then their events."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    first_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[dict[str, Any]] = []
    for i in range(units):
        day = i % days
        if day == cut_day and rng.random() > 0.2:
            continue
        variant = "new" if rng.random() < share_new else "old"
        exposed = first_day + timedelta(days=day, seconds=rng.randrange(0, 80_000))
        unit = f"u{i}"
        events.append(
            {
                "kind": "exposure",
                "event_id": str(uuid.uuid4()),
                "timestamp": exposed.isoformat(),
                "experiment": "checkout",
                "phase": 1,
                "variant": variant,
                "unit": unit,
                "attributes": {"platform": ("ios", "android", "web")[i % 3]} if i % 10 else {},
            }
        )
        for name, rate in rates[variant].items():
            if rng.random() < rate:
                events.append(
                    {
                        "kind": "track",
                        "event_id": str(uuid.uuid4()),
                        "timestamp": (exposed + timedelta(seconds=rng.randrange(1, 3000))).isoformat(),
                        "event": name,
                        "unit": unit,
                    }
                )
    return events


async def run(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results: httpx.AsyncClient,
    events: list[dict[str, Any]],
    database_url: str,
) -> dict[str, Any]:
    """The experiment started before the first exposure of `events` (as if it had run since), the events
    posted, the results."""
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/checkout/start")).status_code == 200
    first = min(datetime.fromisoformat(e["timestamp"]) for e in events)
    await backdate_phase(
        admin, database_url, "checkout", (datetime.now(UTC) - first).total_seconds() / 86_400 + 0.01
    )
    for start in range(0, len(events), 5000):
        sent = await sdk.post("/v1/events", json={"events": events[start : start + 5000]})
        assert sent.status_code == 200, sent.text
    response = await results.get("/v1/experiments/checkout/results")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def comparison(body: dict[str, Any], metric: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in body["metrics"] if m["metric"] == metric)["comparisons"][0]
    return found


async def test_should_recommend_shipping_a_real_winner_with_an_interval_that_covers_the_truth(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.05}, "new": {"purchase": 0.16, "error": 0.05}}
    body = await run(admin, sdk, results_client, dataset(units=6000, rates=rates), database_url)
    bought = comparison(body, "bought")
    absolute, relative = bought["absolute"]["sequential"], bought["relative"]["sequential"]
    assert absolute["ciLow"] <= 0.06 <= absolute["ciHigh"]
    assert relative["ciLow"] <= 0.6 <= relative["ciHigh"]
    assert body["decision"]["action"] == "ship", body["decision"]
    assert body["decision"]["variant"] == "new"
    assert "bought" in body["decision"]["reason"]
    # The headline says it with names, the variant, the change and its interval, and what to do.
    assert re.fullmatch(
        r"New raised Purchase rate by [0-9.]+% \(between [0-9.]+% and [0-9.]+%\)\. Ship New\.",
        body["headline"],
    ), body["headline"]
    assert all(check["ok"] for check in body["health"]), body["health"]
    assert [g["verdict"] for g in body["guardrails"]] == ["inconclusive"]
    assert bought["impact"]["perDay"]["effect"] == pytest.approx(absolute["effect"] * body["unitsPerDay"])


async def test_should_say_investigate_when_the_split_is_skewed(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10}, "new": {"purchase": 0.16}}
    body = await run(
        admin, sdk, results_client, dataset(units=4000, rates=rates, share_new=0.6), database_url
    )
    assert body["sampleRatio"]["mismatch"] is True
    assert body["decision"]["action"] == "investigate"
    assert body["decision"]["failedChecks"][0] == "sample ratio"
    assert "the split of users between variants is off" in body["decision"]["reason"]
    assert "variant" not in body["decision"]  # no winner is shown while the data cannot be trusted


async def test_should_say_stop_when_a_guardrail_is_harmed(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.03}, "new": {"purchase": 0.16, "error": 0.12}}
    body = await run(admin, sdk, results_client, dataset(units=4000, rates=rates), database_url)
    assert {"metric": "errors", "variant": "new", "verdict": "harmed"} in body["guardrails"]
    assert body["decision"]["action"] == "stop"
    assert "errors" in body["decision"]["reason"]


async def test_should_flag_a_day_whose_exposures_dropped_by_80_percent(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10}, "new": {"purchase": 0.10}}
    body = await run(
        admin, sdk, results_client, dataset(units=4000, rates=rates, days=10, cut_day=7), database_url
    )
    volume = next(check for check in body["health"] if check["check"] == "volume: exposures")
    cut = (datetime.now(UTC) - timedelta(days=10 - 7)).date()
    assert volume["ok"] is False
    assert f"Fewer users than usual were exposed on {cut:%b} {cut.day} (" in volume["found"]
    assert body["decision"]["action"] == "investigate"


async def test_should_keep_running_without_a_clear_winner(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.05}, "new": {"purchase": 0.10, "error": 0.05}}
    body = await run(admin, sdk, results_client, dataset(units=2000, rates=rates, days=4), database_url)
    assert body["decision"]["action"] == "keep running", body["decision"]
    assert body["progress"]["neededUnits"] > body["progress"]["units"]
    assert body["progress"]["daysRemaining"] > 0
    assert "keep running for " in body["decision"]["reason"]


async def test_should_give_a_daily_series_whose_always_valid_band_only_narrows(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.05}, "new": {"purchase": 0.13, "error": 0.05}}
    body = await run(admin, sdk, results_client, dataset(units=3000, rates=rates, days=5), database_url)
    response = await results_client.get("/v1/experiments/checkout/results/timeseries")
    assert response.status_code == 200, response.text
    series = response.json()
    assert series["metric"] == "bought"
    days = series["days"]
    assert len(days) >= 5
    totals = [sum(day["units"].values()) for day in days]
    assert totals == sorted(totals)
    assert days[-1]["units"] == {u["variant"]: u["units"] for u in body["units"]}
    bands = [
        (d["comparisons"][0]["absolute"]["ciLow"], d["comparisons"][0]["absolute"]["ciHigh"])
        for d in days
        if "ciLow" in d["comparisons"][0]["absolute"]
    ]
    assert len(bands) >= 4
    assert all(b[0] >= a[0] and b[1] <= a[1] for a, b in itertools.pairwise(bands))
    final = comparison(body, "bought")["absolute"]["sequential"]
    assert final["ciLow"] <= bands[-1][0] <= bands[-1][1] <= final["ciHigh"]
    listed = (await results_client.get("/v1/experiments")).json()["experiments"]
    assert listed == [
        {
            "key": "checkout",
            "name": "checkout",
            "flag": "page",
            "state": "running",
            "phase": 1,
            "primaryMetric": "bought",
            "units": sum(u["units"] for u in body["units"]) + body["unitsInSeveralVariants"],
            "headline": body["decision"],
            "results": "/v1/experiments/checkout/results",
        }
    ]
    other = await results_client.get("/v1/experiments/checkout/results/timeseries?metric=nope")
    assert other.status_code == 400
    assert (
        "metric must be one of the experiment's metrics (bought, errors)" in other.json()["error"]["message"]
    )


async def test_should_break_results_down_by_an_exposure_attribute_with_adjusted_p_values(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.05}, "new": {"purchase": 0.16, "error": 0.05}}
    body = await run(admin, sdk, results_client, dataset(units=3000, rates=rates), database_url)
    response = await results_client.get("/v1/experiments/checkout/results?segment=platform")
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    assert segments["attribute"] == "platform"
    assert "by chance" in segments["warning"]
    by_value = {v["value"]: v for v in segments["values"]}
    assert set(by_value) == {"ios", "android", "web", "(none)"}
    assert sum(v["units"] for v in by_value.values()) == sum(u["units"] for u in body["units"])
    adjusted = [
        c["relative"]["fixedHorizon"]["pValueAdjusted"]
        for v in segments["values"]
        for m in v["metrics"]
        for c in m["comparisons"]
    ]
    raw = [
        c["relative"]["fixedHorizon"]["pValue"]
        for v in segments["values"]
        for m in v["metrics"]
        for c in m["comparisons"]
    ]
    assert len(adjusted) == 4 * 2
    assert all(a >= r for a, r in zip(adjusted, raw, strict=True))
    assert body["segments"] is None
    refused = await results_client.get("/v1/experiments/checkout/results?segment=" + "x" * 65)
    assert refused.status_code == 400


async def test_should_show_the_20_largest_segments_and_the_rest_together(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    rates = {"old": {"purchase": 0.10, "error": 0.05}, "new": {"purchase": 0.12, "error": 0.05}}
    events = dataset(units=2000, rates=rates)
    exposures = [e for e in events if e["kind"] == "exposure"]
    for index, event in enumerate(exposures):  # 50 cities, the first ones far more common than the others
        event["attributes"] = {"city": f"city-{min(index % 100, 49):02d}"}
    body = await run(admin, sdk, results_client, events, database_url)
    response = await results_client.get("/v1/experiments/checkout/results?segment=city")
    assert response.status_code == 200, response.text
    values = response.json()["segments"]["values"]
    assert len(values) == 21
    assert "(other)" in {v["value"] for v in values}
    assert sum(v["units"] for v in values) == sum(u["units"] for u in body["units"])
    largest = sorted((v for v in values if v["value"] != "(other)"), key=lambda v: -v["units"])
    assert largest[0]["value"] == "city-49"  # half the units of every hundred fall in the last city
