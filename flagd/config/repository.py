"""Flags, shared evaluators and flag-set metadata in PostgreSQL; the caller owns the transaction.

Every write bumps the one config version (`config_state.version`) and notifies the
`flagd_config` channel with it; the notification is delivered when the transaction
commits, so every worker reloads exactly the committed state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from flagd import jsonio
from flagd.experiments.phases import PhaseRecord
from flagd.experiments.serving import Lifecycle, Served, served_flags
from flagd.rollouts.serving import RolloutState, with_rollouts
from flagd.storage.types import Connection
from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.problems import child

CONFIG_CHANNEL = "flagd_config"
# (upsert, delete) for each section's table, written out in full.
_SECTION_SQL = {
    "metrics": (
        "INSERT INTO metrics (key, definition) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
        "SET definition = $2, version = metrics.version + 1, updated_at = now()",
        "DELETE FROM metrics WHERE key = $1",
    ),
    "layers": (
        "INSERT INTO layers (key, definition) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
        "SET definition = $2, version = layers.version + 1, updated_at = now()",
        "DELETE FROM layers WHERE key = $1",
    ),
    "experiments": (
        "INSERT INTO experiments (key, definition) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
        "SET definition = $2, version = experiments.version + 1, updated_at = now()",
        # Its results' derived rows go with it (they are rebuilt from events and exposures when needed).
        "WITH gone AS (DELETE FROM experiments WHERE key = $1 RETURNING key), "
        "units AS (DELETE FROM results_unit_values WHERE experiment IN (SELECT key FROM gone)), "
        "rollups AS (DELETE FROM results_rollups WHERE experiment IN (SELECT key FROM gone)), "
        "changes AS (DELETE FROM results_unit_changes WHERE experiment IN (SELECT key FROM gone)), "
        "sums AS (DELETE FROM results_sums WHERE experiment IN (SELECT key FROM gone)), "
        "reductions AS (DELETE FROM results_reductions WHERE experiment IN (SELECT key FROM gone)) "
        "DELETE FROM results_days WHERE experiment IN (SELECT key FROM gone)",
    ),
    "events": (
        "INSERT INTO event_plan (key, definition) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
        "SET definition = $2, version = event_plan.version + 1, updated_at = now()",
        "DELETE FROM event_plan WHERE key = $1",
    ),
}


@dataclass(frozen=True, slots=True)
class FlagRecord:
    key: str
    definition: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version": self.version,
            "definition": self.definition,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """The whole configuration at one config version, as one consistent read."""

    version: int
    flags: dict[str, Any]
    evaluators: dict[str, Any]
    metadata: dict[str, Any]
    updated_at: datetime
    unreadable: tuple[Problem, ...] = field(default=())
    """Stored definitions that could not even be decoded (written by hand): left out, reported here."""
    metrics: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    experiments: dict[str, Any] = field(default_factory=dict)
    """Experiment definitions as their authors wrote them; their lifecycle is in `lifecycles`."""
    lifecycles: dict[str, Lifecycle] = field(default_factory=dict)
    phases: tuple[PhaseRecord, ...] = ()
    """Every phase any experiment key ever ran (kept when an experiment is deleted)."""
    rollouts: dict[str, RolloutState] = field(default_factory=dict)
    """Every rollout, with its state (compiled into its flag when served)."""
    events: dict[str, Any] = field(default_factory=dict)
    """The tracking plan: planned events by name, and its options under `$plan` (flagd.tracking.plan)."""

    def served(self) -> tuple[dict[str, Any], Served]:
        """The flag set as served (running experiments compiled in), and how it was compiled."""
        served = served_flags(
            self.flags, self.metrics, self.layers, self.experiments, self.lifecycles, self.evaluators
        )
        flags = with_rollouts(served.flags, self.rollouts, served.problems)
        return {**self.flag_document(), "flags": flags}, served

    def document(self) -> dict[str, Any]:
        """The flag set in the flagd definition format, with its metrics, layers and experiments beside it."""
        document = self.flag_document()
        for section in ("metrics", "layers", "experiments", "events"):
            values = getattr(self, section)
            if values:
                document[section] = values
        return document

    def flag_document(self) -> dict[str, Any]:
        """Only what flagd evaluators read: flags, $evaluators, metadata."""
        document: dict[str, Any] = {"flags": self.flags}
        if self.evaluators:
            document["$evaluators"] = self.evaluators
        if self.metadata:
            document["metadata"] = self.metadata
        return document


# One statement, so one snapshot: no flag can change between reading the flags and the version.
# Definitions come as text and are decoded one by one, so one unreadable row costs only itself.
_LOAD = """
SELECT s.version, s.metadata::text AS metadata, s.updated_at,
       (SELECT coalesce(json_object_agg(f.key, f.definition::text ORDER BY f.key), '{}') FROM flags f) AS flags,
       (SELECT coalesce(json_object_agg(e.name, e.rule::text ORDER BY e.name), '{}') FROM evaluators e)
         AS evaluators,
       (SELECT coalesce(json_object_agg(m.key, m.definition::text ORDER BY m.key), '{}') FROM metrics m) AS metrics,
       (SELECT coalesce(json_object_agg(l.key, l.definition::text ORDER BY l.key), '{}') FROM layers l) AS layers,
       (SELECT coalesce(json_object_agg(x.key, x.definition::text ORDER BY x.key), '{}') FROM experiments x)
         AS experiments,
       (SELECT coalesce(json_object_agg(x.key, json_build_array(x.state, x.phase, x.salt, x.slot_start,
                x.phase_started_at,
                (SELECT min(p.phase) FROM experiment_phases p WHERE p.experiment = x.key AND p.started_at >= x.created_at))),
               '{}')
          FROM experiments x) AS lifecycles,
       (SELECT coalesce(json_agg(json_build_array(p.experiment, p.phase, p.variants, p.started_at, p.ended_at)), '[]')
          FROM experiment_phases p) AS phases,
       (SELECT coalesce(json_agg(json_build_array(r.key, r.definition, r.state, r.stage, r.share_bp, r.phase,
                r.stage_started_at, r.version, r.created_at)), '[]')
          FROM rollouts r) AS rollouts,
       (SELECT coalesce(json_object_agg(t.key, t.definition::text ORDER BY t.key), '{}') FROM event_plan t)
         AS events
