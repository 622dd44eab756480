"""The journey report, recomputed from the raw rows with numpy.

Track events (with properties) and exposures (with attributes) go in through POST /v1/events; the test
reads the stored rows back, walks each unit's events itself (entry in the range, each step at or after the
one before and within the window from entry, the earliest that qualifies) and computes every figure with
numpy: units, conversion from the start and from the step before, median and p90 of the seconds between
steps, per segment of an event property, an exposure attribute and the variant. The API must give the same.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from flagd.errors import ServiceUnavailable
from flagd.results.journey import JourneyQuery
from flagd.results.sql.funnel import read_funnel
from tests.flagd.results.test_results_recompute import post_all, start_pricing

STEPS = ("visit", "add_to_cart", "purchase")
COUNTRIES = ("NL", "BE", "DE", "FR")
WINDOW = 2 * 86_400


def simulated(now: datetime, units: int) -> list[dict[str, Any]]:
    """Units that visit, add to the cart and buy over the last 12 days, some out of order, some late."""
    rng = random.Random(23)
    events: list[dict[str, Any]] = []

    def track(name: str, unit: str, moment: datetime, properties: dict[str, Any] | None = None) -> None:
        if moment >= now:
            return
        event: dict[str, Any] = {
            "kind": "track",
            "event_id": str(uuid.uuid4()),
            "timestamp": moment.isoformat(),
            "event": name,
            "unit": unit,
        }
        if properties:
            event["properties"] = properties
        events.append(event)

    for i in range(units):
        unit = f"u{i}"
        start = now - timedelta(days=rng.uniform(0, 12))
        if i % 3 != 2:
            events.append(
                {
                    "kind": "exposure",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": (now - timedelta(days=11.9)).isoformat(),
                    "experiment": "pricing",
                    "phase": 1,
                    "variant": ("control", "a", "b")[i % 3],
                    "unit": unit,
                    "attributes": {"platform": rng.choice(["ios", "web"])} if i % 5 else {},
                }
            )
        for _ in range(rng.choice((1, 1, 2, 3))):
            moment = start + timedelta(hours=rng.uniform(0, 30))
            properties: dict[str, Any] = {"ref": f"r{rng.randrange(30)}"}
            if rng.random() < 0.9:
                properties["country"] = rng.choice(COUNTRIES)
            track("visit", unit, moment, properties)
        # Some carts before the first visit (not counted unless another follows), some after the window.
        for _ in range(rng.choice((0, 1, 1, 2))):
            track("add_to_cart", unit, start + timedelta(hours=rng.uniform(-10, 60)))
        for _ in range(rng.choice((0, 1, 1))):
            track("purchase", unit, start + timedelta(hours=rng.uniform(-5, 70)))
    return events


def walk(
    rows: list[Any], steps: tuple[str, ...], start: datetime, end: datetime, window: float
) -> dict[str, list[datetime]]:
    """Per unit entering, the moments it reached each step (as many as it reached)."""
    by_unit: dict[str, list[Any]] = {}
    for row in sorted(rows, key=lambda r: (r["occurred_at"], str(r["event_id"]))):
        by_unit.setdefault(row["unit"], []).append(row)
    reached: dict[str, list[datetime]] = {}
    for unit, events in by_unit.items():
        entries = [
            e["occurred_at"] for e in events if e["name"] == steps[0] and start <= e["occurred_at"] < end
        ]
        if not entries:
            continue
        moments = [entries[0]]
        limit = entries[0] + timedelta(seconds=window)
        for step in steps[1:]:
            later = [
                e["occurred_at"]
                for e in events
                if e["name"] == step and moments[-1] <= e["occurred_at"] < limit
            ]
            if not later:
                break
            moments.append(min(later))
        reached[unit] = moments
    return reached


def entering_property(
    rows: list[Any], steps: tuple[str, ...], start: datetime, end: datetime, name: str
) -> dict[str, str]:
    """Each unit's property on its entering event ("(none)" without it)."""
    found: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r["occurred_at"], str(r["event_id"]))):
        if row["name"] == steps[0] and start <= row["occurred_at"] < end and row["unit"] not in found:
            value = json.loads(row["properties"] or "{}").get(name)
            found[row["unit"]] = "(none)" if value is None else str(value)
    return found


