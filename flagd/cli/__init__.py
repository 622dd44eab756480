"""The `flagd` command line.

    flagd serve | migrate | keys create|list|revoke | apply FILE | export

Options given on the command line override the environment (see README.md,
"Configuration"). Errors are printed as one sentence on stderr (with every located
problem, for invalid flag sets) and exit with status 1; usage mistakes exit with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from flagd.cli import flagset, keys, migrate, serve
from flagd.cli.common import Command, CommandError
from flagd.errors import FlagdError
from flagd.log import configure_logging
from flagd.settings import Settings, SettingsError
from flagd.storage.embedded import EmbeddedPostgresError
from flagd.storage.migrations import MigrationError

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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: Command = args.command
    try:
        for option, variable in _OVERRIDES.items():
            value = getattr(args, option, None)
            if value is not None:
                # Set in the environment, not only in Settings: uvicorn workers read it from there.
                os.environ[variable] = str(value)
        settings = Settings.from_env()
        configure_logging(settings)
        return command(settings, args)
    except (SettingsError, CommandError, EmbeddedPostgresError, MigrationError) as exc:
        print(f"flagd: error: {exc}", file=sys.stderr)
        return 1
    except FlagdError as exc:
        print(f"flagd: error: {exc.message}", file=sys.stderr)
        for detail in exc.details or []:
            print(f"  {detail.get('path') or '(document)'}: {detail.get('message')}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagd",
        description="Experimentation and feature-flag server.",
        epilog="Without DATABASE_URL, flagd uses an embedded PostgreSQL in FLAGD_DATA_DIR (default ./.flagd).",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    serve.register(commands)
    migrate.register(commands)
    keys.register(commands)
    flagset.register(commands)
    return parser