FROM config_state s
"""


class ConfigRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def load(self, *, for_update: bool = False) -> StoredConfig:
        if for_update:
            # Writers queue here, so each validates against the state it will change.
            await self._conn.execute("SELECT version FROM config_state FOR UPDATE")
        row = await self._conn.fetchrow(_LOAD)
        assert row is not None, "config_state always has its one row"
        unreadable: list[Problem] = []
        metadata = _decoded({"metadata": row["metadata"]}, "", unreadable).get("metadata", {})
        return StoredConfig(
            version=row["version"],
            flags=_decoded(row["flags"], "flags", unreadable),
            evaluators=_decoded(row["evaluators"], "$evaluators", unreadable),
            metadata=metadata if isinstance(metadata, dict) else {},
            updated_at=row["updated_at"],
            unreadable=tuple(unreadable),
            metrics=_decoded(row["metrics"], "metrics", unreadable),
            layers=_decoded(row["layers"], "layers", unreadable),
            experiments=_decoded(row["experiments"], "experiments", unreadable),
            lifecycles={key: Lifecycle(*values) for key, values in row["lifecycles"].items()},
            phases=tuple(PhaseRecord.from_row(*values) for values in row["phases"]),
            rollouts={values[0]: rollout_state(*values) for values in row["rollouts"]},
            events=_decoded(row["events"], "events", unreadable),
        )

    async def version(self) -> int:
        version: int = await self._conn.fetchval("SELECT version FROM config_state")
        return version

    async def get_flag(self, key: str) -> FlagRecord | None:
        row = await self._conn.fetchrow(
            "SELECT key, definition, version, created_at, updated_at FROM flags WHERE key = $1", key
        )
        return _flag(row) if row else None

    async def list_flags(self) -> list[FlagRecord]:
        rows = await self._conn.fetch(
            "SELECT key, definition, version, created_at, updated_at FROM flags ORDER BY key"
        )
        return [_flag(row) for row in rows]

    async def insert_flag(self, key: str, definition: dict[str, Any]) -> FlagRecord:
        row = await self._conn.fetchrow(
            "INSERT INTO flags (key, definition) VALUES ($1, $2) RETURNING key, definition, version, created_at, updated_at",
            key,
            definition,
        )
        assert row is not None
        return _flag(row)

    async def update_flag(self, key: str, definition: dict[str, Any]) -> FlagRecord:
        row = await self._conn.fetchrow(
            "UPDATE flags SET definition = $2, version = version + 1, updated_at = now() "
            "WHERE key = $1 RETURNING key, definition, version, created_at, updated_at",
            key,
            definition,
        )
        assert row is not None
        return _flag(row)

    async def delete_flag(self, key: str) -> None:
        await self._conn.execute("DELETE FROM flags WHERE key = $1", key)

    async def upsert_evaluator(self, name: str, rule: Any) -> None:
        await self._conn.execute(
            "INSERT INTO evaluators (name, rule) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET rule = $2, version = evaluators.version + 1, updated_at = now()",
            name,
            rule,
        )

    async def delete_evaluator(self, name: str) -> None:
        await self._conn.execute("DELETE FROM evaluators WHERE name = $1", name)

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        await self._conn.execute("UPDATE config_state SET metadata = $1", metadata)

    async def upsert_definition(self, table: str, key: str, definition: Any) -> None:
        """Create or replace a metric, layer or experiment definition (an experiment's lifecycle is kept)."""
        await self._conn.execute(_SECTION_SQL[table][0], key, definition)

    async def delete_definition(self, table: str, key: str) -> None:
        await self._conn.execute(_SECTION_SQL[table][1], key)

    async def bump_version(self) -> int:
        version: int = await self._conn.fetchval(
            "UPDATE config_state SET version = version + 1, updated_at = now() RETURNING version"
        )
        await self._conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANNEL, str(version))
        return version


def rollout_state(
    key: str,
    definition: dict[str, Any],
    state: Any,
    stage: int,
    share_bp: int,
    phase: int,
    stage_started_at: str,
    version: int,
    created_at: str,
) -> RolloutState:
    """A rollout's row as `_LOAD` reads it (timestamps as JSON text)."""
    return RolloutState(
        key,
        definition,
        state,
        stage,
        share_bp,
        phase,
        datetime.fromisoformat(stage_started_at),
        version,
        datetime.fromisoformat(created_at),
    )


def _decoded(texts: dict[str, str], path: str, unreadable: list[Problem]) -> dict[str, Any]:
    decoded = {}
    for key, text in texts.items():
        try:
            decoded[key] = jsonio.loads(text)
        except ValueError:
            unreadable.append(
                Problem(
                    child(path, key), "the stored definition cannot be decoded (too deeply nested); left out"
                )
            )
    return decoded


def _flag(row: asyncpg.Record) -> FlagRecord:
    return FlagRecord(
        key=row["key"],
        definition=row["definition"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
