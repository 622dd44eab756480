"""Retention metrics through the real ingestion path, recomputed from the raw rows with numpy.

Units are exposed over the last 26 days and active on some of their days around exposure, with two
events that count (one only when its properties pass the metric's filter) and one that does not. The API's units, maturing units, shares and every test of
the retention metric must equal what `stats/` gives on per-unit values computed here from the rows:
active on any of the events in [exposure + 7 days, exposure + 14 days), counted only for units
exposed at least 14 days before the analysis, the others maturing. Then more events arrive (some in
a counted unit's window, some outside it, a new recent exposure) and the roll-ups must follow exactly.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np

from stats import ProportionStatistic, SequentialDesign, fixed_horizon, sequential
from tests.flagd.results.test_results_recompute import close, post_all
from tests.support import backdate_phase

VARIANTS = ("control", "treatment")
FROM_DAY, TO_DAY = 7, 14
DOCUMENT: dict[str, Any] = {
    "flags": {
        "home": {"state": "ENABLED", "variants": {v: v for v in VARIANTS}, "defaultVariant": "control"}
    },
    "metrics": {
        "week-2": {
            "type": "retention",
            # order_paid counts only when paid in EUR: a filtered event of the list.
            "events": ["app_opened", {"event": "order_paid", "where": {"currency": {"equals": "EUR"}}}],
            "from_day": FROM_DAY,
            "to_day": TO_DAY,
            "direction": "increase",
        },
        "opened": {"type": "conversion", "event": "app_opened", "direction": "increase"},
    },
    "experiments": {
        "home": {
            "flag": "home",
            "variants": {"control": 1, "treatment": 1},
            "expected_units": 2_000,
            "metrics": [
                {"metric": "week-2", "role": "primary"},
                {"metric": "opened", "role": "secondary"},
            ],
        }
    },
}


def _event(name: str, unit: str, moment: datetime, currency: str = "EUR") -> dict[str, Any]:
    event = {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": moment.isoformat(),
        "event": name,
        "unit": unit,
    }
    return {**event, "properties": {"currency": currency}} if name == "order_paid" else event


def _exposure(unit: str, variant: str, moment: datetime) -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.uuid4()),
        "timestamp": moment.isoformat(),
        "experiment": "home",
        "phase": 1,
        "variant": variant,
        "unit": unit,
        "attributes": {"platform": "ios" if unit.endswith(("1", "3")) else "web"},
    }


def simulated(now: datetime, units: int) -> list[dict[str, Any]]:
    """Units exposed 0.5 to 26 days ago; on each day around exposure, active with some chance."""
    rng = random.Random(23)
    events: list[dict[str, Any]] = []
    for i in range(units):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=0.5 + rng.random() * 25.5)
        events.append(_exposure(unit, variant, exposed))
        rate = 0.12 if variant == "control" else 0.16
        for day in range(-3, 22):
            for name, share in (("app_opened", rate), ("order_paid", rate / 3), ("page_view", 0.3)):
                if rng.random() < share:
                    # Some land exactly on the window's edges: day 7 counts, day 14 does not.
                    offset = timedelta(days=day, seconds=0 if rng.random() < 0.05 else rng.randrange(86_400))
                    if exposed + offset < now:
                        events.append(_event(name, unit, exposed + offset, rng.choice(("EUR", "USD"))))
    return events


async def raw(conn: asyncpg.Connection) -> tuple[dict[str, tuple[str, datetime]], list[Any]]:
    exposures = {
        r["unit"]: (r["variant"], r["exposed_at"])
        for r in await conn.fetch("SELECT unit, variant, exposed_at, multiple_variants FROM exposures")
        if not r["multiple_variants"]
    }
    return exposures, list(
        await conn.fetch("SELECT name, unit, occurred_at, properties ->> 'currency' AS currency FROM events")
    )


def recomputed(
    exposures: dict[str, tuple[str, datetime]], rows: list[Any], end: datetime
) -> dict[str, dict[str, Any]]:
    """Per variant: the matured units' 0/1 activity (numpy), and the maturing count."""
    active: set[str] = set()
    for row in rows:
        counts = row["name"] == "app_opened" or (row["name"] == "order_paid" and row["currency"] == "EUR")
        if not counts or row["unit"] not in exposures:
            continue
        exposed = exposures[row["unit"]][1]
        if exposed + timedelta(days=FROM_DAY) <= row["occurred_at"] < exposed + timedelta(days=TO_DAY):
            active.add(row["unit"])
    out: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        mine = [(u, at) for u, (v, at) in exposures.items() if v == variant and at < end]
        # Units mature on the hour: the analysis end's hour is what counts.
        hour = end.replace(minute=0, second=0, microsecond=0)
        matured = [u for u, at in mine if at + timedelta(days=TO_DAY) <= hour]
        out[variant] = {
            "y": np.array([1.0 if u in active else 0.0 for u in matured]),
            "maturing": len(mine) - len(matured),
            "exposed": len(mine),
        }
    return out


