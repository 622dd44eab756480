"""Sessions of the results pages: a login with a results or admin key, held by the browser as a cookie.

The cookie carries a random token, never the key: the database keeps the token's SHA-256, the key
it was opened with and the session's CSRF token (for the logout form). A session ends when it
expires (SESSION_SECONDS), when its owner logs out, or when its key is revoked or deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flagd.storage.types import Connection

COOKIE = "flagd_session"
LOGIN_CSRF_COOKIE = "flagd_login"
COOKIE_PATH = "/experiments"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS_PER_KEY = 20
"""Logging in again beyond this many open sessions of one key ends its oldest."""


@dataclass(frozen=True, slots=True)
class Session:
    key_id: int
    key_name: str
    csrf: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens, neither missing."""
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


async def open_session(conn: Connection, key_id: int) -> str:
    """A new session of `key_id`; the token for the cookie."""
    token = secrets.token_urlsafe(32)
    async with conn.transaction():
        await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
        await conn.execute(
            "DELETE FROM web_sessions WHERE key_id = $1 AND token_hash IN (SELECT token_hash FROM web_sessions "
            "WHERE key_id = $1 ORDER BY created_at DESC OFFSET $2)",
            key_id,
            MAX_SESSIONS_PER_KEY - 1,
        )
        await conn.execute(
            "INSERT INTO web_sessions (token_hash, key_id, csrf, expires_at) VALUES ($1, $2, $3, now() + $4::interval)",
            _hash(token),
            key_id,
            secrets.token_urlsafe(24),
            timedelta(seconds=SESSION_SECONDS),
        )
    return token


async def find_session(conn: Connection, token: str | None) -> Session | None:
    """The live session of a cookie's token: not expired, its key neither revoked nor of the sdk scope."""
    if not token or len(token) > 128:
        return None
    row = await conn.fetchrow(
        "SELECT s.key_id, k.name, s.csrf FROM web_sessions s JOIN api_keys k ON k.id = s.key_id "
        "WHERE s.token_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL "
        "AND k.scope IN ('results', 'admin')",
        _hash(token),
    )
    return None if row is None else Session(row["key_id"], row["name"], row["csrf"])


async def close_session(conn: Connection, token: str) -> None:
    await conn.execute("DELETE FROM web_sessions WHERE token_hash = $1", _hash(token))
