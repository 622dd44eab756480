"""`flagd rollouts list | start KEY --file FILE | pause KEY | resume KEY | advance KEY | rollback KEY`:
guarded rollouts from a shell, each move one transaction, audited with --reason."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from flagd.cli.common import CommandError, cli_actor, database_options, with_connection
from flagd.cli.documents import read_document
from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.service import Move, RolloutService
from flagd.rollouts.serving import RolloutState
from flagd.settings import Settings
from flagd.text import escape

_MOVES: dict[str, tuple[Move, str]] = {
    "pause": ("pause", "pause a running rollout (the monitor leaves it at its stage)"),
    "resume": ("resume", "resume a paused or held rollout"),
    "advance": ("advance", "advance a rollout to its next stage now (to 100%: complete it)"),
    "rollback": ("rollback", "roll a rollout back: its units get the replaced variant at once"),
}


def register(commands: Any) -> None:
    group = commands.add_parser(
        "rollouts",
        help="start guarded rollouts and move them by hand",
        description="List rollouts, start one from a flags file's rollouts: section, pause, resume, advance "
        "or roll one back. The server's monitor advances, holds and rolls back running ones by itself.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="rollouts with their state, stage and share")
    database_options(listing)
    listing.set_defaults(command=list_rollouts)
    start = actions.add_parser("start", help="start rollout KEY as the flags file defines it")
    start.add_argument("key", help="the rollout's key")
    start.add_argument(
        "--file",
        metavar="FILE",
        required=True,
        help="a flags file (JSON or YAML, - for standard input) whose rollouts: section defines KEY",
    )
    start.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(start)
    start.set_defaults(command=start_rollout)
    for name, (move, text) in _MOVES.items():
        parser = actions.add_parser(name, help=text)
        parser.add_argument("key", help="the rollout's key")
        parser.add_argument("--reason", help="why (kept in the transition log and the audit log)")
        parser.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
        database_options(parser)
        parser.set_defaults(command=move_rollout, move=move)


def list_rollouts(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[RolloutState]:
        return await RolloutRepository(conn).all()

    rows = with_connection(settings, work)
    print(f"{'key':30} {'state':12} {'stage':>5} {'percent':>8}  flag")
    for row in rows:
        stage = f"{row.stage + 1}/{len(row.definition.get('stages') or ())}"
        flag = str(row.definition.get("flag", "-"))
        print(f"{escape(row.key):30} {row.state:12} {stage:>5} {row.share_bp / 100:>7g}%  {escape(flag)}")
    return 0


def start_rollout(settings: Settings, args: argparse.Namespace) -> int:
    definition = _definition_in(args.file, args.key)

    async def work(conn: asyncpg.Connection) -> tuple[RolloutState, int]:
        return await RolloutService(conn, cli_actor(args)).start(args.key, definition)

    row, version = with_connection(settings, work)
    _said(row, version)
    return 0


def move_rollout(settings: Settings, args: argparse.Namespace) -> int:
    reason = args.reason if args.reason is not None else f"{args.move} by hand"
    if not 1 <= len(reason) <= 500:
        raise CommandError("--reason must be 1 to 500 characters")

    async def work(conn: asyncpg.Connection) -> tuple[RolloutState, int] | None:
        return await RolloutService(conn, cli_actor(args)).move(args.key, args.move, reason=reason)

    moved = with_connection(settings, work)
    assert moved is not None, "a move by hand is made from the current version"
    _said(*moved)
    return 0


def _said(row: RolloutState, version: int) -> None:
    print(
        f"rollout {escape(row.key)} is {row.state.replace('_', ' ')} at {row.share_bp / 100:g}% "
        f"(stage {row.stage + 1}); config version is now {version}",
        file=sys.stderr,
    )


def _definition_in(source: str, key: str) -> dict[str, Any]:
    document = read_document(source)
    name = "<stdin>" if source == "-" else source
    rollouts = document.get("rollouts") if isinstance(document, dict) else None
    definition = rollouts.get(key) if isinstance(rollouts, dict) else None
    if definition is None:
        raise CommandError(f'{name} does not define rollout "{key}" in its rollouts: section')
    if not isinstance(definition, dict):
        raise CommandError(f"{name}: rollouts.{key} must be a mapping of the rollout's fields")
    return definition
