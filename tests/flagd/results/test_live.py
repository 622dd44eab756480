"""A look after new events, brought forward from the changed units (flagd.results.live), equals one
reduced from every unit of the same rows, and the analysis on it is the same."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from flagd.experiments.catalog import ExperimentPlan
from flagd.results.analysis import Options
from flagd.results.cache import ReductionCache
from flagd.results.model import PhaseData, Reduction
from flagd.results.phase_reader import PhaseReader
from flagd.results.report import analyse_phase
from flagd.results.sql.delta import additive
from flagd.results.sql.reduce import reduce_rolled_by
from flagd.results.sql.rollup import metric_sources
from tests.flagd.results.test_results_recompute import DOCUMENT, post_all, simulated
from tests.flagd.results.test_rollup import POLICY, catalog_of, exposure, track
from tests.support import backdate_phase


def live_document() -> dict[str, Any]:
    """The pricing experiment with a metric capped at a fixed value and a funnel: additive as well."""
    document = copy.deepcopy(DOCUMENT)
    document["metrics"]["capped-revenue"] = {
        "type": "sum",
        "event": "purchase",
        "direction": "increase",
        "winsorisation": {"value": 50},
    }
    document["metrics"]["visit-to-buy"] = {
        "type": "funnel",
        "direction": "increase",
        "steps": [{"event": "visit"}, {"event": "purchase"}],
    }
    document["experiments"]["pricing"]["metrics"] += [
        {"metric": "capped-revenue", "role": "secondary"},
        {"metric": "visit-to-buy", "role": "secondary"},
    ]
    return document


async def later_events(conn: asyncpg.Connection, now: datetime) -> list[dict[str, Any]]:
    """What makes units change: new events of known units, an earlier exposure, a second variant, new units."""
    known = await conn.fetch(
        "SELECT unit, variant, exposed_at FROM exposures WHERE NOT multiple_variants ORDER BY unit LIMIT 40"
    )
    later: list[dict[str, Any]] = []
    moved, switched, *rest = known
    later.append(exposure(moved["unit"], moved["variant"], moved["exposed_at"] - timedelta(hours=6)))
    other = next(v for v in ("control", "a", "b") if v != switched["variant"])
    later.append(exposure(switched["unit"], other, switched["exposed_at"] + timedelta(minutes=5)))
    for i, row in enumerate(rest):
        later.append(track(row["unit"], "purchase", row["exposed_at"] + timedelta(hours=1), 7.5 * (i + 1)))
        later.append(track(row["unit"], "visit", row["exposed_at"] + timedelta(minutes=10)))
        if i % 3 == 0:
            later.append(track(row["unit"], "survey", row["exposed_at"] + timedelta(hours=2), float(i % 11)))
    for i in range(15):
        unit = f"late-{i}"
        exposed = now - timedelta(hours=5 + i)
        later.append(exposure(unit, ("control", "a", "b")[i % 3], exposed))
        later.append(track(unit, "visit", exposed + timedelta(minutes=1)))
        later.append(track(unit, "purchase", exposed + timedelta(hours=1), 10.0 + i))
    return later


def assert_same(live: Reduction, scratch: Reduction) -> None:
    assert set(live.variants) == set(scratch.variants), live.metric
    assert live.cap == scratch.cap, live.metric
    assert live.reached == scratch.reached, live.metric
    for variant, sums in scratch.variants.items():
        mine = live.variants[variant]
        assert mine.n == sums.n, (live.metric, variant)
        for field in ("y", "y2", "d", "d2", "yd", "x", "x2", "xy"):
            assert getattr(mine, field) == pytest.approx(getattr(sums, field), rel=1e-12, abs=1e-9), (
                live.metric,
                variant,
                field,
            )


async def from_scratch(
    conn: asyncpg.Connection, plan: ExperimentPlan, data: PhaseData
) -> dict[str, Reduction]:
    """Every additive metric reduced from every unit's roll-up rows, as before live sums existed."""
    out = {}
    for role in plan.metrics:
        metric = role.resolved
        if additive(metric):
            keys = tuple(s.key for s in metric_sources(metric, POLICY.pre_seconds))
            population = {"": data.tally.units}
            reduced = await reduce_rolled_by(
                conn, "pricing", 1, metric, keys, attribute=None, population=population
            )
            out[metric.key] = reduced[""]
    return out


async def started(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    conn: asyncpg.Connection,
    database_url: str,
    document: dict[str, Any],
) -> tuple[ExperimentPlan, datetime]:
    """The pricing experiment of `document` started 3 days ago, 120 simulated units posted; its plan and
    the moment they were simulated at."""
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/pricing/start")).status_code == 200
    await backdate_phase(admin, database_url, "pricing", 3)
    now = datetime.now(UTC)
    await post_all(sdk, simulated(now, 120))
    plan = (await catalog_of(conn)).plan("pricing")
    assert plan is not None
    return plan, now


async def test_should_bring_a_look_forward_from_the_changed_units_to_what_every_unit_gives(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str
) -> None:
    plan, now = await started(admin, sdk, conn, database_url, live_document())
    live = [m.resolved for m in plan.metrics if additive(m.resolved)]
    assert {m.key for m in live} == {
        "converted",
        "visits",
        "order-value",
        "revenue-per-visit",
        "nps",
        "capped-revenue",
        "visit-to-buy",
    }

    process = ReductionCache()

    async def read(cache: ReductionCache) -> PhaseData:
        return await PhaseReader(conn, plan, 1, POLICY, cache, datetime.now(UTC) + timedelta(hours=1)).read()

    first = await read(process)
    assert await conn.fetchval("SELECT count(*) FROM results_sums") == len(live)
    for key, reduced in (await from_scratch(conn, plan, first)).items():
        assert_same(first.reductions[key], reduced)

    for _round in range(2):
        await post_all(sdk, await later_events(conn, now))
        # A new process starts from the stored sums, this one from its own: both bring them forward.
        fresh = ReductionCache()
        new_process = await read(fresh)
        assert await conn.fetchval("SELECT count(*) FROM results_unit_changes") > 0
        forwarded = process.forwarded
        same_process = await read(process)
        # Every additive metric reads an event that changed: each was brought forward, none reduced again.
        assert fresh.forwarded == len(live)
        assert process.forwarded == forwarded + len(live)
        scratch = await from_scratch(conn, plan, same_process)
        for key, reduction in scratch.items():
            assert_same(same_process.reductions[key], reduction)
            assert_same(new_process.reductions[key], reduction)
        # The analysis on the brought-forward sums is the analysis on sums from every unit.
        everything = PhaseData(
            **{**_fields(same_process), "reductions": {**same_process.reductions, **scratch}}
        )
        assert _rounded(analyse_phase(plan, same_process, Options())) == _rounded(
            analyse_phase(plan, everything, Options())
        )


def _fields(data: PhaseData) -> dict[str, Any]:
    return {name: getattr(data, name) for name in PhaseData.__dataclass_fields__}


def _rounded(value: Any) -> Any:
    """The analysis as the API writes it, every number to 9 significant digits (sums of floats added in
    another order differ in their last bits)."""
    from flagd.results.wire import to_wire

    def walk(item: Any) -> Any:
        if isinstance(item, float):
            return float(f"{item:.9g}")
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(to_wire(value))
