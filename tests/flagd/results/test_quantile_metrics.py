"""Quantile metrics through the real ingestion path, recomputed from the raw rows with numpy.

Events go in through POST /v1/events; the results endpoint computes each variant's quantile inside
PostgreSQL from the roll-ups. The test reads the raw rows back, computes each unit's values itself
(windows, units in several variants left out, units without events), then each variant's quantile,
the delta method's rank interval and its order statistics with numpy, and runs `stats/` on them:
every statistic the API gives must be the same.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np
import numpy.typing as npt

from flagd.experiments.model import Metric
from flagd.results.analysis import quantile_arm
from flagd.results.sql.quantile import QuantileQuery, reduce_quantile
from stats import (
    SequentialDesign,
    fixed_horizon,
    sequential,
)
from tests.flagd.results.test_results_recompute import close, post_all
from tests.stats.test_quantile import statistic_of
from tests.support import backdate_phase

Floats = npt.NDArray[np.float64]
VARIANTS = ("control", "treatment")
QUANTILE_METRICS: dict[str, dict[str, Any]] = {
    "spend-p50": {"event": "purchase", "quantile": 0.5, "level": "unit"},
    "spend-p90": {"event": "purchase", "quantile": 0.9, "level": "unit"},
    "load-p90": {"event": "page_load", "quantile": 0.9, "level": "event"},
    "load-p25-day": {"event": "page_load", "quantile": 0.25, "level": "event", "window_seconds": 86400},
}


def document(metrics: dict[str, dict[str, Any]], roles: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "flags": {
            "page": {"state": "ENABLED", "variants": {v: v for v in VARIANTS}, "defaultVariant": "control"}
        },
        "metrics": metrics,
        "experiments": {
            "speed": {
                "flag": "page",
                "variants": {"control": 1, "treatment": 1},
                "expected_units": 5_000,
                "metrics": roles,
            }
        },
    }


RECOMPUTED = document(
    {key: {"type": "quantile", "direction": "decrease", **spec} for key, spec in QUANTILE_METRICS.items()},
    [{"metric": key, "role": "primary" if i == 0 else "secondary"} for i, key in enumerate(QUANTILE_METRICS)],
)


def exposure(unit: str, variant: str, at: datetime, country: str) -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.uuid4()),
        "timestamp": at.isoformat(),
        "experiment": "speed",
        "phase": 1,
        "variant": variant,
        "unit": unit,
        "attributes": {"country": country},
    }


def track(name: str, unit: str, at: datetime, value: float | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": at.isoformat(),
        "event": name,
        "unit": unit,
    }
    if value is not None:
        event["value"] = value
    return event


def simulated(now: datetime, units: int) -> list[dict[str, Any]]:
    """Units with 0 to 6 page loads (some before exposure, some after a day, a few without a value),
    purchases by 70% of them, a unit in both variants now and then, ties in the values."""
    rng = random.Random(23)
    events: list[dict[str, Any]] = []
    for i in range(units):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=2, minutes=rng.randrange(0, 600))
        events.append(exposure(unit, variant, exposed, rng.choice(("NL", "DE", "BE"))))
        if i % 41 == 0:
            events.append(exposure(unit, VARIANTS[(i + 1) % 2], exposed + timedelta(hours=1), "NL"))
        slow = rng.lognormvariate(0, 0.3) * (1.2 if variant == "treatment" else 1.0)
        for _ in range(rng.randrange(0, 7)):
            at = exposed + timedelta(hours=rng.uniform(-20, 40))
            value = None if rng.random() < 0.05 else round(rng.lognormvariate(0, 0.6) * slow * 100, 0)
            if at < now:
                events.append(track("page_load", unit, at, value))
        if rng.random() < 0.7:
            for _ in range(rng.randrange(1, 3)):
                at = exposed + timedelta(hours=rng.uniform(-10, 40))
                if at < now:
                    events.append(track("purchase", unit, at, round(rng.expovariate(1 / 30), 2)))
    return events


def unit_values(
    rows: list[Any], exposures: dict[str, tuple[str, datetime]], spec: dict[str, Any], now: datetime
) -> dict[str, list[list[float]]]:
    """Per variant, each exposed unit's values: its summed value (unit level) or its events' values."""
    window = spec.get("window_seconds")
    per_unit: dict[str, list[float]] = {u: [] for u in exposures}
    for row in rows:
        if row["name"] != spec["event"] or row["unit"] not in exposures:
            continue
        exposed = exposures[row["unit"]][1]
        end = min(exposed + timedelta(seconds=window or 1e9), now)
        if exposed <= row["occurred_at"] < end and (row["value"] is not None or spec["level"] == "unit"):
            per_unit[row["unit"]].append(row["value"] or 0.0)
    out: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    for unit, values in per_unit.items():
        out[exposures[unit][0]].append([sum(values)] if spec["level"] == "unit" else values)
    return out


async def start(admin: httpx.AsyncClient, database_url: str, definition: dict[str, Any]) -> datetime:
    assert (await admin.put("/v1/admin/flag-set", json=definition)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/speed/start")).status_code == 200
    await backdate_phase(admin, database_url, "speed", 3)
    return datetime.now(UTC)


async def test_should_give_what_stats_gives_on_quantiles_recomputed_from_raw_rows(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    now = await start(admin, database_url, RECOMPUTED)
    await post_all(sdk, simulated(now, 400))
    response = await results_client.get("/v1/experiments/speed/results?method=mixture")
    assert response.status_code == 200, response.text
    body = response.json()
    as_of = datetime.fromisoformat(body["asOf"])
    exposure_rows = await conn.fetch("SELECT unit, variant, exposed_at, multiple_variants FROM exposures")
    exposures = {
        r["unit"]: (r["variant"], r["exposed_at"]) for r in exposure_rows if not r["multiple_variants"]
    }
    rows = list(await conn.fetch("SELECT name, unit, occurred_at, value FROM events"))
    design = SequentialDesign.from_expected_sample_size(5_000, 0.05)
    checked = 0
    for metric in body["metrics"]:
        spec = QUANTILE_METRICS[metric["metric"]]
        assert (metric["type"], metric["quantile"], metric["level"]) == (
            "quantile",
            spec["quantile"],
            spec["level"],
        )
        values = unit_values(rows, exposures, spec, as_of)
        arms = {
            v: statistic_of([np.array(u, dtype=float) for u in values[v]], spec["quantile"]) for v in VARIANTS
        }
        shown = {s["variant"]: (s["units"], s["mean"]) for s in metric["variants"]}
        assert shown == {v: (len(values[v]), arms[v].value) for v in VARIANTS}
        (comparison,) = metric["comparisons"]
        for scale, relative in (("absolute", False), ("relative", True)):
            for test, result in (
                ("fixedHorizon", fixed_horizon(arms["control"], arms["treatment"], relative=relative)),
                ("sequential", sequential(arms["control"], arms["treatment"], design, relative=relative)),
            ):
                given, label = comparison[scale][test], (metric["metric"], scale, test)
                assert result.problem is None, (label, result.problem)
                for field, expected in (
                    ("effect", result.effect),
                    ("pValue", result.p_value),
                    ("ciLow", result.ci_low),
                    ("ciHigh", result.ci_high),
                ):
                    assert close(given[field], expected), (label, field, given[field], expected)
                checked += 1
    assert checked == len(QUANTILE_METRICS) * 4


async def test_should_compute_the_same_quantiles_from_raw_events_from_caught_up_rollups_and_per_segment(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    now = await start(admin, database_url, RECOMPUTED)
    events = simulated(now, 300)
    await post_all(sdk, events[: len(events) // 2])
    assert (
        await results_client.get("/v1/experiments/speed/results?method=mixture")
    ).status_code == 200  # builds the roll-ups
    await post_all(sdk, events[len(events) // 2 :])  # caught up: the touched units recomputed
    body = (await results_client.get("/v1/experiments/speed/results?method=mixture&segment=country")).json()
    as_of = datetime.fromisoformat(body["asOf"])
    for key, spec in QUANTILE_METRICS.items():
        metric = Metric(
            key,
            key,
            "quantile",
            "decrease",
            event=spec["event"],
            **{k: v for k, v in spec.items() if k != "event"},
        )
        raw = (await reduce_quantile(conn, "speed", 1, QuantileQuery(metric, end=as_of), None))[""]
        shown = next(m for m in body["metrics"] if m["metric"] == key)
        assert {s["variant"]: s["mean"] for s in shown["variants"]} == {
            v: raw.quantiles[v].quantile for v in VARIANTS
        }
        arms = [quantile_arm(metric, raw.quantiles[v]) for v in VARIANTS]
        expected = fixed_horizon(*arms)
        given = shown["comparisons"][0]["absolute"]["fixedHorizon"]
        assert close(given["ciLow"], expected.ci_low), key
        assert close(given["ciHigh"], expected.ci_high), key
    # Per segment: each country's units add up to the whole, and each has its own quantile.
    segments = body["segments"]["values"]
    assert {s["value"] for s in segments} == {"NL", "DE", "BE"}
    for index, key in enumerate(QUANTILE_METRICS):
        per_segment = [s["metrics"][index] for s in segments]
        assert all(m["metric"] == key for m in per_segment)
        for v, whole in enumerate(next(m for m in body["metrics"] if m["metric"] == key)["variants"]):
            assert sum(m["variants"][v]["units"] for m in per_segment) == whole["units"]
    series = await results_client.get(
        "/v1/experiments/speed/results/timeseries?method=mixture&metric=load-p90"
    )
    assert series.status_code == 200, series.text
    days = series.json()["days"]
    assert len(days) >= 3
    assert days[-1]["comparisons"][0]["absolute"]["effect"] is not None


async def test_should_find_a_slower_p90_when_the_mean_latency_stays_the_same(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient, database_url: str
) -> None:
    """The treatment's page loads are lognormal with the same mean but a 15% higher p90 (sigma 0.5 ->
    0.706, mu 0 -> -0.124): the mean metric sees nothing, the p90 guardrail is harmed, and the
    decision stops the treatment."""
    definition = document(
        {
            "load-mean": {"type": "mean", "event": "page_load", "direction": "decrease"},
            "load-p90": {
                "type": "quantile",
                "event": "page_load",
                "quantile": 0.9,
                "level": "event",
                "direction": "decrease",
            },
        },
        [{"metric": "load-mean", "role": "primary"}, {"metric": "load-p90", "role": "guardrail"}],
    )
    now = await start(admin, database_url, definition)
    rng = random.Random(15)
    # The same mean exp(mu + sigma^2 / 2) as lognormal(0, 0.5), and exp(mu + z sigma) 15% above its p90.
    z, mean_log = 1.2815515655446004, 0.125
    c = 0.5 * z + math.log(1.15) - mean_log
    sigma1 = z - math.sqrt(z * z - 2 * c)
    shape = {"control": (0.0, 0.5), "treatment": (0.125 - sigma1**2 / 2, sigma1)}
    events = []
    for i in range(2000):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=1, minutes=rng.randrange(0, 600))
        events.append(exposure(unit, variant, exposed, "NL"))
        for _ in range(rng.randrange(1, 11)):
            value = rng.lognormvariate(*shape[variant]) * 1000
            events.append(track("page_load", unit, exposed + timedelta(minutes=rng.randrange(1, 600)), value))
    await post_all(sdk, events)
    body = (await results_client.get("/v1/experiments/speed/results?method=mixture")).json()
    by_key = {m["metric"]: m for m in body["metrics"]}
    mean_change = by_key["load-mean"]["comparisons"][0]["relative"]["sequential"]
    p90_change = by_key["load-p90"]["comparisons"][0]["relative"]["sequential"]
    assert mean_change["ciLow"] < 0 < mean_change["ciHigh"]
    assert mean_change["pValue"] > 0.05
    assert 0 < p90_change["ciLow"] < 0.15 < p90_change["ciHigh"]
    assert p90_change["pValue"] < 0.05
    assert body["guardrails"] == [{"metric": "load-p90", "variant": "treatment", "verdict": "harmed"}]
    assert body["decision"]["action"] == "stop"
