"""A metric reduced from every unit (a quantile, a retention, a percentile cap) is stored under the key it
was read at (flagd.results.sql.stored): a new process with the same key reads it instead of reducing the
units again, gets the same answer, and a changed key or an unreadable row is reduced again."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from flagd.experiments.catalog import ExperimentPlan
from flagd.results.cache import ReductionCache
from flagd.results.model import PhaseData, Reduction
from flagd.results.phase_reader import PhaseReader
from flagd.results.sql.delta import additive
from tests.flagd.results.test_live import later_events, live_document, started
from tests.flagd.results.test_results_recompute import post_all
from tests.flagd.results.test_rollup import POLICY


def stored_document() -> dict[str, Any]:
    """The live pricing experiment with a quantile and a retention beside its percentile-capped revenue."""
    document = copy.deepcopy(live_document())
    document["metrics"]["order-p90"] = {
        "type": "quantile",
        "event": "purchase",
        "quantile": 0.9,
        "level": "event",
        "direction": "increase",
    }
    document["metrics"]["came-back"] = {
        "type": "retention",
        "events": ["visit", "purchase"],
        "from_day": 0,
        "to_day": 1,
        "direction": "increase",
    }
    document["experiments"]["pricing"]["metrics"] += [
        {"metric": "order-p90", "role": "secondary"},
        {"metric": "came-back", "role": "secondary"},
    ]
    return document


@contextlib.contextmanager
def unit_reads(conn: asyncpg.Connection) -> Iterator[list[str]]:
    """The statements that read the roll-ups' unit rows while in the block."""
    seen: list[str] = []

    def logger(record: Any) -> None:
        if "FROM results_unit_values" in record.query:
            seen.append(record.query)

    conn.add_query_logger(logger)
    try:
        yield seen
    finally:
        conn.remove_query_logger(logger)


def answers(data: PhaseData, plan: ExperimentPlan) -> dict[str, Reduction]:
    """The reductions of the metrics no delta brings forward."""
    return {m.resolved.key: data.reductions[m.resolved.key] for m in plan.metrics if not additive(m.resolved)}


async def test_should_answer_a_new_process_from_the_stored_reduction_of_the_same_key(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str
) -> None:
    plan, now = await started(admin, sdk, conn, database_url, stored_document())
    whole = {m.resolved.key for m in plan.metrics if not additive(m.resolved)}
    assert whole == {"revenue", "order-p90", "came-back"}
    moment = datetime.now(UTC) + timedelta(hours=1)

    async def read(cache: ReductionCache) -> PhaseData:
        return await PhaseReader(conn, plan, 1, POLICY, cache, moment).read()

    first = await read(ReductionCache())
    assert await conn.fetchval("SELECT count(*) FROM results_reductions") == len(whole)
    assert all(first.reductions[k].variants for k in whole)
    assert first.reductions["order-p90"].quantiles
    assert first.reductions["came-back"].maturing is not None

    # A new process: nothing in its cache, the same rows; no unit row is read, the answer is the same.
    with unit_reads(conn) as seen:
        again = await read(ReductionCache())
    assert seen == []
    assert answers(again, plan) == answers(first, plan)

    # New events change the roll-ups' versions: the stored key no longer matches and the units are
    # reduced again; what is stored then is what a process reducing from scratch gets.
    await post_all(sdk, await later_events(conn, now))
    with unit_reads(conn) as seen:
        changed = await read(ReductionCache())
    assert seen  # reduced from the unit rows
    assert answers(changed, plan) != answers(first, plan)
    await conn.execute("DELETE FROM results_reductions")
    scratch = await read(ReductionCache())
    assert answers(scratch, plan) == answers(changed, plan)

    # A row that does not decode is a miss: reduced again, and replaced by a readable one.
    await conn.execute("""UPDATE results_reductions SET reduction = '{"": {"variants": 7}}'""")
    mended = await read(ReductionCache())
    assert answers(mended, plan) == answers(changed, plan)
    assert await read(ReductionCache()) is not None
    assert await conn.fetchval(
        """SELECT count(*) FROM results_reductions WHERE reduction -> '' ? 'variants'
           AND jsonb_typeof(reduction -> '' -> 'variants') = 'object'"""
    ) == len(whole)