def assert_same(body: dict[str, Any], expected: dict[str, dict[str, Any]]) -> None:
    metric = next(m for m in body["metrics"] if m["metric"] == "week-2")
    assert metric["cuped"] is False
    by_variant = {v["variant"]: v for v in metric["variants"]}
    units = {u["variant"]: u["units"] for u in body["units"]}
    for variant in VARIANTS:
        y = expected[variant]["y"]
        assert by_variant[variant]["units"] == len(y) > 0, variant
        assert by_variant[variant]["maturing"] == expected[variant]["maturing"] > 0, variant
        # Maturing units are exposed units: the sample-ratio check and the unit counts keep them.
        assert units[variant] == expected[variant]["exposed"] == len(y) + expected[variant]["maturing"]
        assert close(by_variant[variant]["mean"], float(y.mean()))
    design = SequentialDesign.from_expected_sample_size(2_000, 0.05)
    control = ProportionStatistic(len(expected["control"]["y"]), float(expected["control"]["y"].sum()))
    treatment = ProportionStatistic(len(expected["treatment"]["y"]), float(expected["treatment"]["y"].sum()))
    comparison = metric["comparisons"][0]
    for scale, relative in (("absolute", False), ("relative", True)):
        for test, result in (
            ("fixedHorizon", fixed_horizon(control, treatment, relative=relative)),
            ("sequential", sequential(control, treatment, design, relative=relative)),
        ):
            given = comparison[scale][test]
            assert result.problem is None
            for field, value in (
                ("effect", result.effect),
                ("pValue", result.p_value),
                ("ciLow", result.ci_low),
                ("ciHigh", result.ci_high),
            ):
                assert close(given[field], value), (scale, test, field)
    other = next(m for m in body["metrics"] if m["metric"] == "opened")
    assert all("maturing" not in v for v in other["variants"])


async def test_should_count_only_matured_units_and_say_how_many_are_maturing(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200, "document"
    assert (await admin.post("/v1/admin/experiments/home/start")).status_code == 200
    await backdate_phase(admin, database_url, "home", 27)
    now = datetime.now(UTC)
    await post_all(sdk, simulated(now, 600))

    response = await results_client.get("/v1/experiments/home/results?method=mixture")
    assert response.status_code == 200, response.text
    body = response.json()
    exposures, rows = await raw(conn)
    assert_same(body, recomputed(exposures, rows, datetime.fromisoformat(body["asOf"])))
    progress = body["progress"]
    counted = sum(v["units"] for v in body["metrics"][0]["variants"])
    assert progress["units"] == counted < sum(u["units"] for u in body["units"])

    # More activity: in counted units' windows, outside them, and a unit exposed just now (maturing).
    exposed = sorted(exposures.items(), key=lambda item: item[1][1])
    more = [
        _event("order_paid", unit, at + timedelta(days=FROM_DAY, hours=3), ("EUR", "USD")[i % 2])
        for i, (unit, (_, at)) in enumerate(exposed[:40])
    ]
    more += [
        _event("app_opened", unit, at + timedelta(days=TO_DAY, hours=1)) for unit, (_, at) in exposed[40:60]
    ]
    more += [_exposure("late-1", "treatment", now), _event("app_opened", "late-1", now)]
    await post_all(sdk, more)
    again = (await results_client.get("/v1/experiments/home/results?method=mixture")).json()
    exposures, rows = await raw(conn)
    assert_same(again, recomputed(exposures, rows, datetime.fromisoformat(again["asOf"])))
    assert again["metrics"][0]["variants"][1]["maturing"] == body["metrics"][0]["variants"][1]["maturing"] + 1

    # The breakdown by an exposure attribute adds up to the whole, maturing units included.
    segmented = (
        await results_client.get("/v1/experiments/home/results?method=mixture&segment=platform")
    ).json()
    totals: dict[str, list[int]] = {v: [0, 0] for v in VARIANTS}
    for value in segmented["segments"]["values"]:
        for summary in value["metrics"][0]["variants"]:
            totals[summary["variant"]][0] += summary["units"]
            totals[summary["variant"]][1] += summary["maturing"]
    whole = {v["variant"]: [v["units"], v["maturing"]] for v in segmented["metrics"][0]["variants"]}
    assert totals == whole

    # The series' past days, from the raw events as of each day's end: the units matured by then.
    series = (
        await results_client.get("/v1/experiments/home/results/timeseries?method=mixture&metric=week-2")
    ).json()
    assert len(series["days"]) + len(series["pendingDays"]) >= 27
    assert len(series["days"]) >= 2
    checked = 0
    for point in series["days"][:-1]:
        day = date.fromisoformat(point["day"])
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        expected = recomputed(exposures, [r for r in rows if r["occurred_at"] < end], end)
        assert point["units"] == {v: len(expected[v]["y"]) for v in VARIANTS}, point["day"]
        if min(len(expected[v]["y"]) for v in VARIANTS) >= 10:
            shares = {v: float(expected[v]["y"].mean()) for v in VARIANTS}
            effect = point["comparisons"][0]["absolute"]["effect"]
            assert close(effect, shares["treatment"] - shares["control"]), point["day"]
            checked += 1
    assert checked >= 1
