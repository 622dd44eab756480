"""Sessions of the results pages: a login with a results or admin key, held by the browser as a cookie.

The cookie carries a random token, never the key: the database keeps the token's SHA-256, the key
it was opened with and the session's CSRF token (for the logout form). A session ends when it
expires (SESSION_SECONDS), when its owner logs out, or when its key is revoked or deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flagd.auth.sessions import Session as Session  # the pages name it from here
from flagd.auth.sessions import SessionRepository
from flagd.storage.types import Connection

COOKIE = "flagd_session"
LOGIN_CSRF_COOKIE = "flagd_login"
COOKIE_PATH = "/experiments"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS_PER_KEY = 20
"""Logging in again beyond this many open sessions of one key ends its oldest."""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens, neither missing."""
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


async def open_session(conn: Connection, key_id: int) -> str:
    """A new session of `key_id`; the token for the cookie."""
    token = secrets.token_urlsafe(32)
    sessions = SessionRepository(conn)
    async with conn.transaction():
        await sessions.delete_expired()
        await sessions.keep_newest(key_id, MAX_SESSIONS_PER_KEY - 1)
        await sessions.insert(
            _hash(token), key_id, secrets.token_urlsafe(24), timedelta(seconds=SESSION_SECONDS)
        )
    return token


async def find_session(conn: Connection, token: str | None) -> Session | None:
    """The live session of a cookie's token: not expired, its key neither revoked nor of the sdk scope."""
    if not token or len(token) > 128:
        return None
    return await SessionRepository(conn).live(_hash(token))


async def close_session(conn: Connection, token: str) -> None:
    await SessionRepository(conn).delete(_hash(token))
