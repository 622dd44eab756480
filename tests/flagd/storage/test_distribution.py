"""The Citus layout (flagd.storage.distribution) holds for the migrated schema and for the SQL the code runs.

The schema is read from pg_catalog of a migrated database (with the event partitions a server makes); the
SQL from the string constants of the flagd package (tests/flagd/storage/layout.py finds them) and, for the
results queries assembled from templates, from the statements a results scenario really sends. A new table
without a placement, a unique key without the distribution column, a foreign key into a distributed table
or a join that is not co-located fails here, naming it. Strings that cannot be checked are listed in
UNCHECKED with the reason; known breaks of the layout are listed in flagd.storage.distribution.KNOWN_GAPS.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asyncpg.connection import LoggedQuery
from sqlglot.errors import SqlglotError

from flagd.results.analysis import Options
from flagd.results.journey import Breakdown, JourneyQuery
from flagd.results.service import ResultsService
from flagd.results.sql.rollup import RollupPolicy
from flagd.storage.distribution import BY_TABLE, GAP_NAMES, KNOWN_GAPS, PLACEMENTS, Kind, Placement
from tests.flagd.results.test_results_recompute import post_all
from tests.flagd.results.test_rollup import catalog_of, exposure, track
from tests.flagd.storage.layout import (
    ForeignKey,
    SqlString,
    UniqueKey,
    foreign_key_problems,
    is_query,
    join_problems,
    key_problems,
    parsed,
    sql_in_code,
)
from tests.support import backdate_phase

ROOT = Path(__file__).resolve().parents[3]
EXCLUDED = {
    # It writes the Citus statements (create_distributed_table ...), not queries of the application.
    "flagd/storage/distribution.py",
}
TEMPLATE = "a template assembled by its module's functions: checked as rendered, in the results scenario"
UNCHECKED: dict[tuple[str, str], str] = {
    # (module, a piece of the string): why it is not checked here.
    (
        "flagd/notify/queue.py",
        "CROSS JOIN LATERAL",
    ): "sqlglot's scopes refuse its alias d used in two scopes; "
    "it reads only local tables (webhooks, webhook_deliveries)",
    ("flagd/results/sql/funnel.py", "first AS ("): TEMPLATE,
    ("flagd/results/sql/funnel.py", "(SELECT count(DISTINCT segment) FROM first)"): TEMPLATE,
    ("flagd/results/sql/quantile.py", "units AS ("): TEMPLATE,
    ("flagd/results/sql/delta.py", "WITH changed AS MATERIALIZED"): TEMPLATE,
    ("flagd/results/sql/delta.py", "coalesce(a.post_count, 0) AS r"): TEMPLATE,
    ("flagd/results/sql/quantile.py", "unit_values AS ("): TEMPLATE,
    ("flagd/results/sql/quantile.py", "percentile_disc(hole_2) WITHIN GROUP"): TEMPLATE,
    ("flagd/results/sql/quantile.py", "q AS (SELECT * FROM unnest("): TEMPLATE,
    ("flagd/results/sql/quantile.py", "ranks AS (SELECT * FROM unnest("): TEMPLATE,
    ("flagd/results/sql/reduce.py", "FROM (hole_3) r"): TEMPLATE,
    ("flagd/results/sql/reduce.py", "cap AS ("): TEMPLATE,
    ("flagd/results/sql/reduce.py", "a AS (hole_2),"): TEMPLATE,
    ("flagd/results/sql/reduce.py", "a AS (SELECT * FROM results_unit_values"): TEMPLATE,
    ("flagd/results/sql/reduce.py", "exposed AS ("): TEMPLATE,
    ("flagd/results/sql/reduce.py", "count(*) AS n FROM units GROUP BY 1, 2"): TEMPLATE,
    ("flagd/results/sql/retention.py", "count(*) FILTER (WHERE u.exposed_at <= $5) AS n"): TEMPLATE,
    ("flagd/results/sql/rollup.py", "FROM exposures u hole_2"): TEMPLATE,
    ("flagd/results/sql/rollup.py", "WITH base AS ("): TEMPLATE,
}


# -- the schema -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relation:
    name: str
    parent: str | None
    """The partitioned table it is a partition of."""


async def relations(conn: asyncpg.Connection) -> list[Relation]:
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, p.relname AS parent
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
        LEFT JOIN pg_class p ON p.oid = i.inhparent
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        """
    )
    return [Relation(r["name"], r["parent"]) for r in rows]


