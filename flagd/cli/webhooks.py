"""`flagd webhooks create NAME URL --kind KIND... | list | delete WEBHOOK | deliveries WEBHOOK | test WEBHOOK`:
webhooks from a shell (WEBHOOK is its id or its name). A generated secret is printed once, on stdout."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from uuid import UUID

import asyncpg

from flagd.cli.common import CommandError, cli_actor, database_options, whole_number, with_connection
from flagd.notify.deliverer import ping
from flagd.notify.outbox import KINDS
from flagd.notify.repository import Attempt, WebhookRecord, WebhookRepository
from flagd.notify.sender import Outcome, Sender
from flagd.notify.service import MAX_WEBHOOKS, WebhookService, Written
from flagd.settings import Settings
from flagd.text import escape


def register(commands: Any) -> None:
    group = commands.add_parser(
        "webhooks",
        help="webhooks: who is told about rollouts, experiments, flag changes and schedules",
        description="Create, list and delete webhooks, read their delivery logs and send a test.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a webhook and print its secret (once)")
    create.add_argument("name", help="a name for people (unique)")
    create.add_argument("url", help="the http(s) URL to POST each notification to")
    create.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        required=True,
        choices=sorted(KINDS),
        metavar="KIND",
        help=f"a notification kind to send (repeat for more): {', '.join(sorted(KINDS))}",
    )
    create.add_argument(
        "--secret-env", help="sign with the value of this environment variable instead of a generated secret"
    )
    create.add_argument("--slack", action="store_true", help="send Slack's message format ({text, blocks})")
    create.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(create)
    create.set_defaults(command=create_webhook)

    listing = actions.add_parser("list", help="webhooks with their state")
    database_options(listing)
    listing.set_defaults(command=list_webhooks)

    delete = actions.add_parser("delete", help="delete a webhook, with what it still owed")
    delete.add_argument("webhook", help="its id or name")
    delete.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(delete)
    delete.set_defaults(command=delete_webhook)

    log = actions.add_parser("deliveries", help="a webhook's last attempts, newest first")
    log.add_argument("webhook", help="its id or name")
    log.add_argument(
        "--limit", type=whole_number(1, 10_000), default=20, help="attempts to show (default 20)"
    )
    database_options(log)
    log.set_defaults(command=deliveries)

    test = actions.add_parser(
        "test", help="send a signed webhook.test now; exit 1 unless the receiver took it"
    )
    test.add_argument("webhook", help="its id or name")
    database_options(test)
    test.set_defaults(command=test_webhook)


async def _resolve(conn: asyncpg.Connection, given: str) -> WebhookRecord:
    repository = WebhookRepository(conn)
    try:
        found = await repository.get(UUID(given)) if len(given) == 36 else None
    except ValueError:
        found = None
    found = found or await repository.find(given)
    if found is None:
        raise CommandError(f"there is no webhook {escape(given)}; `flagd webhooks list` shows them")
    return found


def create_webhook(settings: Settings, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "url": args.url, "kinds": args.kinds, "slack": args.slack}
    if args.secret_env:
        body["secretEnv"] = args.secret_env

    async def work(conn: asyncpg.Connection) -> Written:
        return await WebhookService(conn, cli_actor(args)).create(body)

    written = with_connection(settings, work)
    if written.secret is not None:
        print(written.secret)
    signed = (
        "this is the only time its secret is shown: store it now"
        if written.secret
        else f"signed with ${args.secret_env}"
    )
    print(f"created webhook {written.record.id} ({escape(args.name)}); {signed}", file=sys.stderr)
    return 0


def list_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[WebhookRecord]:
        return await WebhookRepository(conn).all(MAX_WEBHOOKS)

    found = with_connection(settings, work)
    print(f"{'id':36}  {'state':8} {'failing':>7}  {'name':20} kinds -> url")
    for hook in found:
        state = "enabled" if hook.enabled else "disabled"
        print(
            f"{hook.id!s:36}  {state:8} {hook.consecutive_failures:>7}  {escape(hook.name):20} "
            f"{','.join(hook.kinds)} -> {escape(hook.url)}"
        )
    return 0


def delete_webhook(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> WebhookRecord:
        found = await _resolve(conn, args.webhook)
        await WebhookService(conn, cli_actor(args)).delete(found.id)
        return found

    deleted = with_connection(settings, work)
    print(f"deleted webhook {deleted.id} ({escape(deleted.name)})", file=sys.stderr)
    return 0


def deliveries(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> tuple[dict[str, int], list[Attempt]]:
        found = await _resolve(conn, args.webhook)
        repository = WebhookRepository(conn)
        return await repository.delivery_counts(found.id), await repository.attempts(found.id, args.limit)

    counts, attempts = with_connection(settings, work)
    print(", ".join(f"{n} {state}" for state, n in counts.items()), file=sys.stderr)
    print(f"{'at':19}  {'outcome':9} {'status':>6} {'ms':>8}  {'attempt':>7}  kind  notification  error")
    for attempt in attempts:
        status = str(attempt.status) if attempt.status is not None else "-"
        print(
            f"{attempt.at.strftime('%Y-%m-%d %H:%M:%S'):19}  {attempt.outcome:9} {status:>6} "
            f"{attempt.duration_ms:>8.1f}  {attempt.attempt:>7}  {attempt.kind}  {attempt.notification_id}  "
            f"{escape(attempt.error or '')}"
        )
    return 0


def test_webhook(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> Outcome:
        found = await _resolve(conn, args.webhook)
        sender = Sender(settings)
        try:
            attempt, outcome = await ping(sender, found)
        finally:
            await sender.close()
        await WebhookRepository(conn).log_attempt(found.id, attempt, settings.webhook_log_size)
        return outcome

    outcome = with_connection(settings, work, transaction=False)
    if not outcome.delivered:
        raise CommandError(f"the receiver did not take the test: {escape(outcome.error or '')}")
    print(
        f"delivered: the receiver answered {outcome.status} in {outcome.duration_ms:.0f} ms", file=sys.stderr
    )
    return 0
