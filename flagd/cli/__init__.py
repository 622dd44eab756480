"""The `flagd` command line.

    flagd serve | migrate | keys create|list|revoke | apply FILE | export
    flagd experiments list|start|stop|new-phase|launch
    flagd events tail | prune --before DATE

Options given on the command line override the environment (see README.md,
"Configuration"), and errors about them name the option as it was given. Errors are
printed as one sentence on stderr (with every located problem, for invalid flag sets)
and exit with status 1; usage mistakes exit with 2. Commands other than `serve` print
only warnings and errors unless asked for more with -v.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from flagd.cli import events, experiments, flagset, keys, migrate, serve
from flagd.cli.common import Command, CommandError
from flagd.errors import FlagdError
from flagd.log import configure_logging
from flagd.settings import Settings, SettingsError
from flagd.storage.embedded import EmbeddedPostgresError
from flagd.storage.migrations import MigrationError

# Command-line options (their argparse names) and the environment variables they override.
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
    given: dict[str, str] = {}
    try:
        for option, variable in _OVERRIDES.items():
            value = getattr(args, option, None)
            if value is not None:
                # Set in the environment, not only in Settings: uvicorn workers read it from there.
                os.environ[variable] = str(value)
                given[variable] = "--" + option.replace("_", "-")
        settings = Settings.from_env()
        quiet = command is not serve.run and not args.verbose
        configure_logging(replace(settings, log_level="warning") if quiet else settings)
        return command(settings, args)
    except SettingsError as exc:
        message = str(exc)
        for variable, option in given.items():
            message = message.replace(variable, option)  # name the option the user typed
        print(f"flagd: error: {message}", file=sys.stderr)
        return 1
    except (CommandError, EmbeddedPostgresError, MigrationError) as exc:
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
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print progress (INFO) lines from commands"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    serve.register(commands)
    migrate.register(commands)
    keys.register(commands)
    flagset.register(commands)
    experiments.register(commands)
    events.register(commands)
    return parser