def placed(relation: Relation) -> Placement | None:
    """A partition follows its parent."""
    return BY_TABLE.get(relation.parent or relation.name)


def unplaced(found: list[Relation]) -> list[str]:
    return [
        f"table {r.name} has no placement: add it to flagd.storage.distribution.PLACEMENTS "
        "(distributed with its unit column, reference or local, with the reason)"
        for r in found
        if placed(r) is None
    ]


async def unique_keys(conn: asyncpg.Connection) -> list[UniqueKey]:
    """Primary keys, unique constraints and unique indexes, partitions' copies of their parent's left out;
    a partition's key is given as its parent's table."""
    rows = await conn.fetch(
        """
        SELECT ic.relname AS name, coalesce(p.relname, c.relname) AS table,
               ARRAY(SELECT coalesce(a.attname::text, pg_get_indexdef(x.indexrelid, k.n::int, true))
                     FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                     LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                     WHERE k.n <= x.indnkeyatts
                     ORDER BY k.n) AS columns
        FROM pg_index x
        JOIN pg_class ic ON ic.oid = x.indexrelid
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
        LEFT JOIN pg_class p ON p.oid = i.inhparent
        WHERE n.nspname = 'public' AND x.indisunique AND NOT ic.relispartition
        """
    )
    return [UniqueKey(r["table"], r["name"], tuple(r["columns"])) for r in rows]


async def foreign_keys(conn: asyncpg.Connection) -> list[ForeignKey]:
    rows = await conn.fetch(
        """
        SELECT k.conname AS name, c.relname AS table, r.relname AS referenced,
               ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.n) AS columns,
               ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.n) AS refs
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_class r ON r.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND k.contype = 'f' AND k.conparentid = 0
        """
    )
    return [
        ForeignKey(r["name"], r["table"], tuple(r["columns"]), r["referenced"], tuple(r["refs"]))
        for r in rows
    ]


_TEMP_TABLE = re.compile(r"CREATE TEMP TABLE IF NOT EXISTS (\w+) \(.*?\) ON COMMIT \w+ ROWS", re.S)


def temp_tables_in_code() -> dict[str, str]:
    """Each CREATE TEMP TABLE statement in the string constants of the code, by the table it creates."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "flagd").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update((m.group(1), m.group(0)) for m in _TEMP_TABLE.finditer(node.value))
    return found


async def schema_of(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every table's columns, the code's temporary tables created on this connection first."""
    for statement in temp_tables_in_code().values():
        await conn.execute(statement)
    rows = await conn.fetch(
        """
        SELECT c.relname AS table, array_agg(a.attname::text ORDER BY a.attnum) AS columns
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE (n.nspname = 'public' OR n.oid = pg_my_temp_schema()) AND c.relkind IN ('r', 'p')
        GROUP BY c.relname
        """
    )
    return {r["table"]: list(r["columns"]) for r in rows}


# -- the schema against the layout ----------------------------------------------------------------------


async def test_should_place_every_table_of_the_migrated_schema(conn: asyncpg.Connection) -> None:
    found = await relations(conn)
    assert any(r.parent == "events" for r in found), "the template database has event partitions"
    assert unplaced(found) == []


