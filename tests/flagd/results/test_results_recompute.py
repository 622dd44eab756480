"""Results through the real ingestion path, recomputed from the raw rows with numpy.

Events go in through POST /v1/events; the results endpoint reduces them in PostgreSQL. The
test reads the raw rows back, computes each unit's value itself (windows, pre-exposure
covariate, caps, units in several variants left out) and runs `stats/` on those numbers:
every statistic the API gives must be the same.
"""

from __future__ import annotations

import copy
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np
import numpy.typing as npt

from stats import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    SequentialDesign,
    fixed_horizon,
    sequential,
)
from stats.planned import PlannedDesign, planned
from tests.support import backdate_phase

Floats = npt.NDArray[np.float64]
VARIANTS = ("control", "a", "b")
DOCUMENT: dict[str, Any] = {
    "flags": {
        "page": {"state": "ENABLED", "variants": {v: v for v in VARIANTS}, "defaultVariant": "control"}
    },
    "metrics": {
        "converted": {
            "type": "conversion",
            "event": "purchase",
            "direction": "increase",
            "window_seconds": 86400,
        },
        "revenue": {
            "type": "sum",
            "event": "purchase",
            "direction": "increase",
            "winsorisation": {"percentile": 90},
        },
        "visits": {"type": "count", "event": "visit", "direction": "increase"},
        "order-value": {"type": "mean", "event": "purchase", "direction": "increase"},
        "revenue-per-visit": {
            "type": "ratio",
            "numerator": "revenue",
            "denominator": "visits",
            "direction": "increase",
        },
        "nps": {"type": "nps", "event": "survey", "direction": "increase"},
    },
    "experiments": {
        "pricing": {
            "flag": "page",
            "variants": {"control": 1, "a": 1, "b": 1},
            "expected_units": 5_000,
            "metrics": [
                {"metric": "converted", "role": "primary"},
                {"metric": "revenue", "role": "secondary"},
                {"metric": "visits", "role": "secondary"},
                {"metric": "order-value", "role": "secondary"},
                {"metric": "revenue-per-visit", "role": "secondary"},
                {"metric": "nps", "role": "guardrail"},
            ],
        }
    },
}


def at(moment: datetime) -> str:
    return moment.isoformat()


