"""The `flagd` command line: `flagd serve`, `flagd migrate`.

Options given on the command line override the environment (see README.md,
"Configuration"). Errors are printed as one sentence on stderr with exit status 1;
usage mistakes exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import uvicorn

from flagd.errors import FlagdError
from flagd.log import configure_logging, logging_config
from flagd.settings import Settings, SettingsError
from flagd.storage.embedded import EmbeddedPostgres, EmbeddedPostgresError
from flagd.storage.migrations import MigrationError, apply_migrations, load_migrations, schema_status
from flagd.storage.pool import connect

logger = logging.getLogger("flagd.cli")

# Command-line options and the environment variables they override.
_OVERRIDES = {
    "database_url": "DATABASE_URL",
    "data_dir": "FLAGD_DATA_DIR",
    "host": "FLAGD_HOST",
    "port": "FLAGD_PORT",
    "workers": "FLAGD_WORKERS",
    "log_level": "FLAGD_LOG_LEVEL",
    "log_format": "FLAGD_LOG_FORMAT",
}


class CommandError(RuntimeError):
    """A command failed for a reason the user can act on; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[Settings, argparse.Namespace], int] = args.command
    try:
        for option, variable in _OVERRIDES.items():
            value = getattr(args, option, None)
            if value is not None:
                # Set in the environment, not only in Settings: uvicorn workers read it from there.
                os.environ[variable] = str(value)
        settings = Settings.from_env()
        configure_logging(settings)
        return command(settings, args)
    except (SettingsError, CommandError, EmbeddedPostgresError, MigrationError, FlagdError) as exc:
        print(f"flagd: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagd",
        description="Experimentation and feature-flag server.",
        epilog="Without DATABASE_URL, flagd runs an embedded PostgreSQL in FLAGD_DATA_DIR (default ./.flagd).",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server", description="Run the HTTP server.")
    _database_options(serve)
    serve.add_argument("--host", help="address to listen on (FLAGD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (FLAGD_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (FLAGD_WORKERS, default 1)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"])
    serve.add_argument("--log-format", choices=["text", "json"])
    serve.set_defaults(command=_serve)

    migrate = commands.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending database migrations (the server also applies them at start).",
    )
    _database_options(migrate)
    migrate.add_argument(
        "--check",
        action="store_true",
        help="only report the schema version; exit 1 if migrations are pending",
    )
    migrate.set_defaults(command=_migrate)
    return parser


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (DATABASE_URL); omit for embedded PostgreSQL")
    parser.add_argument("--data-dir", help="directory of the embedded PostgreSQL (FLAGD_DATA_DIR)")


@contextmanager
def _database(settings: Settings) -> Iterator[Settings]:
    """Settings with a database URL: the configured one, or an embedded cluster's for the block."""
    if settings.database_url is not None:
        yield settings
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        yield settings.with_database(url)
    finally:
        embedded.stop()


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # embedded cluster below be stopped cleanly instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with _database(settings) as settings:
        if settings.migrate_on_start:
            asyncio.run(_apply(settings))
        # Workers build their app from the environment: hand them the URL, and tell them the
        # migrations are done so they do not queue on the migration lock.
        os.environ["DATABASE_URL"] = settings.database_url or ""
        os.environ["FLAGD_MIGRATE_ON_START"] = "false"
        logger.info(
            "flagd listening on http://%s:%d with %d worker(s)",
            settings.host,
            settings.port,
            settings.workers,
        )
        uvicorn.run(
            "flagd.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http="httptools",
            log_config=logging_config(settings),
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    return 0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings) as settings:
        if args.check:
            return asyncio.run(_check(settings))
        asyncio.run(_apply(settings))
    return 0


async def _apply(settings: Settings) -> None:
    migrations = load_migrations()
    conn = await connect(settings)
    try:
        applied = await apply_migrations(conn, migrations)
        status = await schema_status(conn, migrations)
    finally:
        await conn.close()
    if applied:
        names = ", ".join(m.label for m in applied)
        logger.info(
            "applied %d migration(s): %s; schema is at version %d", len(applied), names, status.current
        )
    else:
        logger.info("schema is up to date at version %d", status.current)


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


if __name__ == "__main__":
    raise SystemExit(main())
