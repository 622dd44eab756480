"""Funnel metrics through POST /v1/events: recomputed from the raw rows with numpy, and found where
they change.

The first test's events break every rule a unit must follow to complete a step: events before the
exposure, steps out of order, a step after its `within_seconds`, events past the funnel's window,
events failing a step's filter. Numpy walks each unit's rows as the definition says and must get the
API's units per step and every statistic of both conversions, from the roll-ups and from the raw path.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jsonschema  # type: ignore[import-untyped]
import numpy as np

from flagd.routes import openapi
from stats import (
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    fixed_horizon,
    sequential,
)
from tests.flagd.results.test_results_recompute import Floats, close, post_all
from tests.flagd.results.test_rollup import catalog_of, exposure, raw_reduction, track
from tests.flagd.web.test_sessions import logged_in
from tests.support import LiveServer, backdate_phase

VARIANTS = ("control", "on")
WINDOW = 2 * 86_400
STEPS: list[dict[str, Any]] = [
    {"event": "viewed", "where": {"page": {"equals": "product"}}},
    {"event": "cart", "within_seconds": 3_600},
    {"event": "checkout"},
    {"event": "paid", "where": {"currency": {"equals": "EUR"}}},
]


def document(decide_on: int | None, expected_units: int) -> dict[str, Any]:
    funnel: dict[str, Any] = {
        "type": "funnel",
        "direction": "increase",
        "window_seconds": WINDOW,
        "steps": STEPS,
    }
    if decide_on is not None:
        funnel["decide_on"] = decide_on
    return {
        "flags": {
            "shop": {"state": "ENABLED", "variants": {v: v for v in VARIANTS}, "defaultVariant": "control"}
        },
        "metrics": {"checkout": funnel},
        "experiments": {
            "shop": {
                "flag": "shop",
                "variants": {"control": 1, "on": 1},
                "expected_units": expected_units,
                "metrics": [{"metric": "checkout", "role": "primary"}],
            }
        },
    }


def messy(now: datetime, units: int) -> list[dict[str, Any]]:
    """Units whose events fall anywhere around the windows, in any order."""
    rng = random.Random(5)
    events: list[dict[str, Any]] = []
    for i in range(units):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=3, minutes=rng.randrange(0, 600))
        events.append(exposure(unit, variant, exposed, "shop"))
        moment = exposed + timedelta(minutes=rng.randrange(-60, 600))
        picks = [
            (s["event"], moment := moment + timedelta(minutes=rng.choice((1, 20, 50, 70, 2000))))
            for s in STEPS
        ]
        picks = [pick for pick in picks if rng.random() < 0.85]  # a path with gaps, some too long
        for _ in range(rng.randrange(0, 5)):  # and events anywhere around the windows
            picks.append(
                (
                    rng.choice([s["event"] for s in STEPS]),
                    exposed + timedelta(minutes=rng.randrange(-600, 4320)),
                )
            )
        for name, moment in picks:
            properties = {
                "viewed": {"page": rng.choice(("product", "product", "product", "home"))},
                "paid": {"currency": rng.choice(("EUR", "EUR", "EUR", "USD"))},
            }.get(name)
            if moment < now:
                events.append(track(unit, name, moment, properties=properties))
    return events


def completed(rows: list[asyncpg.Record], exposed: datetime) -> int:
    """How many steps a unit completed, walking its rows as the funnel's definition says."""
    passes: list[Callable[[Any], bool]] = [
        lambda p: (p or {}).get("page") == "product",
        lambda p: True,
        lambda p: True,
        lambda p: (p or {}).get("currency") == "EUR",
    ]
    previous = exposed
    for k, step in enumerate(STEPS):
        end = min(
            exposed + timedelta(seconds=WINDOW), previous + timedelta(seconds=step.get("within_seconds", 1e9))
        )
        times = [
            r["occurred_at"]
            for r in rows
            if r["name"] == step["event"]
            and passes[k](r["properties"])
            and previous <= r["occurred_at"] < end
        ]
        if not times:
            return k
        previous = min(times)
    return len(STEPS)


def step_statistics(reached: Floats, k: int, conditional: bool) -> Any:
    """The stats/ statistic of step k (1-based) from each unit's number of steps completed."""
    y = (reached >= k) * 1.0
    if not conditional:
        return ProportionStatistic(len(y), float(y.sum()))
    d = (reached >= k - 1) * 1.0
    return RatioStatistic(
        SampleMeanStatistic(len(y), float(y.sum()), float((y * y).sum())),
        SampleMeanStatistic(len(d), float(d.sum()), float((d * d).sum())),
        float((y * d).sum()),
    )


