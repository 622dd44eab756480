"""The phases each experiment key ran (`experiment_phases`), written by lifecycle transitions; the caller
owns the transaction. Rows outlive their experiment, so a key created again continues the numbering."""

from __future__ import annotations

from collections.abc import Sequence

from flagd.experiments.phases import PhaseRecord
from flagd.storage.types import Connection


class PhaseHistory:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def last_phase(self, experiment: str) -> int:
        """The highest phase the key ever ran (0 when none)."""
        found: int = await self._conn.fetchval(
            "SELECT coalesce(max(phase), 0) FROM experiment_phases WHERE experiment = $1", experiment
        )
        return found

    async def begin(self, experiment: str, phase: int, variants: Sequence[str]) -> None:
        """End the phase that runs, if any, and record `phase` as begun now."""
        await self.end(experiment)
        await self._conn.execute(
            "INSERT INTO experiment_phases (experiment, phase, variants, started_at) VALUES ($1, $2, $3, now())",
            experiment,
            phase,
            list(variants),
        )

    async def end(self, experiment: str) -> None:
        await self._conn.execute(
            "UPDATE experiment_phases SET ended_at = now() WHERE experiment = $1 AND ended_at IS NULL",
            experiment,
        )

    async def of(self, experiments: Sequence[str]) -> list[PhaseRecord]:
        """Every phase of these keys, as stored now."""
        rows = await self._conn.fetch(
            "SELECT experiment, phase, variants, started_at, ended_at FROM experiment_phases "
            "WHERE experiment = ANY($1::text[])",
            list(experiments),
        )
        return [
            PhaseRecord(r["experiment"], r["phase"], frozenset(r["variants"]), r["started_at"], r["ended_at"])
            for r in rows
        ]