async def test_should_name_a_new_table_that_has_no_placement(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE TABLE sneaky (id bigint PRIMARY KEY)")
    problems = unplaced(await relations(conn))
    assert len(problems) == 1, problems
    assert problems[0].startswith("table sneaky has no placement"), problems


async def test_should_find_every_placed_table_in_the_schema_or_the_code(conn: asyncpg.Connection) -> None:
    tables = {r.name for r in await relations(conn)}
    temporary = set(temp_tables_in_code())
    missing = [p.table for p in PLACEMENTS if not p.temporary and p.table not in tables]
    assert missing == [], f"placed but not in the migrated schema: {missing}"
    assert {p.table for p in PLACEMENTS if p.temporary} == temporary
    assert all(p.kind is Kind.LOCAL for p in PLACEMENTS if p.temporary)
    assert len(BY_TABLE) == len(PLACEMENTS), "a table placed twice"


def test_should_give_each_distributed_table_a_column_and_a_group() -> None:
    distributed = [p for p in PLACEMENTS if p.kind is Kind.DISTRIBUTED]
    first = [p for p in distributed if p.colocate_with is None]
    assert len(first) == 1, "one colocation group: every unit-keyed table joins every other"
    for p in distributed:
        assert p.column, p.table
        assert p.colocate_with in (None, first[0].table), p.table
    assert all(
        p.column is None and p.colocate_with is None for p in PLACEMENTS if p.kind is not Kind.DISTRIBUTED
    )


async def test_should_give_colocated_distribution_columns_one_type(conn: asyncpg.Connection) -> None:
    types = {
        p.table: await conn.fetchval(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
            p.table,
            p.column,
        )
        for p in PLACEMENTS
        if p.kind is Kind.DISTRIBUTED
    }
    assert None not in types.values(), types
    assert len(set(types.values())) == 1, f"Citus colocates only equal column types: {types}"


async def test_should_keep_the_distribution_column_in_every_unique_key(conn: asyncpg.Connection) -> None:
    keys = await unique_keys(conn)
    assert any(k.table == "exposures" for k in keys)
    problems = key_problems([k for k in keys if k.name not in GAP_NAMES], BY_TABLE)
    assert problems == []
    gaps = {g.name for g in KNOWN_GAPS if not g.statement}
    still = {k.name for k in keys if k.name in gaps and key_problems([k], BY_TABLE)}
    assert still == gaps, f"known gaps that are fixed: remove {gaps - still} from KNOWN_GAPS"


async def test_should_have_no_foreign_key_into_a_distributed_table(conn: asyncpg.Connection) -> None:
    keys = await foreign_keys(conn)
    assert any(k.table == "web_sessions" for k in keys)
    assert foreign_key_problems(keys, BY_TABLE) == []


# -- the checks refuse what breaks the layout -----------------------------------------------------------


def test_should_refuse_a_unique_key_without_the_distribution_column() -> None:
    problems = key_problems([UniqueKey("exposures", "exposures_by_event", ("event_id",))], BY_TABLE)
    assert len(problems) == 1, problems
    assert "exposures_by_event" in problems[0]
    assert "'unit'" in problems[0]
    assert key_problems([UniqueKey("exposures", "ok", ("experiment", "phase", "unit"))], BY_TABLE) == []
    assert key_problems([UniqueKey("flags", "flags_pkey", ("key",))], BY_TABLE) == []


def test_should_refuse_a_foreign_key_citus_refuses() -> None:
    into = ForeignKey(
        "watch_unit", "experiment_watch", ("experiment", "unit"), "exposures", ("experiment", "unit")
    )
    between = ForeignKey(
        "values_exposure", "results_unit_values", ("experiment",), "exposures", ("experiment",)
    )
    along = ForeignKey("values_unit", "results_unit_values", ("unit",), "exposures", ("unit",))
    local = ForeignKey("keys_schedule", "api_keys", ("id",), "schedules", ("id",))
    assert len(foreign_key_problems([into, between, local], BY_TABLE)) == 3
    assert foreign_key_problems([along], BY_TABLE) == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM exposures u JOIN events e ON e.name = u.experiment",
        "SELECT count(*) FROM exposures u, events e WHERE e.occurred_at > u.exposed_at",
        "SELECT * FROM exposures u JOIN (SELECT unit, name FROM events) e ON e.name = u.variant",
        "WITH x AS (SELECT unit AS who FROM exposures) SELECT 1 FROM x JOIN results_unit_values r ON r.variant = x.who",
        "SELECT 1 FROM exposures u WHERE EXISTS (SELECT 1 FROM events e WHERE e.name = u.experiment)",
        "SELECT 1 FROM exposures u JOIN events e USING (event_id)",
    ],
)
def test_should_refuse_a_join_that_is_not_colocated(sql: str) -> None:
    problems = join_problems(sql, BY_TABLE)
    assert problems, sql
    assert "distribution column" in problems[0], problems


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM exposures u JOIN events e ON e.unit = u.unit AND e.name = $1",
        "SELECT count(*) FROM exposures u, events e WHERE u.experiment = $1 AND e.unit = u.unit",
        "SELECT * FROM exposures u JOIN (SELECT unit, name FROM events) e ON e.unit = u.unit",
        "WITH x AS (SELECT unit AS who FROM exposures) SELECT 1 FROM x JOIN results_unit_values r ON r.unit = x.who",
        "SELECT 1 FROM exposures u WHERE EXISTS (SELECT 1 FROM events e WHERE e.unit = u.unit)",
        "SELECT 1 FROM exposures u JOIN events e USING (unit)",
        "SELECT 1 FROM exposures u JOIN experiments x ON x.key = u.experiment",
        "SELECT 1 FROM exposures u WHERE u.unit IN (SELECT unit FROM events WHERE name = $1)",
    ],
)
def test_should_accept_a_colocated_join(sql: str) -> None:
    assert join_problems(sql, BY_TABLE) == []