def expected_segment(reached: dict[str, list[datetime]], units: list[str], steps: int) -> dict[str, Any]:
    counts = np.array([sum(1 for u in units if len(reached[u]) >= k) for k in range(1, steps + 1)])
    out: dict[str, Any] = {"entered": int(counts[0]), "steps": []}
    for k in range(steps):
        gaps = np.array(
            [
                (reached[u][k] - reached[u][k - 1]).total_seconds()
                for u in units
                if len(reached[u]) > k and k > 0
            ]
        )
        out["steps"].append(
            {
                "units": int(counts[k]),
                "fromStart": counts[k] / counts[0] if counts[0] else None,
                "fromPrevious": counts[k] / counts[k - 1] if k > 0 and counts[k - 1] else None,
                "median": float(np.percentile(gaps, 50)) if gaps.size else None,
                "p90": float(np.percentile(gaps, 90)) if gaps.size else None,
            }
        )
    return out


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def assert_segment(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["entered"] == want["entered"]
    for step, expected in zip(got["steps"], want["steps"], strict=True):
        assert step["units"] == expected["units"], step
        assert same(step["fromStart"], expected["fromStart"]), step
        assert same(step["fromPrevious"], expected["fromPrevious"]), step
        assert same(step["medianSeconds"], expected["median"]), (step, expected)
        assert same(step["p90Seconds"], expected["p90"]), (step, expected)


def span(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time(), UTC), datetime.combine(last, time(), UTC) + timedelta(days=1)


async def test_should_give_the_funnel_numpy_gives_from_the_raw_rows_per_segment(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    results_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
) -> None:
    now = await start_pricing(admin, sdk, 400, database_url, days=12, simulation=simulated)
    first, last = now.date() - timedelta(days=8), now.date() - timedelta(days=1)
    start, end = span(first, last)
    rows = list(await conn.fetch("SELECT event_id, name, unit, occurred_at, properties FROM events"))
    exposures = await conn.fetch(
        "SELECT unit, variant, attributes FROM exposures WHERE experiment = 'pricing'"
    )
    reached = walk(rows, STEPS, start, end, WINDOW)
    assert 50 < len(reached) < 400
    assert (
        0 < sum(1 for m in reached.values() if len(m) == 3) < sum(1 for m in reached.values() if len(m) >= 2)
    )

    async def ask(breakdown: str | None) -> httpx.Response:
        params: list[tuple[str, str | int | float | bool | None]] = [("step", s) for s in STEPS]
        params += [("from", first.isoformat()), ("to", last.isoformat()), ("window", "2d")]
        if breakdown:
            params.append(("breakdown", breakdown))
        return await results_client.get("/v1/journeys/funnel", params=params)

    plain = await ask(None)
    assert plain.status_code == 200, plain.text
    body = plain.json()
    assert body["steps"] == list(STEPS)
    assert (body["fromDay"], body["toDay"], body["windowSeconds"]) == (
        first.isoformat(),
        last.isoformat(),
        WINDOW,
    )
    assert body["segments"] == []
    assert body["breakdown"] is None
    assert_segment(body["allUnits"], expected_segment(reached, list(reached), 3))

    def check(breakdown: str, segment_of: Callable[[str], str], omitted: int = 0) -> dict[str, Any]:
        return {"breakdown": breakdown, "segment_of": segment_of, "omitted": omitted}

    country = entering_property(rows, STEPS, start, end, "country")
    ref = entering_property(rows, STEPS, start, end, "ref")
    platform = {r["unit"]: json.loads(r["attributes"] or "{}").get("platform", "(none)") for r in exposures}
    variant = {r["unit"]: r["variant"] for r in exposures}
    refs = {ref[u] for u in reached}
    ranked = sorted(refs, key=lambda v: (-sum(1 for u in reached if ref[u] == v), v))[:20]
    cases = [
        check("property:country", lambda u: country[u]),
        check("property:ref", lambda u: ref[u] if ref[u] in ranked else "(other)", len(refs) - 20),
        check("exposure:pricing:platform", lambda u: platform.get(u, "(none)")),
        check("variant:pricing", lambda u: variant.get(u, "(none)")),
    ]
    assert len(refs) > 20
    for case in cases:
        answered = await ask(case["breakdown"])
        assert answered.status_code == 200, answered.text
        got = answered.json()
        assert got["breakdown"] == case["breakdown"]
        assert got["omitted"] == case["omitted"]
        assert_segment(got["allUnits"], expected_segment(reached, list(reached), 3))
        groups: dict[str, list[str]] = {}
        for unit in reached:
            groups.setdefault(case["segment_of"](unit), []).append(unit)
        assert {s["value"] for s in got["segments"]} == set(groups), case["breakdown"]
        entered = [s["entered"] for s in got["segments"]]
        assert entered == sorted(entered, reverse=True)
        for found in got["segments"]:
            assert_segment(found, expected_segment(reached, groups[found["value"]], 3))


async def test_should_count_only_steps_in_order_and_within_the_window(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)

    def track(name: str, unit: str, hours: float) -> dict[str, Any]:
        moment = now + timedelta(hours=hours)
        return {
            "kind": "track",
            "event_id": str(uuid.uuid4()),
            "timestamp": moment.isoformat(),
            "event": name,
            "unit": unit,
        }

    await post_all(
        sdk,
        [
            # in order, within 24 h: reaches all three, 1 h then 2 h apart
            track("a", "in-order", 0),
            track("b", "in-order", 1),
            track("c", "in-order", 3),
            # c before b: reaches b only
            track("a", "swapped", 0),
            track("c", "swapped", 1),
            track("b", "swapped", 2),
            # b after the window: reaches a only
            track("a", "late", 0),
            track("b", "late", 25),
            # a second entry later does not restart the window
            track("a", "again", 0),
            track("a", "again", 20),
            track("b", "again", 30),
        ],
    )
    day = now.date().isoformat()
    answer = await results_client.get(
        f"/v1/journeys/funnel?step=a&step=b&step=c&from={day}&to={day}&window=24h"
    )
    assert answer.status_code == 200, answer.text
    steps = answer.json()["allUnits"]["steps"]
    assert [s["units"] for s in steps] == [4, 2, 1]
    assert [s["fromPrevious"] for s in steps] == [None, 0.5, 0.5]
    assert steps[1]["medianSeconds"] == 5400.0  # in-order 1 h, swapped 2 h
    assert steps[2]["medianSeconds"] == steps[2]["p90Seconds"] == 7200.0


async def test_should_answer_results_timeout_when_the_statement_runs_out_of_time(
    conn: asyncpg.Connection, database_url: str
) -> None:
    """A funnel that cannot finish within its statement time (here: the events table locked by another
    session) is cancelled by PostgreSQL and answered as 503 results_timeout, saying what to narrow."""
    today = datetime.now(UTC).date()
    query = JourneyQuery(("visit", "purchase"), today - timedelta(days=6), today)
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(ServiceUnavailable) as raised:
                await read_funnel(conn, query, 0.2)
    finally:
        await locker.close()
    assert raised.value.code == "results_timeout"
    assert raised.value.status == 503
    assert "narrow the date range" in raised.value.message
    rows, _ = await read_funnel(conn, query, 5.0)  # the connection is usable again
    assert [(r.step, r.units) for r in rows] == [(1, 0), (2, 0)]


async def test_should_count_a_filtered_step_only_with_events_that_meet_its_filter(
    sdk: httpx.AsyncClient, results_client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

    def track(name: str, unit: str, hours: float, **properties: Any) -> dict[str, Any]:
        event = {
            "kind": "track",
            "event_id": str(uuid.uuid4()),
            "timestamp": (now + timedelta(hours=hours)).isoformat(),
            "event": name,
            "unit": unit,
        }
        return {**event, "properties": properties} if properties else event

    await post_all(
        sdk,
        [
            track("a", "eur", 0, plan="pro"),
            track("b", "eur", 1, currency="EUR", amount=30),
            # a USD payment first, then a EUR one: reaches b at the EUR one (2 h)
            track("a", "usd-then-eur", 0, plan="pro"),
            track("b", "usd-then-eur", 1, currency="USD"),
            track("b", "usd-then-eur", 2, currency="EUR", amount=5),
            track("a", "usd", 0, plan="free"),
            track("b", "usd", 1, currency="USD", amount=50),
            track("a", "bare", 0),
            track("b", "bare", 1),
        ],
    )
    day = now.date().isoformat()
    base = [("step", "a"), ("step", "b"), ("from", day), ("to", day)]
    path = "/v1/journeys/funnel"
    eur = await results_client.get(path, params=[*base, ("where", '2:{"currency": {"equals": "EUR"}}')])
    assert eur.status_code == 200, eur.text
    body = eur.json()
    assert body["filteredSteps"] == [2]
    steps = body["allUnits"]["steps"]
    assert [s["units"] for s in steps] == [4, 2]
    assert steps[1]["medianSeconds"] == 5400.0  # 1 h and 2 h
    both = await results_client.get(
        path, params=[*base, ("where", '1:{"plan": {"in": ["pro"]}}'), ("where", '2:{"amount": {"gte": 10}}')]
    )
    assert both.status_code == 200, both.text
    assert [s["units"] for s in both.json()["allUnits"]["steps"]] == [2, 1]  # only "eur" pays 10 or more
    assert both.json()["filteredSteps"] == [1, 2]
