"""Where every table would live on a distributed PostgreSQL (Citus): the layout as data.

flagd runs on one PostgreSQL today. Issue 26 asks that the schema stay ready for Citus, whose rules are
few but strict: a distributed table is split into shards by its *distribution column*; every primary key
and unique constraint of it must include that column; a join between two distributed tables runs inside the
shards (is "co-located") only when they share a colocation group and the join equates their distribution
columns. Reference tables are copied whole to every node, so anything may join them; local tables stay on
the coordinator.

Every table of the migrated schema is placed here, each with the reason for its place; the child partitions
of a partitioned table follow their parent. Temporary tables the code creates per session are placed too,
because the queries join them. tests/flagd/storage/test_distribution.py checks the migrated schema and the
SQL of the code against this, and docs/citus.md is rendered from it (`python -m flagd.reference --write`).
What breaks the rules today is listed in `KNOWN_GAPS`, each gap by name, so nothing breaks them silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    DISTRIBUTED = "distributed"
    """Sharded by its distribution column (`create_distributed_table`)."""
    REFERENCE = "reference"
    """Copied whole to every node (`create_reference_table`): small, read by joins, rarely written."""
    LOCAL = "local"
    """Left on the coordinator: never joined with a distributed table, or written in ways a shard cannot be."""


@dataclass(frozen=True, slots=True)
class Placement:
    table: str
    kind: Kind
    reason: str
    """Why it lives there, in one line."""
    column: str | None = None
    """The distribution column (distributed tables only): the column that names the unit."""
    colocate_with: str | None = None
    """The distributed table whose shards this one shares; None for the first of the group."""
    partitioned: bool = False
    """A partitioned parent: its child partitions (events_default, events_pYYYYMMDD) follow it."""
    temporary: bool = False
    """Created per session by the code (CREATE TEMP TABLE), not by a migration: always local."""


D, R, L = Kind.DISTRIBUTED, Kind.REFERENCE, Kind.LOCAL
UNIT = "unit"
GROUP = "exposures"
"""The colocation group of the unit-keyed tables is named after its first table."""

PLACEMENTS: tuple[Placement, ...] = (
    # The unit-keyed data: everything a results reduction joins, sharded by unit, in one colocation group.
    Placement("exposures", D, "one row per unit and experiment phase; every reduction starts from it", UNIT),
    Placement(
        "events",
        D,
        "track events, joined to exposures on unit",
        UNIT,
        GROUP,
        partitioned=True,
    ),
    Placement(
        "results_unit_values", D, "the per-unit roll-ups, written from an exposures-events join", UNIT, GROUP
    ),
    Placement(
        "results_unit_changes",
        D,
        "each changed unit's earlier roll-up row, joined to results_unit_values on unit by the live delta",
        UNIT,
        GROUP,
    ),
    # Configuration, keys and audit: small, read everywhere, written by admins.
    Placement("instance", R, "one row: the installation's identity"),
    Placement("config_state", R, "one row: the flag set's version and metadata"),
    Placement("flags", R, "flag definitions, read by every worker's snapshot"),
    Placement("evaluators", R, "shared evaluators of the flag definitions"),
    Placement("metrics", R, "metric definitions"),
    Placement("layers", R, "layer definitions"),
    Placement("experiments", R, "experiment definitions and lifecycle, read beside exposures"),
    Placement("experiment_phases", R, "every phase an experiment ran; exposures are checked against it"),
    Placement("rollouts", R, "rollout definitions and state, part of the served configuration"),
    Placement("rollout_transitions", R, "a rollout's history; references rollouts, so it is a reference too"),
    Placement("event_plan", R, "the tracking plan, configuration like metrics"),
    Placement("api_keys", R, "keys, looked up by every authenticated request"),
    Placement("web_sessions", R, "results-page sessions; references api_keys"),
    Placement("audit_log", R, "the audit trail of configuration and key changes"),
    # Bookkeeping of one coordinator: counters, queues, claims and the detector's reductions.
    Placement("event_counts", L, "per-day counters upserted by each worker every few seconds, never joined"),
    Placement("event_rejections", L, "per-day counters of refused events, never joined"),
    Placement("exposure_rejections", L, "per-day counters of refused exposures, never joined"),
    Placement("event_plan_violations", L, "per-day counters of tracking-plan violations, never joined"),
    Placement("events_retention", L, "one row: the day before which events were pruned"),
    Placement("results_rollups", L, "how far each roll-up is caught up, one row per source; never joined"),
    Placement("results_days", L, "closed days' per-variant sums of a metric; no unit in it"),
    Placement("results_sums", L, "the latest per-variant sums of a metric, for a new process; no unit in it"),
    Placement("results_reductions", L, "the last reduction of a metric, for a new process; no unit in it"),
    Placement("sequential_looks", L, "looks taken per experiment phase; no unit in it"),
    Placement("experiment_watch", L, "the results watcher's last look per experiment"),
    Placement("notifications", L, "the outbox; a trigger fans each row out to webhook_deliveries"),
    Placement("webhooks", L, "webhook receivers, read by the outbox trigger"),
    Placement("webhook_deliveries", L, "the delivery queue, claimed with FOR UPDATE SKIP LOCKED"),
    Placement("webhook_attempts", L, "the last attempts per webhook, trimmed by the deliverer"),
    Placement("schedules", L, "scheduled changes, claimed with FOR UPDATE SKIP LOCKED"),
    Placement("event_schema", L, "the observed schema per event name, from a sample; no unit in it"),
    Placement(
        "event_schema_properties", L, "the observed properties per event name; references event_schema"
    ),
    Placement("data_health_hours", L, "hourly counts per event name, reduced once from events"),
    Placement("data_health_properties", L, "hourly property counts per event name, reduced once from events"),
    Placement("data_health_progress", L, "one row: how far the data-health detector got"),
    Placement("data_health_alarms", L, "data-health alarms per event name"),
    Placement("schema_migrations", L, "which migrations ran: migrations are DDL, run on the coordinator"),
    # Temporary tables of one session, joined with distributed tables by the code.
    Placement("staging_events", L, "the group commit's track events, moved into events", temporary=True),
    Placement("staging_exposures", L, "the group commit's exposures, moved into exposures", temporary=True),
    Placement("results_touched", L, "the units a roll-up catch-up recomputes", temporary=True),
)

BY_TABLE: dict[str, Placement] = {p.table: p for p in PLACEMENTS}


@dataclass(frozen=True, slots=True)
class Gap:
    """Something in the schema or the code that breaks the layout today, named so that the test allows
    exactly it and fails once it is gone (then the entry goes too)."""

    name: str
    table: str
    what: str
    """What breaks, why it was left and what fixing it takes."""
    statement: str = ""
    """A query gap: a piece of the SQL that picks out the statements it allows (schema gaps: empty, and
    `name` is the constraint's)."""
    module: str = ""
    """A query gap: where the statement is assembled."""


KNOWN_GAPS: tuple[Gap, ...] = (
    Gap(
        "events_pkey",
        "events",
        "The primary key `(event_id, occurred_at)` does not include `unit`, so Citus refuses to distribute "
        "`events` by unit. Widening it to `(event_id, occurred_at, unit)` changes deduplication (a retry "
        "with the same id and time but another unit would be stored twice) and needs a migration that "
        "rebuilds every partition's index; it is left for the migration to Citus.",
    ),
    Gap(
        "ratio_segments_join",
        "results_unit_values",
        "A ratio metric broken down by segment (`?segment=`) joins the segmented units to the full join of its "
        "numerator's and denominator's roll-ups on `u.unit = coalesce(a.unit, b.unit)`: an expression, not "
        "the distribution column, so Citus cannot prove the join co-located. Citus can still run it by "
        "materialising the CTEs (their rows pass through the coordinator), which is untested; a co-located "
        "form (joining `units` to `a` and to `b` separately before the full join) is not proven equivalent "
        "yet, so the query is left as it is.",
        statement="JOIN units u ON u.unit = coalesce(a.unit, b.unit)",
        module="flagd/results/sql/reduce.py",
    ),
)
GAP_NAMES = frozenset(g.name for g in KNOWN_GAPS)


def placement(table: str) -> Placement | None:
    return BY_TABLE.get(table)


def distribution_column(table: str) -> str | None:
    """The distribution column of a distributed table; None for any other table (or an unknown one)."""
    found = BY_TABLE.get(table)
    return found.column if found is not None and found.kind is Kind.DISTRIBUTED else None


def citus_statements() -> list[str]:
    """The statements that lay the migrated schema out on Citus, in an order Citus accepts: reference
    tables first (in the order of the foreign keys between them), then the colocation group's first
    table, then the tables colocated with it."""
    references = [f"SELECT create_reference_table('{p.table}');" for p in PLACEMENTS if p.kind is R]
    distributed = [
        f"SELECT create_distributed_table('{p.table}', '{p.column}'"
        + (f", colocate_with => '{p.colocate_with}'" if p.colocate_with else "")
        + ");"
        for p in PLACEMENTS
        if p.kind is D
    ]
    return references + distributed


def markdown() -> str:
    """The generated part of docs/citus.md: the tables, the statements, the known gaps."""

    def cell(p: Placement) -> str:
        extra = " (partitioned: its partitions follow it)" if p.partitioned else ""
        extra += " (temporary, per session)" if p.temporary else ""
        return f"{p.reason}{extra}"

    sections = []
    for kind, title in ((D, "Distributed"), (R, "Reference"), (L, "Local")):
        rows = [p for p in PLACEMENTS if p.kind is kind]
        if kind is D:
            lines = [
                f"| `{p.table}` | `{p.column}` | {f'`{p.colocate_with}`' if p.colocate_with else '(first)'} "
                f"| {cell(p)} |"
                for p in rows
            ]
            head = "| table | distribution column | colocated with | why |\n|---|---|---|---|"
        else:
            lines = [f"| `{p.table}` | {cell(p)} |" for p in rows]
            head = "| table | why |\n|---|---|"
        sections.append(f"### {title} ({len(rows)})\n\n{head}\n" + "\n".join(lines))
    gaps = (
        "\n".join(
            f"- **{g.name}** (`{g.table}`{f', a query of {g.module}' if g.module else ''}): {g.what}"
            for g in KNOWN_GAPS
        )
        or "None."
    )
    statements = "\n".join(citus_statements())
    return (
        "\n\n".join(sections)
        + f"\n\n### The statements\n\n```sql\n{statements}\n```\n\n### Known gaps\n\n{gaps}"
    )
