"""Fixtures of the ingestion tests."""

from __future__ import annotations

import asyncpg
import pytest


@pytest.fixture
async def checkout_ran(database_url: str) -> None:
    """Phases 1 and 2 of experiment "checkout" ran (since 40 days ago), split between the variants the tests
    log: exposures of them are accepted (the server finds the phases in the database on its first miss)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO experiment_phases (experiment, phase, variants, started_at) "
            "SELECT 'checkout', p, ARRAY['control', 'treatment', 'a', 'b'], now() - interval '40 days' "
            "FROM generate_series(1, 2) AS p"
        )
    finally:
        await conn.close()
