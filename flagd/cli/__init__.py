"""The `flagd` command line.

    flagd serve | migrate | keys create NAME|list|revoke | apply FILE [--dry-run] [--json] | export
    flagd experiments list|start|stop|new-phase [--file FILE]|launch
    flagd events tail | prune --before DATE
    flagd schedules create ACTION TARGET --at TIME [--file FILE] | list | cancel ID
    flagd webhooks create NAME URL --kind KIND...|list|delete WEBHOOK|deliveries WEBHOOK|test WEBHOOK
    flagd rollouts list|start KEY --file FILE|pause|resume|advance|rollback KEY [--reason TEXT]

Only `serve` and `migrate` create a data directory; every other command run where there is none
says so in one line and creates nothing.

Options given on the command line override the environment (see README.md,
"Configuration"), and errors about them name the option as it was given. Errors are
printed as one sentence on stderr (with every located problem, for invalid flag sets)
and exit with status 1; usage mistakes (an unknown option, a number out of its range)
are printed as `flagd: error: ...` after the usage and exit with 2. Commands other than
`serve` print only warnings and errors unless asked for more with -v. Whatever a command
prints of stored or sent text is escaped first (flagd.text), so no value can drive the
terminal.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn

import asyncpg

from flagd.cli.common import Command, CommandError
from flagd.errors import FlagdError
from flagd.log import configure_logging
from flagd.settings import Settings, SettingsError
from flagd.storage.embedded import EmbeddedPostgresError
from flagd.storage.migrations import MigrationError
from flagd.text import escape

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


# Each command and the module that registers it (in the order `flagd --help` lists them). Only the module of
# the command being run is imported, so a command starts without loading the others (the server's, the
# notifications' HTTP stack): about half a second less per command.
_COMMANDS = {
    "serve": "serve",
    "migrate": "migrate",
    "keys": "keys",
    "apply": "flagset",
    "export": "flagset",
    "experiments": "experiments",
    "schedules": "schedules",
    "events": "events",
    "webhooks": "webhooks",
    "rollouts": "rollouts",
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser(arguments).parse_args(arguments)
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
        quiet = args.command_name != "serve" and not args.verbose
        configure_logging(replace(settings, log_level="warning") if quiet else settings)
        return command(settings, args)
    except SettingsError as exc:
        message = str(exc)
        for variable, option in given.items():
            message = message.replace(variable, option)  # name the option the user typed
        print(f"flagd: error: {escape(message, backslashes=False)}", file=sys.stderr)
        return 1
    except (CommandError, EmbeddedPostgresError, MigrationError) as exc:
        print(f"flagd: error: {escape(str(exc), backslashes=False)}", file=sys.stderr)
        for line in exc.excerpt if isinstance(exc, CommandError) else ():
            print(line, file=sys.stderr)
        return 1
    except FlagdError as exc:
        for line in problem_lines(exc):
            print(line, file=sys.stderr)
        return 1
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # A database that went away mid-command, or refused a statement: one line, never a traceback.
        print(f"flagd: error: the database failed the command: {escape(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"flagd: error: {escape(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 1


def problem_lines(exc: FlagdError) -> list[str]:
    """The error as `flagd: error: ...` and one indented line per located problem, each problem once
    (the message of an API error also quotes its first problem, for clients that show only the message)."""
    message = exc.message.removesuffix(" (and more in details)")
    problems = [
        (str(d.get("path") or ""), str(d.get("message") or "")) for d in exc.details or [] if d.get("message")
    ]
    if not problems:
        return [f"flagd: error: {escape(message, backslashes=False)}"]
    first = f"{problems[0][0]}: {problems[0][1]}" if problems[0][0] else problems[0][1]
    if len(problems) == 1 and first in message:
        return [f"flagd: error: {escape(message, backslashes=False)}"]
    head, quoted, tail = message.partition(f": {first}")
    lines = [f"flagd: error: {escape(head + tail if quoted else message, backslashes=False)}:"]
    lines += [
        f"  {escape(where or '(document)')}: {escape(what, backslashes=False)}" for where, what in problems
    ]
    return lines


class _Parser(argparse.ArgumentParser):
    """Usage mistakes of every command and action said as `flagd: error: ...`, like every other error
    (the subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"flagd: error: {escape(message, backslashes=False)}\n")


def _modules(argv: Sequence[str]) -> list[str]:
    """The modules to register: the named command's alone, or every one (for help and usage errors)."""
    before: set[str] = set()
    for argument in argv:
        if not argument.startswith("-"):
            if argument in _COMMANDS and not before & {"-h", "--help"}:
                return [_COMMANDS[argument]]
            break
        before.add(argument)
    return list(dict.fromkeys(_COMMANDS.values()))


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flagd",
        description="Experimentation and feature-flag server.",
        epilog="Without DATABASE_URL, flagd uses an embedded PostgreSQL in FLAGD_DATA_DIR (default ./.flagd).",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print progress (INFO) lines from commands"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in _modules(argv):
        importlib.import_module(f"flagd.cli.{module}").register(commands)
    for name, subparser in commands.choices.items():
        subparser.set_defaults(command_name=name)
    return parser
