"""`flagd migrate [--check]`."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from flagd.cli.common import database, database_options
from flagd.cli.serve import apply_pending
from flagd.settings import Settings
from flagd.storage.migrations import load_migrations, schema_status
from flagd.storage.pool import connect


def register(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending database migrations (the server also applies them at start).",
    )
    database_options(migrate)
    migrate.add_argument(
        "--check",
        action="store_true",
        help="only report the schema version; exit 1 if migrations are pending",
    )
    migrate.set_defaults(command=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    # Applying migrations sets a database up, so it may create the data directory; --check only reads.
    with database(settings, create=not args.check) as settings:
        if args.check:
            return asyncio.run(_check(settings))
        print(asyncio.run(apply_pending(settings)))
    return 0


async def _check(settings: Settings) -> int:
    conn = await connect(settings)
    try:
        status = await schema_status(conn, load_migrations())
    finally:
        await conn.close()
    if status.up_to_date:
        print(f"schema is up to date at version {status.current}")
        return 0
    if status.current > status.latest:
        print(
            f"schema is at version {status.current}, newer than this flagd knows ({status.latest}); upgrade flagd"
        )
        return 1
    print(f"schema is at version {status.current}; {status.latest - status.current} migration(s) pending")
    return 1
