"""API keys in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flagd.auth.keys import NewKey, Scope
from flagd.storage.types import Connection

KEYS_CHANNEL = "flagd_keys"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    scope: Scope
    prefix: str
    secret_hash: bytes
    created_at: datetime
    revoked_at: datetime | None
    server_exposures: bool = True
    """Whether the server records the exposures of this key's OFREP evaluations."""
    origins: tuple[str, ...] = ()
    """The browser origins a client key may be used from (none: the server's FLAGD_CORS_ORIGINS)."""


class ApiKeyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def create(
        self,
        name: str,
        scope: Scope,
        key: NewKey,
        *,
        server_exposures: bool = True,
        origins: Sequence[str] = (),
    ) -> ApiKey:
        row = await self._fetch_one(
            "INSERT INTO api_keys (name, scope, prefix, secret_hash, server_exposures, allowed_origins) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, scope, prefix, secret_hash, created_at, revoked_at, server_exposures, allowed_origins",
            name,
            scope.value,
            key.prefix,
            key.secret_hash,
            server_exposures,
            list(origins),
        )
        await self._notify()
        return _key(row)

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        row = await self._conn.fetchrow(
            "SELECT id, name, scope, prefix, secret_hash, created_at, revoked_at, server_exposures, allowed_origins FROM api_keys WHERE prefix = $1",
            prefix,
        )
        return _key(row) if row else None

    async def by_id(self, key_id: int) -> ApiKey | None:
        row = await self._conn.fetchrow(
            "SELECT id, name, scope, prefix, secret_hash, created_at, revoked_at, server_exposures, allowed_origins FROM api_keys WHERE id = $1",
            key_id,
        )
        return _key(row) if row else None

    async def list(self) -> list[ApiKey]:
        rows = await self._conn.fetch(
            "SELECT id, name, scope, prefix, secret_hash, created_at, revoked_at, server_exposures, allowed_origins FROM api_keys ORDER BY id"
        )
        return [_key(row) for row in rows]

    async def revoke(self, key_id: int) -> ApiKey | None:
        row = await self._conn.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id, name, scope, prefix, secret_hash, created_at, revoked_at, server_exposures, allowed_origins",
            key_id,
        )
        await self._notify()
        return _key(row) if row else None

    async def client_origins(self) -> frozenset[str]:
        """Every origin some client key that is not revoked allows."""
        rows = await self._conn.fetch(
            "SELECT DISTINCT unnest(allowed_origins) AS origin FROM api_keys "
            "WHERE scope = 'client' AND revoked_at IS NULL"
        )
        return frozenset(row["origin"] for row in rows)

    async def _fetch_one(self, query: str, *args: Any) -> asyncpg.Record:
        row = await self._conn.fetchrow(query, *args)
        assert row is not None, "INSERT ... RETURNING always returns its row"
        return row

    async def _notify(self) -> None:
        # Delivered at commit: every worker then forgets the keys it had cached.
        await self._conn.execute("SELECT pg_notify($1, '')", KEYS_CHANNEL)


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scope=Scope(row["scope"]),
        prefix=row["prefix"],
        secret_hash=bytes(row["secret_hash"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        server_exposures=row["server_exposures"],
        origins=tuple(row["allowed_origins"]),
    )