async def start(admin: httpx.AsyncClient, database_url: str, decide_on: int | None, expected: int) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=document(decide_on, expected))).status_code == 200
    assert (await admin.post("/v1/admin/experiments/shop/start")).status_code == 200
    await backdate_phase(admin, database_url, "shop", 4)


async def test_should_count_steps_in_order_within_the_windows_as_numpy_does_on_the_raw_rows(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start(admin, database_url, 3, 5_000)
    await post_all(sdk, messy(datetime.now(UTC), 500))
    response = await results_client.get("/v1/experiments/shop/results?method=mixture")
    assert response.status_code == 200, response.text
    (funnel,) = response.json()["metrics"]

    catalog = await catalog_of(conn)  # the server's codecs: properties as Python values
    exposures = {
        r["unit"]: (r["variant"], r["exposed_at"]) for r in await conn.fetch("SELECT * FROM exposures")
    }
    by_unit: dict[str, list[asyncpg.Record]] = {}
    for row in await conn.fetch("SELECT unit, name, occurred_at, properties FROM events"):
        by_unit.setdefault(row["unit"], []).append(row)
    reached = {
        v: np.array(
            [float(completed(by_unit.get(u, []), t)) for u, (variant, t) in exposures.items() if variant == v]
        )
        for v in VARIANTS
    }
    assert all((reached["control"] == k).sum() > 0 for k in range(5)), "every depth of the funnel occurs"

    design = SequentialDesign.from_expected_sample_size(5_000, 0.05)
    assert funnel["type"] == "funnel"
    assert [s["event"] for s in funnel["steps"]] == ["viewed", "cart", "checkout", "paid"]
    checked = 0
    for step in funnel["steps"]:
        k = step["step"]
        assert {r["variant"]: r["units"] for r in step["reached"]} == {
            v: int((reached[v] >= k).sum()) for v in VARIANTS
        }
        places = [("fromExposure", False)] + ([("fromPrevious", True)] if k > 1 else [])
        assert ("fromPrevious" in step) == (k > 1)
        for place, conditional in places:
            control = step_statistics(reached["control"], k, conditional)
            treatment = step_statistics(reached["on"], k, conditional)
            given = step[place]
            for variant, values in zip(given["variants"], (control, treatment), strict=True):
                assert close(variant["mean"], values.mean), (k, place)
            for scale, relative in (("absolute", False), ("relative", True)):
                for test, result in (
                    ("fixedHorizon", fixed_horizon(control, treatment, relative=relative)),
                    ("sequential", sequential(control, treatment, design, relative=relative)),
                ):
                    answer = given["comparisons"][0][scale][test]
                    assert result.problem is None
                    for field, value in (
                        ("effect", result.effect),
                        ("pValue", result.p_value),
                        ("ciLow", result.ci_low),
                        ("ciHigh", result.ci_high),
                    ):
                        assert close(answer[field], value), (k, place, scale, test, field)
                    checked += 1
    assert checked == 7 * 4
    # The funnel's own numbers are the deciding step's (decide_on: 3) conversion from exposure.
    deciding = funnel["steps"][2]["fromExposure"]
    assert [v["mean"] for v in funnel["variants"]] == [v["mean"] for v in deciding["variants"]]
    for scale in ("absolute", "relative"):
        for test in ("fixedHorizon", "sequential"):
            mine, theirs = funnel["comparisons"][0][scale][test], deciding["comparisons"][0][scale][test]
            assert [mine[f] for f in ("effect", "ciLow", "ciHigh", "pValue")] == [
                theirs[f] for f in ("effect", "ciLow", "ciHigh", "pValue")
            ]

    # The raw path (the time series' past days) reaches the same steps.
    plan = catalog.plan("shop")
    assert plan is not None
    raw = await raw_reduction(conn, "shop", plan.metrics[0].resolved)
    assert raw.reached == {v: tuple(int((reached[v] >= k).sum()) for k in range(1, 5)) for v in VARIANTS}
    assert {v: raw.sums(v).y for v in VARIANTS} == {v: float((reached[v] >= 3).sum()) for v in VARIANTS}


def simulated(now: datetime, units: int, lifted_step: int) -> list[dict[str, Any]]:
    """A 4-step funnel; the treatment removes 30% of the drop-off at `lifted_step` and nowhere else."""
    rng = random.Random(17)
    carry_on = [0.6, 0.5, 0.6, 0.7]  # step k's conversion from step k - 1 (step 1: from exposure)
    events: list[dict[str, Any]] = []
    for i in range(units):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=2, minutes=rng.randrange(0, 600))
        events.append(exposure(unit, variant, exposed, "shop"))
        moment = exposed
        for k, rate in enumerate(carry_on, 1):
            if variant == "on" and k == lifted_step:
                rate = 1 - 0.7 * (1 - rate)
            if rng.random() >= rate:
                break
            moment += timedelta(minutes=rng.randrange(1, 30))
            properties = {"viewed": {"page": "product"}, "paid": {"currency": "EUR"}}.get(
                STEPS[k - 1]["event"]
            )
            events.append(track(unit, STEPS[k - 1]["event"], moment, properties=properties))
    return events


