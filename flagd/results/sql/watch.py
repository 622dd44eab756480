"""The watched state of experiments (table experiment_watch, migration 0014): read, lock, save, forget.

The caller owns the transaction: `lock` a row, compare, `save` it and enqueue the notifications in it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from flagd.results.model import Action
from flagd.results.watch import Look, Watched
from flagd.storage.types import Connection


class WatchRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def last_watched(self) -> dict[str, datetime]:
        """When each watched experiment was last looked at."""
        rows = await self._conn.fetch("SELECT experiment, watched_at FROM experiment_watch")
        return {row["experiment"]: row["watched_at"] for row in rows}

    async def lock(self, experiment: str) -> tuple[Watched, datetime] | None:
        """The experiment's watched state and the moment of the results it was saved from, its row locked
        until the transaction ends; None when it was never watched."""
        row = await self._conn.fetchrow(
            "SELECT phase, decision, decision_variant, failed_checks, harmed_metrics, harmed_variants, "
            "last_decision, last_variant, last_failed, last_harmed_metrics, last_harmed_variants, as_of "
            "FROM experiment_watch WHERE experiment = $1 FOR UPDATE",
            experiment,
        )
        if row is None:
            return None
        notified, last = (_look(*(row[c] for c in columns)) for columns in (_NOTIFIED, _LAST))
        return Watched(row["phase"], notified, last), row["as_of"]

    async def save(self, experiment: str, state: Watched, as_of: datetime, watched_by: str) -> None:
        await self._conn.execute(
            "INSERT INTO experiment_watch AS w (experiment, phase, as_of, watched_by, "
            "decision, decision_variant, failed_checks, harmed_metrics, harmed_variants, "
            "last_decision, last_variant, last_failed, last_harmed_metrics, last_harmed_variants) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
            "ON CONFLICT (experiment) DO UPDATE SET phase = excluded.phase, as_of = excluded.as_of, "
            "watched_by = excluded.watched_by, decision = excluded.decision, "
            "decision_variant = excluded.decision_variant, failed_checks = excluded.failed_checks, "
            "harmed_metrics = excluded.harmed_metrics, harmed_variants = excluded.harmed_variants, "
            "last_decision = excluded.last_decision, last_variant = excluded.last_variant, "
            "last_failed = excluded.last_failed, last_harmed_metrics = excluded.last_harmed_metrics, "
            "last_harmed_variants = excluded.last_harmed_variants, rounds = w.rounds + 1, watched_at = now()",
            experiment,
            state.phase,
            as_of,
            watched_by,
            *_columns(state.notified),
            *_columns(state.last),
        )

    async def forget_others(self, experiments: Collection[str]) -> int:
        """Drop the states of experiments not among `experiments` (deleted ones); how many were dropped."""
        status = await self._conn.execute(
            "DELETE FROM experiment_watch WHERE NOT (experiment = ANY($1::text[]))", list(experiments)
        )
        return int(status.split()[-1])


_NOTIFIED = ("decision", "decision_variant", "failed_checks", "harmed_metrics", "harmed_variants")
_LAST = ("last_decision", "last_variant", "last_failed", "last_harmed_metrics", "last_harmed_variants")


def _columns(look: Look) -> tuple[object, ...]:
    harmed = sorted(look.harmed)
    return (
        look.action,
        look.variant,
        sorted(look.failed),
        [metric for metric, _ in harmed],
        [variant for _, variant in harmed],
    )


def _look(
    action: Action, variant: str | None, failed: list[str], metrics: list[str], variants: list[str]
) -> Look:
    return Look(action, variant, frozenset(failed), frozenset(zip(metrics, variants, strict=True)))
