"""`flagd experiments list | start KEY | stop KEY | new-phase KEY | launch KEY VARIANT`: the lifecycle from a shell."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from flagd.cli.common import cli_actor, database_options, with_connection
from flagd.config.audit import Action
from flagd.config.experiment_lifecycle import ExperimentLifecycle
from flagd.config.repository import ConfigRepository
from flagd.settings import Settings
from flagd.text import escape

_ACTIONS: dict[str, tuple[Action, str]] = {
    "start": ("start", "start a draft or stopped experiment (a new phase, a new salt)"),
    "stop": ("stop", "stop a running experiment"),
    "new-phase": ("new_phase", "start the next phase of a running experiment (units are re-randomized)"),
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
        parser.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
        database_options(parser)
        parser.set_defaults(command=transition, action=action)


def list_experiments(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[tuple[str, str, int, str]]:
        stored = await ConfigRepository(conn).load()
        rows: list[tuple[str, str, int, str]] = []
        for key, definition in stored.experiments.items():
            lifecycle = stored.lifecycles.get(key)
            flag = definition.get("flag", "") if isinstance(definition, dict) else ""
            rows.append(
                (key, lifecycle.state if lifecycle else "draft", lifecycle.phase if lifecycle else 0, flag)
            )
        return rows

    print(f"{'key':30} {'state':9} {'phase':>5}  flag")
    for key, state, phase, flag in with_connection(settings, work):
        print(f"{escape(key):30} {escape(state):9} {phase:>5}  {escape(str(flag))}")
    return 0


def transition(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await ExperimentLifecycle(conn, cli_actor(args)).transition(
            args.key, args.action, getattr(args, "variant", None)
        )

    result = with_connection(settings, work)
    print(
        f"experiment {escape(result['key'])} is {result['state']} (phase {result['phase']}); "
        f"config version is now {result['configVersion']}",
        file=sys.stderr,
    )
    return 0