async def test_should_find_a_treatment_that_removes_drop_off_at_step_two_there_and_nowhere_else(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    server: LiveServer,
    database_url: str,
) -> None:
    await start(admin, database_url, None, 4_000)
    await post_all(sdk, simulated(datetime.now(UTC), 4_000, lifted_step=2))
    body = (await results_client.get("/v1/experiments/shop/results?method=mixture")).json()
    (funnel,) = body["metrics"]
    spec = openapi.document()
    schema = spec["paths"]["/v1/experiments/{key}/results"]["get"]["responses"]["200"]["content"]
    jsonschema.validate(body, {**schema["application/json"]["schema"], "components": spec["components"]})

    def significant(result: dict[str, Any]) -> bool:
        estimate = result["comparisons"][0]["absolute"]["sequential"]
        relative = result["comparisons"][0]["relative"]["sequential"]
        return bool(estimate["ciLow"] > 0 and relative["pValueAdjusted"] < 0.05)

    steps = funnel["steps"]
    assert [significant(s["fromPrevious"]) for s in steps[1:]] == [True, False, False]
    assert not significant(steps[0]["fromExposure"])
    lift = steps[1]["fromPrevious"]["comparisons"][0]["absolute"]["fixedHorizon"]
    assert lift["ciLow"] < 0.15 < lift["ciHigh"]  # 0.5 -> 0.65: 30% of the drop-off removed

    # The page draws each variant's funnel: a meter per step and variant, the drop-off, the step's change.
    page = await logged_in(server, results_client.headers["authorization"].removeprefix("Bearer "))
    try:
        html = (await page.get("/experiments/shop", timeout=60)).text
    finally:
        await page.aclose()
    funnel_html = html[html.index('<section id="funnels">') :]
    funnel_html = funnel_html[: funnel_html.index("</section>")]
    assert funnel_html.count("<meter") == 4 * 2
    for step in steps:
        for reached in step["reached"]:
            assert f"{reached['units']:,} (" in funnel_html
    assert funnel_html.count("dropped since step") == 3 * 2
    assert funnel_html.count('class="verdict better"') == 1, funnel_html


async def test_should_keep_a_funnels_rollup_equal_to_the_raw_reduction_as_events_arrive(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start(admin, database_url, None, 5_000)
    now = datetime.now(UTC)
    events = messy(now, 300)
    early = [e for e in events if datetime.fromisoformat(e["timestamp"]) < now - timedelta(days=2)]
    await post_all(sdk, early)
    first = (await results_client.get("/v1/experiments/shop/results?method=mixture")).json()
    await post_all(sdk, [e for e in events if e not in early])  # known units' later steps: recomputed
    body = (await results_client.get("/v1/experiments/shop/results?method=mixture&segment=country")).json()
    plan = (await catalog_of(conn)).plan("shop")
    assert plan is not None
    raw = await raw_reduction(conn, "shop", plan.metrics[0].resolved)
    (funnel,) = body["metrics"]
    assert raw.reached == {
        v: tuple(next(r["units"] for r in s["reached"] if r["variant"] == v) for s in funnel["steps"])
        for v in VARIANTS
    }
    assert sum(raw.reached["control"]) > 0
    assert funnel["steps"] != first["metrics"][0]["steps"]  # the second round moved the funnel
    (segment,) = body["segments"]["values"]  # no exposure carries a country: one segment, every unit
    assert segment["metrics"][0]["variants"] == funnel["variants"]
    series = await results_client.get("/v1/experiments/shop/results/timeseries?method=mixture")
    assert series.status_code == 200, series.text
    assert series.json()["days"]
