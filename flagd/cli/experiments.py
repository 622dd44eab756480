"""`flagd experiments list | start KEY | stop KEY | new-phase KEY [--file FILE] | launch KEY VARIANT`:
the lifecycle from a shell."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from flagd.cli.common import CommandError, cli_actor, database_options, with_connection
from flagd.cli.documents import read_document
from flagd.config.audit import Action
from flagd.config.experiment_lifecycle import ExperimentLifecycle
from flagd.config.repository import ConfigRepository
from flagd.settings import Settings
from flagd.text import escape

_ACTIONS: dict[str, tuple[Action, str]] = {
    "start": ("start", "start a draft or stopped experiment (a new phase, a new salt)"),
    "stop": ("stop", "stop a running experiment"),
    "new-phase": (
        "new_phase",
        "start the next phase of a running experiment (units are re-randomized), with --file its changed definition",
    ),
    "launch": ("launch", "stop the experiment and make VARIANT the flag's default for everyone"),
}


def register(commands: Any) -> None:
    group = commands.add_parser(
        "experiments",
        help="list experiments and move them through their lifecycle",
        description="List experiments, and start, stop, re-phase or launch one. Define them with `flagd apply`.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="experiments with their state and phase")
    database_options(listing)
    listing.set_defaults(command=list_experiments)
    for name, (action, text) in _ACTIONS.items():
        parser = actions.add_parser(name, help=text)
        parser.add_argument("key", help="the experiment's key")
        if action == "launch":
            parser.add_argument("variant", help="the variant everyone gets from now on")
        if action == "new_phase":
            parser.add_argument(
                "--file",
                metavar="FILE",
                help="a flags file (JSON or YAML, - for standard input) defining the experiment as it should "
                "be in the new phase; only that experiment is taken from it (apply the rest with `flagd apply`)",
            )
        parser.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
        database_options(parser)
        parser.set_defaults(command=transition, action=action)


def list_experiments(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[tuple[str, str, int, str]]:
        stored = await ConfigRepository(conn).load()
        rows: list[tuple[str, str, int, str]] = []
        for key, definition in stored.experiments.items():
            lifecycle = stored.lifecycles.get(key)
            flag = definition.get("flag") if isinstance(definition, dict) else None
            rows.append(
                (
                    key,
                    lifecycle.state if lifecycle else "draft",
                    lifecycle.phase if lifecycle else 0,
                    flag if isinstance(flag, str) else "-",  # an unreadable definition shows no Python value
                )
            )
        return rows

    rows = with_connection(settings, work)  # before the header: a failure prints only its error
    print(f"{'key':30} {'state':9} {'phase':>5}  flag")
    for key, state, phase, flag in rows:
        print(f"{escape(key):30} {escape(state):9} {phase:>5}  {escape(flag)}")
    return 0


def transition(settings: Settings, args: argparse.Namespace) -> int:
    source = getattr(args, "file", None)
    definition = _definition_in(source, args.key) if source is not None else None

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await ExperimentLifecycle(conn, cli_actor(args)).transition(
            args.key, args.action, getattr(args, "variant", None), definition=definition
        )

    result = with_connection(settings, work)
    changed = f", with its definition from {escape(source)}" if source is not None else ""
    print(
        f"experiment {escape(result['key'])} is {result['state']} (phase {result['phase']}){changed}; "
        f"config version is now {result['configVersion']}",
        file=sys.stderr,
    )
    return 0


def _definition_in(source: str, key: str) -> dict[str, Any]:
    """Experiment `key` as the flags file `source` defines it, read as `flagd apply` reads files."""
    document = read_document(source)
    name = "<stdin>" if source == "-" else source
    experiments = document.get("experiments") if isinstance(document, dict) else None
    definition = experiments.get(key) if isinstance(experiments, dict) else None
    if definition is None:
        raise CommandError(
            f'{name} does not define experiment "{key}"; give the flags file whose experiments: section '
            "defines it, as `flagd apply` would read it"
        )
    if not isinstance(definition, dict):
        raise CommandError(f"{name}: experiments.{key} must be a mapping of the experiment's fields")
    return definition