def simulated(now: datetime, units: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(11)
    events: list[dict[str, Any]] = []
    for i in range(units):
        unit = f"u{i}"
        variant = VARIANTS[i % 3]
        exposed = now - timedelta(days=2, minutes=rng.randrange(0, 600))
        events.append(
            {
                "kind": "exposure",
                "event_id": str(uuid.uuid4()),
                "timestamp": at(exposed),
                "experiment": "pricing",
                "phase": 1,
                "variant": variant,
                "unit": unit,
            }
        )
        if i % 37 == 0:  # a unit also seen in another variant: left out, and counted
            events.append(
                {
                    "kind": "exposure",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": at(exposed + timedelta(hours=1)),
                    "experiment": "pricing",
                    "phase": 1,
                    "variant": VARIANTS[(i + 1) % 3],
                    "unit": unit,
                }
            )
        lift = {"control": 0.0, "a": 0.1, "b": 0.25}[variant]
        for name, rate, value in (
            ("purchase", 0.3 + lift, 40.0),
            ("visit", 0.9, None),
            ("survey", 0.4, None),
        ):
            for offset_hours in (
                -30,
                -5,
                3,
                20,
                30,
            ):  # before exposure (CUPED), inside and outside the window
                if rng.random() < rate / 2:
                    event: dict[str, Any] = {
                        "kind": "track",
                        "event_id": str(uuid.uuid4()),
                        "timestamp": at(exposed + timedelta(hours=offset_hours, minutes=rng.randrange(60))),
                        "event": name,
                        "unit": unit,
                    }
                    if name == "purchase":
                        event["value"] = round(rng.expovariate(1 / (value or 1)) * (1 + lift), 2)
                    elif name == "survey":
                        event["value"] = rng.randrange(0, 11)
                    if datetime.fromisoformat(event["timestamp"]) < now:
                        events.append(event)
    return events


async def post_all(sdk: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    """Through POST /v1/events, 1,000 at a time; every event accepted."""
    for start in range(0, len(events), 1000):
        sent = await sdk.post("/v1/events", json={"events": events[start : start + 1000]})
        assert sent.status_code == 200, sent.text
        assert sent.json()["rejected"] == []


async def start_pricing(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    units: int,
    database_url: str,
    *,
    days: float = 3,
    simulation: Callable[[datetime, int], list[dict[str, Any]]] = simulated,
) -> datetime:
    """The document stored, the experiment started (`days` ago, as the simulation has it) and `units`
    units of the `simulation` posted; their `now`."""
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/pricing/start")).status_code == 200
    await backdate_phase(admin, database_url, "pricing", days)
    now = datetime.now(UTC)
    await post_all(sdk, simulation(now, units))
    return now


def per_unit(
    rows: list[Any],
    exposures: dict[str, tuple[str, datetime]],
    name: str,
    window: float | None,
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """Each exposed unit's post-window count, sum, last value, and pre-window count and sum."""
    out: dict[str, dict[str, Any]] = {
        u: {"c": 0, "s": 0.0, "last": None, "pc": 0, "ps": 0.0} for u in exposures
    }
    for row in sorted(rows, key=lambda r: r["occurred_at"]):
        if row["name"] != name or row["unit"] not in exposures:
            continue
        exposed = exposures[row["unit"]][1]
        end = min(exposed + timedelta(seconds=window or 1e9), now)
        moment, value = row["occurred_at"], row["value"]
        record = out[row["unit"]]
        if exposed <= moment < end:
            record["c"] += 1
            record["s"] += value or 0.0
            if value is not None:
                record["last"] = value
        elif exposed - timedelta(days=14) <= moment < exposed:
            record["pc"] += 1
            record["ps"] += value or 0.0
    return out


def close(a: float | None, b: float) -> bool:
    """The API's number equals `b` (an unbounded interval end is null in JSON)."""
    if math.isinf(b):
        return a is None
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


async def test_should_give_what_stats_gives_on_per_unit_values_recomputed_from_raw_rows(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    await start_pricing(admin, sdk, 300, database_url)
    response = await results_client.get("/v1/experiments/pricing/results?method=mixture")
    assert response.status_code == 200, response.text
    body = response.json()
    as_of = datetime.fromisoformat(body["asOf"])

    exposure_rows = await conn.fetch("SELECT unit, variant, exposed_at, multiple_variants FROM exposures")
    several = {r["unit"] for r in exposure_rows if r["multiple_variants"]}
    exposures = {
        r["unit"]: (r["variant"], r["exposed_at"]) for r in exposure_rows if not r["multiple_variants"]
    }
    rows = list(await conn.fetch("SELECT name, unit, occurred_at, value FROM events"))
    assert body["unitsInSeveralVariants"] == len(several) > 0
    assert {u["variant"]: u["units"] for u in body["units"]} == {
        v: sum(1 for variant, _ in exposures.values() if variant == v) for v in VARIANTS
    }

    def arrays(name: str, window: float | None) -> dict[str, dict[str, Floats]]:
        values = per_unit(rows, exposures, name, window, as_of)
        by_variant: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
        for unit, record in values.items():
            target = by_variant[exposures[unit][0]]
            for field, value in record.items():
                target.setdefault(field, []).append(np.nan if value is None else float(value))
        return {v: {f: np.array(x) for f, x in fields.items()} for v, fields in by_variant.items()}

    purchase = arrays("purchase", None)
    purchase_day = arrays("purchase", 86400)
    visits = arrays("visit", None)
    survey = arrays("survey", None)
    nonzero = np.concatenate([purchase[v]["s"] for v in VARIANTS])
    cap = float(np.percentile(nonzero[nonzero != 0], 90))

    def mean_stat(y: Floats) -> SampleMeanStatistic:
        return SampleMeanStatistic(len(y), float(y.sum()), float((y * y).sum()))

    def cuped(post: Any, pre: Any, y: Floats, x: Floats) -> RegressionAdjustedStatistic:
        return RegressionAdjustedStatistic(post, pre, float((x * y).sum()))

    def expected(metric: str, v: str) -> Any:
        if metric == "converted":
            y, x = (purchase_day[v]["c"] > 0) * 1.0, (purchase_day[v]["pc"] > 0) * 1.0
            return cuped(
                ProportionStatistic(len(y), float(y.sum())), ProportionStatistic(len(x), float(x.sum())), y, x
            )
        if metric == "revenue":
            y, x = np.minimum(purchase[v]["s"], cap), purchase[v]["ps"]
            return cuped(mean_stat(y), mean_stat(x), y, x)
        if metric == "visits":
            y, x = visits[v]["c"], visits[v]["pc"]
            return cuped(mean_stat(y), mean_stat(x), y, x)
        if metric == "order-value":
            y, d = purchase[v]["s"], purchase[v]["c"]
        elif metric == "revenue-per-visit":
            y, d = purchase[v]["s"], visits[v]["c"]
        else:
            last = survey[v]["last"]
            answered = ~np.isnan(last)
            # NPS in points: a promoter +100, a detractor -100, a passive 0.
            y = np.where(answered, np.where(last >= 9, 100.0, np.where(last <= 6, -100.0, 0.0)), 0.0)
            d = answered * 1.0
        return RatioStatistic(mean_stat(y), mean_stat(d), float((y * d).sum()))

    design = SequentialDesign.from_expected_sample_size(5_000, 0.05)  # the experiment's expected_units
    checked = 0
    for metric in body["metrics"]:
        control = expected(metric["metric"], "control")
        for comparison in metric["comparisons"]:
            treatment = expected(metric["metric"], comparison["variant"])
            for scale, relative in (("absolute", False), ("relative", True)):
                for test, result in (
                    ("fixedHorizon", fixed_horizon(control, treatment, relative=relative)),
                    ("sequential", sequential(control, treatment, design, relative=relative)),
                ):
                    given = comparison[scale][test]
                    assert result.problem is None, (metric["metric"], result.problem)
                    label = (metric["metric"], comparison["variant"], scale, test)
                    assert close(given["effect"], result.effect), label
                    assert close(given["pValue"], result.p_value), label
                    assert close(given["ciLow"], result.ci_low), label
                    assert close(given["ciHigh"], result.ci_high), label
                    checked += 1
    assert checked == 6 * 2 * 2 * 2
    revenue = next(m for m in body["metrics"] if m["metric"] == "revenue")
    assert close(revenue["cap"], cap)
    assert [m["cuped"] for m in body["metrics"]] == [True, True, True, False, False, False]
    adjusted = [
        c["relative"]["sequential"]["pValueAdjusted"] for m in body["metrics"] for c in m["comparisons"]
    ]
    raw = [c["relative"]["sequential"]["pValue"] for m in body["metrics"] for c in m["comparisons"]]
    assert all(a >= r for a, r in zip(adjusted, raw, strict=True))
    assert body["design"]["method"] == "mixture"
    assert await conn.fetchval("SELECT count(*) FROM sequential_looks") == 0  # the mixture takes no looks

    # The default for an experiment with expected_units: the planned design, this request one of its looks
    # after the phase's closed days (stats.planned on the same statistics).
    planned_body = (await results_client.get("/v1/experiments/pricing/results")).json()
    exposed = sum(u["units"] for u in planned_body["units"])
    per_day = Counter(r["exposed_at"].astimezone(UTC).date() for r in exposure_rows)
    today = datetime.fromisoformat(planned_body["asOf"]).date()
    closed = [
        sum(n for d, n in per_day.items() if d <= day) / 5_000 for day in sorted(per_day) if day < today
    ]
    design_at = PlannedDesign.at(5_000, closed, exposed)
    shown = planned_body["design"]
    assert (shown["method"], shown["plannedUnits"], shown["looks"]) == (
        "planned",
        5_000,
        len(design_at.looks),
    )
    assert close(shown["informationFraction"], exposed / 5_000)
    assert close(shown["boundary"], design_at.critical_value(0.05))
    for metric in planned_body["metrics"]:
        control = expected(metric["metric"], "control")
        for comparison in metric["comparisons"]:
            treatment = expected(metric["metric"], comparison["variant"])
            for scale, relative in (("absolute", False), ("relative", True)):
                result = planned(control, treatment, design_at, relative=relative)
                given = comparison[scale]["sequential"]
                where = (metric["metric"], comparison["variant"], scale)
                for name, value in (
                    ("effect", result.effect),
                    ("pValue", result.p_value),
                    ("ciLow", result.ci_low),
                    ("ciHigh", result.ci_high),
                ):
                    assert close(given[name], value), where
                # The interval excludes 0 exactly when the test rejects.
                excludes = (given["ciLow"] or -math.inf) > 0 or (given["ciHigh"] or math.inf) < 0
                assert excludes == (given["pValue"] < 0.05), where
    stored = await conn.fetch("SELECT fraction, boundary FROM sequential_looks WHERE experiment = 'pricing'")
    assert [(r["fraction"], r["boundary"]) for r in stored] == [(exposed / 5_000, shown["boundary"])]
    again = (await results_client.get("/v1/experiments/pricing/results")).json()
    assert again["design"] == shown  # the same look: merged, not stored twice
    assert await conn.fetchval("SELECT count(*) FROM sequential_looks") == 1


async def test_should_refuse_the_planned_method_without_a_planned_reach(
    admin: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    unplanned = copy.deepcopy(DOCUMENT)
    del unplanned["experiments"]["pricing"]["expected_units"]
    assert (await admin.put("/v1/admin/flag-set", json=unplanned)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/pricing/start")).status_code == 200
    refused = await results_client.get("/v1/experiments/pricing/results?method=planned")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "no_planned_reach")
    assert "set expected_units" in refused.json()["error"]["message"]
    default = (await results_client.get("/v1/experiments/pricing/results")).json()
    assert default["design"]["method"] == "mixture"  # the default without a plan, tuned at 100,000 units
    assert default["design"]["plannedUnits"] == 100_000


async def test_should_answer_a_drafts_results_with_not_started_and_how_to_start_it(
    admin: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    for path in ("results", "results/timeseries", "results?phase=1", "results/timeseries?phase=3"):
        draft = await results_client.get(f"/v1/experiments/pricing/{path}")
        assert draft.status_code == 409, path
        assert draft.json()["error"] == {
            "code": "experiment_not_started",
            "message": "Experiment pricing is a draft and has not started, so it has no results yet; start it "
            "with `flagd experiments start pricing` or POST /v1/admin/experiments/pricing/start.",
        }
    listed = (await results_client.get("/v1/experiments")).json()["experiments"]
    assert [(e["key"], e["results"]) for e in listed] == [("pricing", None)]


async def test_should_refuse_unknown_unstarted_and_malformed_requests(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    missing = await results_client.get("/v1/experiments/nope/results?method=mixture")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "experiment_not_found")
    assert (await admin.post("/v1/admin/experiments/pricing/start")).status_code == 200
    for query, fragment in (
        ("alpha=1", "alpha must be a decimal number from 0.001 to 0.5"),
        ("alpha=x", "alpha must be a decimal number"),
        ("phase=2", "experiment pricing has no phase 2: it has run phase 1"),
        ("correction=bonferroni", "correction must be one of holm, bh, none"),
        ("method=bayes", "method must be one of planned, mixture"),
    ):
        refused = await results_client.get(f"/v1/experiments/pricing/results?{query}")
        assert refused.status_code == 400, query
        assert fragment in refused.json()["error"]["message"]
    assert (await sdk.get("/v1/experiments/pricing/results?method=mixture")).status_code == 403
    empty = await results_client.get("/v1/experiments/pricing/results?method=mixture")
    assert empty.status_code == 200
    assert [u["units"] for u in empty.json()["units"]] == [0, 0, 0]
    primary = empty.json()["metrics"][0]["comparisons"][0]["absolute"]["fixedHorizon"]
    assert primary["problem"]["code"]