def test_should_refuse_a_table_without_a_placement_in_a_query() -> None:
    assert join_problems("SELECT * FROM sneaky", BY_TABLE) == [
        "table sneaky has no placement in flagd.storage.distribution"
    ]


# -- the SQL of the code --------------------------------------------------------------------------------


def _unchecked(sql: SqlString) -> str | None:
    return next(
        (why for (module, piece), why in UNCHECKED.items() if module == sql.module and piece in sql.text),
        None,
    )


async def test_should_colocate_every_join_of_the_sql_in_the_code(conn: asyncpg.Connection) -> None:
    schema = await schema_of(conn)
    strings = sql_in_code(ROOT, exclude=EXCLUDED)
    assert len(strings) > 150, "the scan finds the code's SQL"
    problems: list[str] = []
    unparsed: list[str] = []
    used: set[tuple[str, str]] = set()
    for sql in strings:
        why = _unchecked(sql)
        if why is not None:
            used.update(k for k in UNCHECKED if k[0] == sql.module and k[1] in sql.text)
            continue
        reading = parsed(sql)
        if reading is None:
            unparsed.append(f"{sql.module}:{sql.line}: {' '.join(sql.text.split())[:120]}")
            continue
        try:
            found = join_problems(reading.text, BY_TABLE, schema, complete=reading.complete)
        except SqlglotError as exc:
            unparsed.append(f"{sql.module}:{sql.line}: {exc}")
            continue
        problems += [f"{sql.module}:{sql.line}: {p}" for p in found]
    assert unparsed == [], (
        "strings that cannot be checked: list them in UNCHECKED with the reason:\n" + "\n".join(unparsed)
    )
    assert problems == [], "joins that are not co-located:\n" + "\n".join(problems)
    assert used == set(UNCHECKED), f"UNCHECKED entries that match nothing: {set(UNCHECKED) - used}"


# -- the results queries, as rendered -------------------------------------------------------------------

VARIANTS = ("control", "on")
SCENARIO: dict[str, Any] = {
    "flags": {
        "page": {"state": "ENABLED", "variants": {v: v for v in VARIANTS}, "defaultVariant": "control"}
    },
    "metrics": {
        "converted": {
            "type": "conversion",
            "event": "purchase",
            "direction": "increase",
            "window_seconds": 86400,
        },
        "revenue": {
            "type": "sum",
            "event": "purchase",
            "direction": "increase",
            "winsorisation": {"percentile": 90},
        },
        "visits": {"type": "count", "event": "visit", "direction": "increase"},
        "order-value": {"type": "mean", "event": "purchase", "direction": "increase"},
        "per-visit": {
            "type": "ratio",
            "numerator": "revenue",
            "denominator": "visits",
            "direction": "increase",
        },
        "nps": {"type": "nps", "event": "survey", "direction": "increase"},
        "eur": {
            "type": "sum",
            "event": "purchase",
            "where": {"currency": {"equals": "EUR"}},
            "direction": "increase",
        },
        "spend-p50": {
            "type": "quantile",
            "event": "purchase",
            "quantile": 0.5,
            "level": "unit",
            "direction": "increase",
        },
        "load-p90": {
            "type": "quantile",
            "event": "page_load",
            "quantile": 0.9,
            "level": "event",
            "direction": "decrease",
        },
        "retained": {
            "type": "retention",
            "events": ["visit", {"event": "purchase", "where": {"currency": {"equals": "EUR"}}}],
            "from_day": 1,
            "to_day": 7,
            "direction": "increase",
        },
        "checkout": {
            "type": "funnel",
            "direction": "increase",
            "window_seconds": 2 * 86400,
            "steps": [{"event": "visit"}, {"event": "purchase", "where": {"currency": {"equals": "EUR"}}}],
        },
    },
    "experiments": {
        "citus": {
            "flag": "page",
            "variants": {"control": 1, "on": 1},
            "expected_units": 1_000,
            "metrics": [
                {"metric": "converted", "role": "primary"},
                *(
                    {"metric": key, "role": "secondary"}
                    for key in (
                        "revenue",
                        "visits",
                        "order-value",
                        "per-visit",
                        "eur",
                        "spend-p50",
                        "load-p90",
                    )
                ),
                {"metric": "retained", "role": "secondary"},
                {"metric": "checkout", "role": "secondary"},
                {"metric": "nps", "role": "guardrail"},
            ],
        }
    },
}


