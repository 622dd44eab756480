"""Filtered metrics through POST /v1/events, recomputed from the raw rows with numpy.

Six metrics read one event, `order_paid`, through different filters and values (a property instead
of `value`); its properties hold what must count as no match or no value: another currency's case,
numbers as text, a number beyond float8, JSON null, no properties at all. The API's statistics (from
the roll-ups) and the raw reduction's sums must equal what numpy computes from the rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np

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
from tests.support import backdate_phase

VARIANTS = ("control", "on")
METRICS: dict[str, dict[str, Any]] = {
    "orders": {"type": "count", "event": "order_paid", "direction": "increase"},
    "revenue-eur": {
        "type": "sum",
        "event": "order_paid",
        "direction": "increase",
        "where": {"currency": {"equals": "EUR"}},
        "value_property": "amount",
    },
    "revenue-big-nl-de": {
        "type": "sum",
        "event": "order_paid",
        "direction": "increase",
        "where": {"country": {"in": ["NL", "DE"]}, "amount": {"gte": 10}},
        "value_property": "amount",
    },
    "coupon-orders-outside-nl": {
        "type": "count",
        "event": "order_paid",
        "direction": "increase",
        "where": {"country": {"not_in": ["NL"]}, "coupon": {"exists": True}},
    },
    "paid-without-coupon": {
        "type": "conversion",
        "event": "order_paid",
        "direction": "increase",
        "where": {"coupon": {"exists": False}},
    },
    "small-order-value": {
        "type": "mean",
        "event": "order_paid",
        "direction": "increase",
        "where": {"amount": {"lt": 100}},
        "value_property": "amount",
    },
}
DOCUMENT: dict[str, Any] = {
    "flags": {
        "shop": {"state": "ENABLED", "variants": {v: v for v in VARIANTS}, "defaultVariant": "control"}
    },
    "metrics": METRICS,
    "experiments": {
        "shop": {
            "flag": "shop",
            "variants": {"control": 1, "on": 1},
            "expected_units": 5_000,
            "metrics": [{"metric": "orders", "role": "primary"}]
            + [{"metric": key, "role": "secondary"} for key in METRICS if key != "orders"],
        }
    },
}


def number(properties: dict[str, Any] | None, name: str) -> float | None:
    """The property as the server must read it: a JSON number within float8's range, else nothing."""
    value = (properties or {}).get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e300:
        return float(value)
    return None


def present(properties: dict[str, Any] | None, name: str) -> bool:
    return (properties or {}).get(name) is not None


PASSES: dict[str, Callable[[dict[str, Any] | None], bool]] = {
    "orders": lambda p: True,
    "revenue-eur": lambda p: (p or {}).get("currency") == "EUR",
    "revenue-big-nl-de": lambda p: (
        (p or {}).get("country") in ("NL", "DE") and (number(p, "amount") or -1.0) >= 10
    ),
    "coupon-orders-outside-nl": lambda p: (p or {}).get("country") != "NL" and present(p, "coupon"),
    "paid-without-coupon": lambda p: not present(p, "coupon"),
    "small-order-value": lambda p: number(p, "amount") is not None and (number(p, "amount") or 0.0) < 100,
}


def properties(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.1:
        return None
    out: dict[str, Any] = {}
    choices: dict[str, list[Any]] = {
        "currency": ["EUR", "EUR", "USD", "eur", None],
        "country": ["NL", "DE", "BE", None, ["NL"]],
        "amount": [
            round(rng.expovariate(1 / 60), 2),
            rng.randrange(0, 200),
            "12",
            1e305,
            None,
            True,
        ],
        "coupon": ["SPRING", "", None, None],
    }
    for name, values in choices.items():
        if rng.random() < 0.85:
            out[name] = rng.choice(values)
    return out


def simulated(now: datetime, units: int) -> list[dict[str, Any]]:
    rng = random.Random(23)
    events: list[dict[str, Any]] = []
    for i in range(units):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=1, minutes=rng.randrange(0, 600))
        events.append(exposure(unit, variant, exposed, "shop"))
        for _ in range(rng.choice((0, 1, 2, 4)) + (variant == "on")):
            moment = exposed + timedelta(minutes=rng.randrange(1, 600))
            # The value 1.0 is never read by the metrics with a value_property.
            events.append(track(unit, "order_paid", moment, 1.0, properties(rng)))
    return events


