"""`flagd events tail | prune --before DATE`: watch events arrive, and drop old ones by whole partitions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from flagd.cli import tracking
from flagd.cli.common import CommandError, database_options, seconds, whole_number, with_connection
from flagd.ingest.partitions import analysed_before, prune
from flagd.ingest.repository import EventRepository, StoredEvent
from flagd.settings import Settings
from flagd.text import escape, escape_json

POLL_SECONDS = 0.5
# An event's received_at is set when its request arrives, and it becomes visible when its group commits,
# normally milliseconds later. Tail shows rows received at least SETTLE ago, in (received_at, id) order,
# so it shows each once; a row whose commit took longer than SETTLE (a queue under heavy load) can be
# skipped. Tail is for watching an app send events; the tables and GET /v1/admin/events/stats are complete.
SETTLE = timedelta(seconds=2)
PAGE = 500
LONGEST = 3_650 * 86_400.0
"""--since and --seconds at most ten years (the longest FLAGD_EVENTS_MAX_AGE_DAYS)."""
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def register(commands: Any) -> None:
    group = commands.add_parser(
        "events",
        help="watch events arrive; drop old events",
        description="Watch exposures and track events as they are stored, or drop old ones.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    tail = actions.add_parser(
        "tail",
        help="print events as they are stored (Ctrl-C to stop)",
        description="Print exposures and track events as they are stored, for instrumenting an app.",
    )
    tail.add_argument("--kind", choices=["track", "exposure"], help="only this kind")
    tail.add_argument("--name", help="only this event name (track) or experiment key (exposure)")
    tail.add_argument(
        "--since",
        type=seconds(0, LONGEST),
        default=0.0,
        metavar="SECONDS",
        help="start this far back (default 0)",
    )
    tail.add_argument("--limit", type=whole_number(1, 10**9), metavar="N", help="stop after N events")
    tail.add_argument(
        "--seconds", type=seconds(0, LONGEST, above_low=True), metavar="S", help="stop after S seconds"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--unit", help="only this unit (a user, or a test device's id)")
    tail.add_argument(
        "--check",
        action="store_true",
        help="check each track event against the tracking plan, and say when it fired again within a second",
    )
    database_options(tail)
    tail.set_defaults(command=tail_events)
    dropping = actions.add_parser(
        "prune",
        help="drop events before a day (whole daily partitions)",
        description=(
            "Drop every event whose timestamp is before DATE (UTC), by dropping whole daily partitions, "
            "and the exposures and counters of before DATE. A retry of a dropped event is stored again: "
            "deduplication holds for the days that are kept."
        ),
    )
    dropping.add_argument("--before", required=True, metavar="YYYY-MM-DD", help="the first day to keep")
    dropping.add_argument(
        "--force", action="store_true", help="prune even data that running experiments are analysing"
    )
    database_options(dropping)
    dropping.set_defaults(command=prune_events)
    tracking.register(actions)


def prune_events(settings: Settings, args: argparse.Namespace) -> int:
    try:
        # The pattern first: fromisoformat also reads 20261201 and 2026-W49-2.
        before = date.fromisoformat(args.before if _DAY.fullmatch(args.before) else "")
    except ValueError:
        raise CommandError(f"--before must be a day as YYYY-MM-DD, got {args.before!r}") from None
    today = datetime.now(UTC).date()
    if before > today:
        raise CommandError(
            f"--before {before} is after today ({today}, UTC): that would drop events still arriving"
        )

    async def work(conn: asyncpg.Connection) -> Any:
        if not args.force:
            running = await analysed_before(conn, before)
            if running:
                names = ", ".join(
                    f"{escape(r.experiment)} (phase started {r.phase_started_at:%Y-%m-%d})" for r in running
                )
                raise CommandError(
                    f"running experiments would lose data they analyse: {names}; stop them first, "
                    "or pass --force"
                )
        return await prune(conn, before)

    result = with_connection(settings, work)
    print(
        f"dropped {len(result.dropped)} daily partitions before {before}"
        + (f" ({result.dropped[0]} .. {result.dropped[-1]})" if result.dropped else "")
        + f", {result.default_rows} rows of the default partition, {result.exposures} exposures",
        file=sys.stderr,
    )
    return 0


def tail_events(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        events = EventRepository(conn)
        checker = await tracking.load_tail_check(conn, settings) if args.check else None
        cursor = (datetime.now(UTC) - timedelta(seconds=args.since), "")
        shown = 0
        stop_at = None if args.seconds is None else time.monotonic() + args.seconds
        while stop_at is None or time.monotonic() < stop_at:
            now = datetime.now(UTC)
            oldest = now - timedelta(days=settings.events_max_age_days + 1)
            rows = await events.recent(
                cursor,
                received_before=now - SETTLE,
                occurred_after=oldest,
                name=args.name,
                kind=args.kind,
                limit=PAGE,
                unit=args.unit,
            )
            for row in rows:
                cursor = (row.received_at, row.id)
                line = _line(row, args.json)
                print(line if checker is None else checker.annotate(row, line, args.json), flush=True)
                shown += 1
                if args.limit is not None and shown >= args.limit:
                    return shown
            if len(rows) < PAGE:
                await asyncio.sleep(POLL_SECONDS)
        return shown

    with contextlib.suppress(KeyboardInterrupt):
        with_connection(settings, work, transaction=False)
    return 0


def _line(row: StoredEvent, as_json: bool) -> str:
    """One event as a line for the terminal: everything the client sent is escaped (flagd.text), so a
    unit or a variant cannot clear the screen, set the title or forge a line."""
    if as_json:
        data = orjson.loads(row.data) if row.data else None
        record: dict[str, Any] = {
            "kind": row.kind,
            "id": row.id,
            "at": row.at,
            "received_at": row.received_at,
            "name": row.name,
            "unit": row.unit,
        }
        if row.kind == "track":
            record.update(value=row.value, properties=data)
        else:
            record.update(phase=row.phase, variant=row.variant, source=row.source, attributes=data)
        return escape_json(orjson.dumps(record).decode())
    at = row.at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    name, unit, data = escape(row.name), escape(row.unit), escape_json(row.data or "")
    if row.kind == "track":
        value = "" if row.value is None else f"  value={row.value:g}"
        return f"{at}  track     {name}  unit={unit}{value}  {data}".rstrip()
    return (
        f"{at}  exposure  {name} (phase {row.phase})  unit={unit}  "
        f"variant={escape(row.variant or '')}  [{escape(row.source or '')}]  {data}"
    ).rstrip()