def _events(now: datetime, first: int, units: int) -> list[dict[str, Any]]:
    events = []
    for i in range(first, first + units):
        unit, variant = f"u{i}", VARIANTS[i % 2]
        exposed = now - timedelta(days=2, hours=i % 7)
        seen = exposure(unit, variant, exposed, "citus")
        seen["attributes"] = {"country": ("de", "fr", "us")[i % 3]}
        events.append(seen)
        events.append(track(unit, "visit", exposed + timedelta(hours=1)))
        events.append(track(unit, "visit", exposed - timedelta(days=1)))
        events.append(track(unit, "page_load", exposed + timedelta(minutes=5), float(i % 11)))
        if i % 3:
            events.append(
                track(unit, "purchase", exposed + timedelta(hours=2), 10.0 + i, {"currency": "EUR"})
            )
        if i % 4 == 0:
            events.append(track(unit, "survey", exposed + timedelta(hours=3), float(i % 11)))
    return events


@pytest.fixture
async def logged(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, list[str]]]:
    """A connection of the server's kind whose every statement is recorded (asyncpg's query logger)."""
    statements: list[str] = []

    def record(query: LoggedQuery) -> None:
        if "pg_catalog.pg_type" not in query.query:  # asyncpg's own type introspection
            statements.append(query.query)

    connection = await asyncpg.connect(database_url)
    connection.add_query_logger(record)
    yield connection, statements
    await connection.close()


async def _read_everything(conn: asyncpg.Connection, now: datetime) -> None:
    catalog = await catalog_of(conn)
    service = ResultsService(conn, catalog, RollupPolicy(pre_seconds=14 * 86_400))
    await service.keep_up(now)
    await service.results("citus", None, Options(), now)
    await service.results("citus", None, Options(), now, segment="country")
    for metric in ("converted", "load-p90", "retained", "checkout"):
        await service.timeseries("citus", None, metric, Options(), now)
    await service.experiments(now)
    days = ((now - timedelta(days=3)).date(), now.date())
    for breakdown in (
        None,
        Breakdown("property", "currency"),
        Breakdown("exposure", "country", "citus"),
        Breakdown("variant", "", "citus"),
    ):
        await service.journey(JourneyQuery(("visit", "purchase"), *days, breakdown=breakdown), now)


async def test_should_colocate_every_join_the_results_send(
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    database_url: str,
    logged: tuple[asyncpg.Connection, list[str]],
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=SCENARIO)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/citus/start")).status_code == 200
    await backdate_phase(admin, database_url, "citus", 3)
    now = datetime.now(UTC)
    await post_all(sdk, _events(now, 0, 40))
    conn, statements = logged
    await _read_everything(conn, now)  # builds every roll-up
    await post_all(sdk, _events(now, 30, 20))  # known units and new ones: the catch-ups recompute them
    later = datetime.now(UTC)
    await _read_everything(conn, later)

    schema = await schema_of(conn)
    distinct = [s for s in dict.fromkeys(statements) if is_query(s)]
    assert any("INSERT INTO results_unit_values" in s for s in distinct), "the roll-ups were built"
    assert any("results_touched" in s and "ON CONFLICT" in s for s in distinct), "and caught up"
    query_gaps = [g for g in KNOWN_GAPS if g.statement]
    problems, unparsed, hit = [], [], set()
    for sql in distinct:
        try:
            found = join_problems(sql, BY_TABLE, schema)
        except SqlglotError as exc:
            unparsed.append(f"{exc}: {' '.join(sql.split())[:160]}")
            continue
        gap = next((g for g in query_gaps if g.statement in sql), None)
        if found and gap is not None:
            hit.add(gap.name)
        else:
            problems += found
    assert unparsed == [], "\n".join(unparsed)
    assert problems == [], "joins that are not co-located:\n" + "\n".join(problems)
    assert hit == {g.name for g in query_gaps}, "known query gaps no longer seen: remove them from KNOWN_GAPS"
    # The check bites on the real statements: the roll-up's join of exposures and events, its unit
    # equality turned into another column's, is refused.
    joins = [s for s in distinct if "JOIN events e" in s and "e.unit = u.unit" in s]
    assert joins, "the roll-ups joined exposures and events"
    for sql in joins:
        assert join_problems(sql.replace("e.unit = u.unit", "e.unit = u.variant"), BY_TABLE, schema), sql