def per_unit(rows: list[asyncpg.Record], exposures: dict[str, str], key: str) -> dict[str, dict[str, Floats]]:
    """Per variant, each unit's y and d of the metric, from the raw rows filtered in Python."""
    metric = METRICS[key]
    counts = dict.fromkeys(exposures, 0.0)
    sums = dict.fromkeys(exposures, 0.0)
    for row in rows:
        props = row["properties"]
        if row["unit"] not in exposures or not PASSES[key](props):
            continue
        counts[row["unit"]] += 1
        value = number(props, "amount") if "value_property" in metric else row["value"]
        sums[row["unit"]] += value or 0.0
    out: dict[str, dict[str, Floats]] = {}
    for variant in VARIANTS:
        units = [u for u, v in exposures.items() if v == variant]
        c, s = np.array([counts[u] for u in units]), np.array([sums[u] for u in units])
        y, d = {
            "count": (c, np.ones_like(c)),
            "sum": (s, np.ones_like(c)),
            "conversion": ((c > 0) * 1.0, np.ones_like(c)),
            "mean": (s, c),
        }[metric["type"]]
        out[variant] = {"y": y, "d": d}
    return out


def expected(kind: str, y: Floats, d: Floats) -> Any:
    mean = SampleMeanStatistic(len(y), float(y.sum()), float((y * y).sum()))
    if kind == "conversion":
        return ProportionStatistic(len(y), float(y.sum()))
    if kind == "mean":
        return RatioStatistic(
            mean, SampleMeanStatistic(len(d), float(d.sum()), float((d * d).sum())), float((y * d).sum())
        )
    return mean


async def test_should_filter_and_value_events_as_numpy_does_on_the_raw_rows_in_rollups_and_raw_reductions(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/shop/start")).status_code == 200
    await backdate_phase(admin, database_url, "shop", 2)
    await post_all(sdk, simulated(datetime.now(UTC), 400))
    response = await results_client.get("/v1/experiments/shop/results?method=mixture")
    assert response.status_code == 200, response.text
    body = response.json()

    catalog = await catalog_of(conn)  # the server's codecs: properties read as Python values
    exposures = {r["unit"]: r["variant"] for r in await conn.fetch("SELECT unit, variant FROM exposures")}
    rows = list(await conn.fetch("SELECT unit, value, properties FROM events"))
    assert any(r["properties"] is None for r in rows)
    assert any(isinstance((r["properties"] or {}).get("amount"), str) for r in rows)
    design = SequentialDesign.from_expected_sample_size(5_000, 0.05)
    checked = 0
    by_key = {m["metric"]: m for m in body["metrics"]}
    assert set(by_key) == set(METRICS)
    for key, metric in METRICS.items():
        arrays = per_unit(rows, exposures, key)
        control = expected(metric["type"], **arrays["control"])
        treatment = expected(metric["type"], **arrays["on"])
        given = by_key[key]
        assert given["cuped"] is False  # no event before exposure
        for scale, relative in (("absolute", False), ("relative", True)):
            for test, result in (
                ("fixedHorizon", fixed_horizon(control, treatment, relative=relative)),
                ("sequential", sequential(control, treatment, design, relative=relative)),
            ):
                answer = given["comparisons"][0][scale][test]
                assert result.problem is None, (key, result.problem)
                for field, value in (
                    ("effect", result.effect),
                    ("pValue", result.p_value),
                    ("ciLow", result.ci_low),
                    ("ciHigh", result.ci_high),
                ):
                    assert close(answer[field], value), (key, scale, test, field)
                checked += 1
        # The raw path (the time series' past days) gives the same sums.
        plan = catalog.plan("shop")
        assert plan is not None
        resolved = next(m.resolved for m in plan.metrics if m.metric.key == key)
        raw = await raw_reduction(conn, "shop", resolved)
        for variant in VARIANTS:
            y, d = arrays[variant]["y"], arrays[variant]["d"]
            sums = raw.sums(variant)
            assert sums.n == len(y), (key, variant)
            for mine, theirs in (
                (sums.y, y.sum()),
                (sums.y2, (y * y).sum()),
                (sums.d, d.sum()),
                (sums.yd, (y * d).sum()),
            ):
                assert abs(mine - float(theirs)) < 1e-9 * (1 + abs(float(theirs))), (key, variant)
    assert checked == len(METRICS) * 4
    # Different filters on one event are different roll-up sources, and keep different numbers.
    sources = await conn.fetchval(
        "SELECT count(DISTINCT source) FROM results_rollups WHERE experiment = 'shop'"
    )
    assert sources == len(METRICS)
    means = {key: by_key[key]["variants"][0]["mean"] for key in ("revenue-eur", "revenue-big-nl-de")}
    assert means["revenue-eur"] != means["revenue-big-nl-de"]
