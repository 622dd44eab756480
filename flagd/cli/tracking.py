"""`flagd events plan show | schema`, and the check `flagd events tail --check` adds to each event.

`show` prints the plan the database holds and the violations counted per day; `schema` what really
arrives per event name and how it differs from the plan. The plan is written with `flagd apply` (the
`events:` section of a flags file).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg

from flagd.cli.common import database_options, whole_number, with_connection
from flagd.config.repository import ConfigRepository
from flagd.settings import Settings
from flagd.text import escape, escape_json
from flagd.tracking.check import CompiledPlan, UnplannedMode
from flagd.tracking.drift import differences
from flagd.tracking.plan import read_plan
from flagd.tracking.repository import TrackingRepository
from flagd.tracking.tail import TailCheck
from flagd.tracking.wire import observed_json, plan_json, violations_json


def register(actions: Any) -> None:
    plan = actions.add_parser(
        "plan",
        help="the tracking plan: what it holds, what it counted, what really arrives",
        description="Read the tracking plan (written with `flagd apply`, the events: section), the violations "
        "counted per day, and the observed schema with its differences from the plan.",
    )
    views = plan.add_subparsers(title="views", metavar="VIEW", required=True)
    show = views.add_parser("show", help="the plan and its violations per day")
    show.add_argument(
        "--days", type=whole_number(1, 92), default=7, metavar="N", help="days back (default 7)"
    )
    show.add_argument("--json", action="store_true", help="as GET /v1/admin/events/plan answers")
    database_options(show)
    show.set_defaults(command=show_plan)
    schema = views.add_parser("schema", help="what really arrives, and its differences from the plan")
    schema.add_argument("--event", help="only this event name")
    schema.add_argument("--json", action="store_true", help="as GET /v1/admin/events/schema answers")
    database_options(schema)
    schema.set_defaults(command=show_schema)


def _print_json(body: Any) -> None:
    for text in json.dumps(body, indent=2, ensure_ascii=False, default=str).splitlines():
        print(escape_json(text))


def show_plan(settings: Settings, args: argparse.Namespace) -> int:
    since = datetime.now(UTC).date() - timedelta(days=args.days - 1)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        stored = await ConfigRepository(conn).load()
        body = plan_json(read_plan(stored.document(), []), settings.events_unplanned)
        counts = await TrackingRepository(conn).violations(since, 10_000)
        body.update(configVersion=stored.version, since=since.isoformat(), violations=violations_json(counts))
        return body

    body = with_connection(settings, work)
    if args.json:
        _print_json(body)
        return 0
    if not body["exists"]:
        print("no tracking plan: events are not checked (add an events: section to the flags file)")
    else:
        print(
            f"tracking plan at config version {body['configVersion']}: naming {body['naming']}, "
            f"default mode {body['mode']}, unplanned events: {body['unplanned']}"
        )
        for event in body["events"]:
            props = ", ".join(
                f"{p['name']}{'*' if p['required'] else ''}:{p['type']}" for p in event["properties"]
            )
            print(f"  {escape(event['name'])} [{event['mode']}] value {event['value']}  {escape(props)}")
    if body["violations"]:
        print(f"violations since {body['since']}:")
        for row in body["violations"]:
            print(f"  {row['day']}  {escape(row['event'])}  {row['code']}  {row['mode']}  {row['count']}")
    return 0


def show_schema(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        stored = await ConfigRepository(conn).load()
        observed = await TrackingRepository(conn).observed(args.event, 1_000)
        plan = read_plan(stored.document(), [])
        return {
            "events": observed_json(observed),
            "differences": [d.to_json() for d in differences(plan, observed)],
        }

    body = with_connection(settings, work)
    if args.json:
        _print_json(body)
        return 0
    for event in body["events"]:
        print(f"{escape(event['name'])}  ({event['sampledEvents']} sampled, last {event['lastSeen']})")
        for prop in event["properties"]:
            types = ", ".join(f"{k} {v}" for k, v in prop["types"].items())
            examples = escape(", ".join(json.dumps(e, ensure_ascii=False) for e in prop["examples"]))
            print(
                f"  {escape(prop['name'])}: {types}; present {prop['sharePresent']:.0%}, null "
                f"{prop['shareNull']:.0%}; e.g. {examples}"
            )
    if body["differences"]:
        print("differences from the plan:")
        for difference in body["differences"]:
            print(f"  {difference['kind']}: {escape(difference['message'])}")
    return 0


async def load_tail_check(conn: asyncpg.Connection, settings: Settings) -> TailCheck:
    """The check `tail --check` adds, against the plan the database holds now."""
    stored = await ConfigRepository(conn).load()
    plan = CompiledPlan.compile(read_plan(stored.document(), []))
    return TailCheck(plan, cast(UnplannedMode, settings.events_unplanned))
