"""`flagd schedules create ACTION TARGET --at TIME [--file FILE] | list [--status S] | cancel ID`:
scheduled changes from a shell, checked and recorded as the API does."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from flagd.cli.common import CommandError, cli_actor, database_options, whole_number, with_connection
from flagd.cli.documents import read_document
from flagd.config.service import read_document as read_flags
from flagd.schedules.model import ACTIONS, STATUSES, Schedule, read_request
from flagd.schedules.repository import ScheduleRepository
from flagd.schedules.service import ScheduleService
from flagd.settings import Settings
from flagd.text import escape


def register(commands: Any) -> None:
    group = commands.add_parser(
        "schedules",
        help="schedule changes of flags and experiments, list and cancel them",
        description="Enable, disable or replace a flag, or start or stop an experiment, at a time. A running "
        "server executes each schedule once, when it is due.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="schedule a change; prints the schedule's id")
    create.add_argument("action", choices=ACTIONS, help="what to do")
    create.add_argument("target", help="the key of the flag or experiment")
    create.add_argument(
        "--at", required=True, metavar="TIME", help="when, in RFC 3339 with a zone: 2026-12-24T18:00:00Z"
    )
    create.add_argument(
        "--file",
        metavar="FILE",
        help="update_flag: a flags file (JSON or YAML, - for standard input) defining the flag as it should be; "
        "only that flag is taken from it",
    )
    create.add_argument(
        "--allow-past", action="store_true", help="accept a time already past: the change runs at once"
    )
    create.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(create)
    create.set_defaults(command=create_schedule)

    listing = actions.add_parser("list", help="schedules, newest first, with their status")
    listing.add_argument("--status", choices=STATUSES, help="only schedules in this status")
    listing.add_argument("--limit", type=whole_number(1, 1000), default=100, help="at most this many (100)")
    database_options(listing)
    listing.set_defaults(command=list_schedules)

    cancel = actions.add_parser("cancel", help="cancel a pending schedule")
    cancel.add_argument("id", type=whole_number(1, 2**63 - 1), help="the schedule's id")
    cancel.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(cancel)
    cancel.set_defaults(command=cancel_schedule)


def create_schedule(settings: Settings, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"action": args.action, "target": args.target, "dueAt": args.at}
    if args.allow_past:
        body["allowPast"] = True
    if args.file is not None:
        if args.action != "update_flag":
            raise CommandError(f"only update_flag takes --file; {args.action} needs no definition")
        body["definition"] = _flag_in(args.file, args.target)

    async def work(conn: asyncpg.Connection) -> Schedule:
        wanted = read_request(body, await ScheduleRepository(conn).now())
        return await ScheduleService(conn, cli_actor(args)).create(wanted)

    schedule = with_connection(settings, work)
    print(schedule.id)
    print(
        f"schedule {schedule.id}: {schedule.action} {escape(schedule.target)} at {schedule.due_at.isoformat()}",
        file=sys.stderr,
    )
    return 0


def list_schedules(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[Schedule]:
        return await ScheduleRepository(conn).page(status=args.status, before_id=None, limit=args.limit)

    found = with_connection(settings, work)  # before the header: a failure prints only its error
    print(f"{'id':>6}  {'status':9} {'due':25}  {'action':16} target")
    for s in found:
        line = f"{s.id:>6}  {s.status:9} {s.due_at.isoformat():25}  {s.action:16} {escape(s.target)}"
        print(line + (f"  ({escape(s.error)})" if s.error else ""))
    return 0


def cancel_schedule(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> Schedule:
        return await ScheduleService(conn, cli_actor(args)).cancel(args.id)

    schedule = with_connection(settings, work)
    print(f"schedule {schedule.id} is cancelled", file=sys.stderr)
    return 0


def _flag_in(source: str, key: str) -> Any:
    """Flag `key` as the flags file `source` defines it, read as `flagd apply` reads files."""
    flags, _evaluators, _metadata = read_flags(read_document(source))
    if key not in flags:
        name = "<stdin>" if source == "-" else source
        raise CommandError(f'{name} does not define flag "{key}"; give the flags file that defines it')
    return flags[key]
