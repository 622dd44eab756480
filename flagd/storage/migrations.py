"""Numbered SQL migrations, applied in order under a PostgreSQL advisory lock.

Files are named `NNNN_description.sql` and numbered 1, 2, 3, ... without gaps. Each is
applied in its own transaction and recorded with a checksum; a file that changes after
it was applied, or a database newer than this server, stops the migration with a
message that says what to do. Two servers starting together serialise on the lock, so
each migration runs exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from flagd.storage.types import Connection

logger = logging.getLogger(__name__)

# Any fixed 64-bit number works; this one is "flagd-mg" in ASCII so it is easy to spot in pg_locks.
MIGRATION_LOCK_KEY = 0x666C6167642D6D67
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and the database disagree in a way only an operator can settle."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int

    @property
    def up_to_date(self) -> bool:
        return self.current == self.latest


def load_migrations(directory: Traversable | None = None) -> tuple[Migration, ...]:
    folder = directory if directory is not None else resources.files("flagd.storage") / "migrations"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} must be named NNNN_lowercase_words.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"two migration files share number {version:04d}: {entry.name!r}")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    ordered = tuple(found[v] for v in sorted(found))
    for expected, migration in enumerate(ordered, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration {expected:04d} is missing: migrations must be numbered without gaps"
            )
    return ordered


async def apply_migrations(conn: Connection, migrations: tuple[Migration, ...]) -> list[Migration]:
    """Apply every pending migration; returns those applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_LEDGER)
        applied = await _applied(conn)
        _check_compatible(applied, migrations)
        newly_applied = []
        for migration in migrations:
            if migration.version in applied:
                continue
            logger.info("applying migration %s", migration.label)
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            newly_applied.append(migration)
        return newly_applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def schema_status(conn: Connection, migrations: tuple[Migration, ...]) -> SchemaStatus:
    latest = migrations[-1].version if migrations else 0
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations") if exists else 0
    return SchemaStatus(current=current, latest=latest)


async def _applied(conn: Connection) -> dict[int, str]:
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    return {row["version"]: row["checksum"] for row in rows}


def _check_compatible(applied: dict[int, str], migrations: tuple[Migration, ...]) -> None:
    known = {m.version: m for m in migrations}
    newer = sorted(v for v in applied if v not in known)
    if newer:
        raise MigrationError(
            f"the database has schema version {newer[-1]}, newer than this flagd knows "
            f"({len(migrations)}); upgrade flagd, or point DATABASE_URL at another database"
        )
    for version, checksum in applied.items():
        if known[version].checksum != checksum:
            raise MigrationError(
                f"migration {known[version].label} was changed after it was applied to this database; "
                "restore the original file and add a new migration for the change"
            )
