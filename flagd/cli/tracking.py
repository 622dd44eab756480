"""`flagd events plan show | schema`, and the check `flagd events tail --check` adds to each event.

`show` prints the plan the database holds and the violations counted per day; `schema` what really
arrives per event name and how it differs from the plan. The plan is written with `flagd apply` (the
`events:` section of a flags file).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import orjson

from flagd.cli.common import database_options, whole_number, with_connection
from flagd.config.repository import ConfigRepository
from flagd.ingest.repository import StoredEvent
from flagd.settings import Settings
from flagd.text import escape, escape_json
from flagd.tracking.check import CompiledPlan, UnplannedMode
from flagd.tracking.drift import differences
from flagd.tracking.plan import read_plan
from flagd.tracking.repository import TrackingRepository
from flagd.tracking.wire import observed_json, plan_json, violations_json

REPEAT_SECONDS = 1.0
"""The same event of the same unit again within this long is reported as fired more than once."""
MAX_REMEMBERED = 10_000
"""(unit, event) pairs `tail --check` remembers for repeats; past it, it starts afresh."""


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


@dataclass(slots=True)
class TailCheck:
    """What `tail --check` says of each event: whether it matches the plan, and whether it fired again."""

    plan: CompiledPlan
    unplanned: UnplannedMode
    last: dict[tuple[str, str], datetime] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: asyncpg.Connection, settings: Settings) -> TailCheck:
        stored = await ConfigRepository(conn).load()
        plan = CompiledPlan.compile(read_plan(stored.document(), []))
        return cls(plan, cast(UnplannedMode, settings.events_unplanned))

    def verdict(self, row: StoredEvent) -> dict[str, Any]:
        """{"matches", "violations", "repeatSeconds"} of a track event (exposures: only the repeat)."""
        violations: list[dict[str, str]] = []
        if row.kind == "track":
            properties = orjson.loads(row.data) if row.data else {}
            _, found = self.plan.check(row.name, row.value, properties, self.unplanned)
            violations = [{"code": v.code, "path": v.path, "message": v.message} for v in found]
        key = (row.unit, f"{row.kind}:{row.name}")
        previous = self.last.get(key)
        if len(self.last) >= MAX_REMEMBERED:
            self.last.clear()
        self.last[key] = row.at if previous is None else max(previous, row.at)
        gap = None if previous is None else abs((row.at - previous).total_seconds())
        return {
            "matches": not violations,
            "violations": violations,
            "repeatSeconds": gap if gap is not None and gap < REPEAT_SECONDS else None,
        }

    def annotate(self, row: StoredEvent, line: str, as_json: bool) -> str:
        verdict = self.verdict(row)
        if as_json:
            record = orjson.loads(line)
            record["check"] = verdict
            return escape_json(orjson.dumps(record).decode())
        notes = []
        if row.kind == "track":
            notes.append(
                "✓ matches the plan"
                if verdict["matches"]
                else "✗ "
                + "; ".join(f"{v['code']} {v['path']}: {v['message']}" for v in verdict["violations"])
            )
        if verdict["repeatSeconds"] is not None:
            notes.append(f"⚠ fired again {verdict['repeatSeconds']:.3f} s after the previous one")
        return line + ("\n    " + "  ".join(escape(n) for n in notes) if notes else "")
