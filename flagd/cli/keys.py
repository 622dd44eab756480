"""`flagd keys create|list|revoke`: API keys, printed once and stored only as hashes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from flagd.auth import keys
from flagd.auth.keys import Scope
from flagd.auth.origins import InvalidOrigin, origins
from flagd.auth.repository import ApiKey, ApiKeyRepository
from flagd.cli.common import CommandError, cli_actor, database_options, whole_number, with_connection
from flagd.config.audit import AuditRepository
from flagd.settings import Settings
from flagd.text import escape


def register(commands: Any) -> None:
    group = commands.add_parser(
        "keys", help="manage API keys", description="Create, list and revoke API keys."
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument(
        "--scope", required=True, choices=[s.value for s in Scope], help="what the key may call"
    )
    create.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        action=_OneName,
        help="what the key is for, e.g. 'checkout service' (default: the scope)",
    )
    create.add_argument("--name", dest="name", metavar="NAME", action=_OneName, help="the same as NAME")
    create.add_argument(
        "--no-server-exposures",
        dest="server_exposures",
        action="store_false",
        help="do not record exposures of this key's OFREP evaluations (for clients that send their own)",
    )
    create.add_argument(
        "--origin",
        dest="origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin a client key may be used from, such as https://shop.example (repeatable; "
        "without any, the server's FLAGD_CORS_ORIGINS)",
    )
    _common(create)
    create.set_defaults(command=create_key)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    _common(listing)
    listing.set_defaults(command=list_keys)

    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument(
        "id", type=whole_number(1, 2**63 - 1), help="the key's id, as `flagd keys list` shows it"
    )
    _common(revoke)
    revoke.set_defaults(command=revoke_key)


class _OneName(argparse.Action):
    """NAME or --name NAME (the older spelling): the same value given both ways is fine, two are a usage error."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        if values is None:  # the positional NAME, absent
            return
        given = getattr(namespace, self.dest, None)
        if given is not None and given != values:
            raise argparse.ArgumentError(
                None, f'the key\'s name is given twice, as "{given}" and "{values}"; give it once, as NAME'
            )
        setattr(namespace, self.dest, values)


def _common(parser: argparse.ArgumentParser) -> None:
    database_options(parser)
    parser.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")


def _public(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scope": key.scope.value,
        "prefix": key.prefix,
        "serverExposures": key.server_exposures,
        "origins": list(key.origins),
    }


def create_key(settings: Settings, args: argparse.Namespace) -> int:
    scope = Scope(args.scope)
    name = (args.name or scope.value).strip()
    if not name or len(name) > 200:
        raise CommandError("the key's NAME must be 1 to 200 characters")
    if args.origins and scope is not Scope.CLIENT:
        raise CommandError(f"--origin is for client keys (--scope client), not {scope.value} keys")
    try:
        allowed = origins(args.origins)
    except InvalidOrigin as exc:
        raise CommandError(f"--origin {exc}") from None
    new = keys.generate()

    async def work(conn: asyncpg.Connection) -> ApiKey:
        created = await ApiKeyRepository(conn).create(
            name, scope, new, server_exposures=args.server_exposures, origins=allowed
        )
        await AuditRepository(conn).record(
            actor=cli_actor(args),
            action="create",
            entity="api_key",
            key=str(created.id),
            before=None,
            after=_public(created),
            config_version=None,
        )
        return created

    created = with_connection(settings, work)
    print(new.token)
    where = f", allowed from {', '.join(created.origins)}" if created.origins else ""
    print(
        f"created {scope.value} key {created.id} ({escape(name)}{where}); this is the only time it is shown: "
        "store it now",
        file=sys.stderr,
    )
    return 0


def list_keys(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[ApiKey]:
        return await ApiKeyRepository(conn).list()

    found = with_connection(settings, work)  # before the header: a failure prints only its error
    print(f"{'id':>5}  {'scope':8} {'prefix':12} {'created':20} {'revoked':20} name")
    for key in found:
        revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else "-"
        created = key.created_at.strftime("%Y-%m-%d %H:%M:%S")
        allowed = f" (origins: {', '.join(escape(o) for o in key.origins)})" if key.origins else ""
        print(
            f"{key.id:>5}  {key.scope.value:8} {escape(key.prefix):12} {created:20} {revoked:20} "
            f"{escape(key.name)}{allowed}"
        )
    return 0


def revoke_key(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> ApiKey | None:
        repository = ApiKeyRepository(conn)
        before = await repository.by_id(args.id)
        revoked = await repository.revoke(args.id)
        if before is not None and revoked is not None and before.revoked_at is None:
            await AuditRepository(conn).record(
                actor=cli_actor(args),
                action="update",
                entity="api_key",
                key=str(args.id),
                before={**_public(before), "revoked": False},
                after={**_public(revoked), "revoked": True},
                config_version=None,
            )
        return revoked

    revoked = with_connection(settings, work)
    if revoked is None:
        raise CommandError(f"there is no key with id {args.id}; `flagd keys list` shows the ids")
    print(
        f"revoked key {revoked.id} ({escape(revoked.name)}); servers stop accepting it within seconds",
        file=sys.stderr,
    )
    return 0
