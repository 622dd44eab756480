"""Sessions of the results pages in PostgreSQL, each stored under its token's hash; the caller owns the
transaction. What a session is and how its cookie is kept is `flagd.web.sessions`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flagd.storage.types import Connection


@dataclass(frozen=True, slots=True)
class Session:
    key_id: int
    key_name: str
    csrf: str


class SessionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def delete_expired(self) -> None:
        await self._conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")

    async def keep_newest(self, key_id: int, count: int) -> None:
        """End all but the `count` newest sessions of `key_id`."""
        await self._conn.execute(
            "DELETE FROM web_sessions WHERE key_id = $1 AND token_hash IN (SELECT token_hash FROM web_sessions "
            "WHERE key_id = $1 ORDER BY created_at DESC OFFSET $2)",
            key_id,
            count,
        )

    async def insert(self, token_hash: bytes, key_id: int, csrf: str, lifetime: timedelta) -> None:
        await self._conn.execute(
            "INSERT INTO web_sessions (token_hash, key_id, csrf, expires_at) VALUES ($1, $2, $3, now() + $4::interval)",
            token_hash,
            key_id,
            csrf,
            lifetime,
        )

    async def live(self, token_hash: bytes) -> Session | None:
        """The session stored under `token_hash`: not expired, its key neither revoked nor of the sdk scope."""
        row = await self._conn.fetchrow(
            "SELECT s.key_id, k.name, s.csrf FROM web_sessions s JOIN api_keys k ON k.id = s.key_id "
            "WHERE s.token_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL "
            "AND k.scope IN ('results', 'admin')",
            token_hash,
        )
        return None if row is None else Session(row["key_id"], row["name"], row["csrf"])

    async def delete(self, token_hash: bytes) -> None:
        await self._conn.execute("DELETE FROM web_sessions WHERE token_hash = $1", token_hash)
