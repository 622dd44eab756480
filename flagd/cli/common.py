"""What the commands share: the database to use, the actor named in the audit log, running async code,
and the parsing of numeric options."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import math
import re
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import asyncpg

from flagd.settings import Settings
from flagd.storage.embedded import DataDirectoryBusy, EmbeddedPostgres
from flagd.storage.migrations import load_migrations, schema_status
from flagd.storage.pool import connect

logger = logging.getLogger("flagd.cli")

Command = Callable[[Settings, argparse.Namespace], int]
T = TypeVar("T")


class CommandError(RuntimeError):
    """A command failed for a reason the user can act on; printed without a traceback, as one line and
    the `excerpt` lines under it (already escaped: the quoted line of a file and a caret)."""

    def __init__(self, message: str, *, excerpt: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.excerpt = tuple(excerpt)


# ASCII digits only: int() and float() also read "١٢", "1_000", "nan" and "inf".
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)
_DECIMAL = re.compile(
    r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII
)


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number from `low` to `high`; anything else is a usage error (exit 2)."""

    def parse(text: str) -> int:
        value = int(text) if _INTEGER.fullmatch(text) else None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {text!r}")
        return value

    return parse


def seconds(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """An argparse `type`: a finite decimal number of seconds from `low` (or above it) to `high`."""

    def parse(text: str) -> float:
        value = float(text) if _DECIMAL.fullmatch(text) else math.nan
        if not (low < value if above_low else low <= value) or not value <= high:
            bound = f"more than {low:g}" if above_low else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"must be a number of seconds {bound} to {high:g}, got {text!r}")
        return value

    return parse


def database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (DATABASE_URL); omit for embedded PostgreSQL")
    parser.add_argument("--data-dir", help="directory of the embedded PostgreSQL (FLAGD_DATA_DIR)")


@contextmanager
def database(settings: Settings, *, exclusive: bool = False, create: bool = False) -> Iterator[Settings]:
    """Settings with a database URL: the configured one, or the embedded cluster's.

    Without `exclusive`, a cluster that a running `flagd serve` owns is used as it is,
    so commands work beside a running server. Only with `create` (`flagd serve`, `flagd migrate`)
    is a missing data directory created; otherwise the command is refused and nothing is written.
    """
    if settings.database_url is not None:
        yield settings
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        url = embedded.start(create=create)
    except DataDirectoryBusy:
        running = None if exclusive else embedded.running_url()
        if running is None:
            raise
        logger.info("using the embedded PostgreSQL of the flagd server running in %s", embedded.data_dir)
        yield settings.with_database(running)
        return
    try:
        yield settings.with_database(url)
    finally:
        embedded.stop()


def with_connection(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]], *, transaction: bool = True
) -> T:
    """Run `work` on one connection to the command's database, in a transaction unless told not to
    (long-running commands such as `flagd events tail` must not hold one open)."""
    with database(settings) as resolved:

        async def run() -> T:
            conn = await connect(resolved)
            try:
                await _require_schema(conn)
                if not transaction:
                    return await work(conn)
                async with conn.transaction():
                    return await work(conn)
            finally:
                await conn.close()

        return asyncio.run(run())


async def _require_schema(conn: asyncpg.Connection) -> None:
    """Refuse, in one sentence, a database that flagd has not set up (or set up by another version),
    instead of failing later on a missing table."""
    status = await schema_status(conn, load_migrations())
    if status.current == 0:
        raise CommandError(
            "the database has no flagd tables yet; run `flagd migrate` with the same --data-dir or "
            "--database-url first (or start `flagd serve`, which migrates)"
        )
    if status.current < status.latest:
        raise CommandError(
            f"the database's schema is at version {status.current}, older than this flagd's "
            f"({status.latest}); run `flagd migrate` first (or restart `flagd serve`, which migrates)"
        )
    if status.current > status.latest:
        raise CommandError(
            f"the database's schema is at version {status.current}, newer than this flagd knows "
            f"({status.latest}); upgrade flagd"
        )


def cli_actor(args: argparse.Namespace) -> str:
    explicit: str | None = getattr(args, "actor", None)
    if explicit:
        return explicit
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"
