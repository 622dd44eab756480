"""The last reduction of a metric that no delta brings forward, stored for every results process.

A quantile, a retention or a percentile-capped metric is reduced from every unit (flagd.results.sql.delta
says why), and the reduction is kept per process under the exact key it was read at (flagd.results.cache).
Stored as well (`results_reductions`, one row per experiment phase and metric), a new process, another
worker or another host whose key is equal reads it instead of reducing a million units again: equal keys,
equal rows, so the stored answer is the one the database would give. A row that does not decode (written
by another version) is a miss, never an error.
"""

from __future__ import annotations

from collections.abc import Hashable

import orjson

from flagd.results.model import Reduction
from flagd.results.sql.codec import fields, from_fields
from flagd.storage.types import Connection


def key_text(key: Hashable) -> str:
    """The reduction cache's key as stored: its parts (strings, numbers, tuples of them) as JSON."""
    return orjson.dumps(key).decode()


async def stored_reductions(
    conn: Connection, experiment: str, phase: int, signature: str, metric: str, key: str
) -> dict[str, Reduction] | None:
    """The stored reductions (per segment) of the metric when stored under `key`; else None."""
    raw = await conn.fetchval(
        "SELECT reduction::text FROM results_reductions "
        "WHERE experiment = $1 AND phase = $2 AND signature = $3 AND key = $4",
        experiment,
        phase,
        signature,
        key,
    )
    if raw is None:
        return None
    try:
        return {segment: from_fields(metric, r) for segment, r in orjson.loads(raw).items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


async def store_reductions(
    conn: Connection, experiment: str, phase: int, signature: str, key: str, found: dict[str, Reduction]
) -> None:
    """Store the metric's reductions under `key`, replacing what was stored for it."""
    encoded = orjson.dumps({segment: fields(r) for segment, r in found.items()}).decode()
    await conn.execute(
        "INSERT INTO results_reductions AS s (experiment, phase, signature, key, reduction) "
        "VALUES ($1, $2, $3, $4, $5::text::jsonb) ON CONFLICT (experiment, phase, signature) DO UPDATE "
        "SET key = EXCLUDED.key, reduction = EXCLUDED.reduction",
        experiment,
        phase,
        signature,
        key,
        encoded,
    )
