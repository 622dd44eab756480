"""Tokens in the URL of a client key's change stream, pure: a browser's EventSource cannot send headers.

    <key prefix>.<window>.<mac>     mac = HMAC-SHA256(key's secret hash, "client-stream:<key id>:<window>")

`window` counts WINDOW_SECONDS since 1970. A token is valid in its window and the next, so the bulk answer
that gives it (and that answer's ETag) stays the same for a whole window, and a revalidation with 304 keeps
the URL the client already holds. The MAC is keyed by the key's stored secret hash, which never leaves the
server and which every worker reads with the key, so any worker checks any worker's token, and a revoked key's
tokens stop with the key. A token reads only that something changed: the stream sends nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

WINDOW_SECONDS = 900
"""A token is valid for at least this long and at most twice as long."""
_FORMAT = re.compile(
    r"(?P<prefix>[0-9a-f]{10})\.(?P<window>[0-9]{1,12})\.(?P<mac>[A-Za-z0-9_-]{22})", re.ASCII
)


@dataclass(frozen=True, slots=True)
class StreamToken:
    prefix: str
    window: int
    mac: str


def window_at(now: float) -> int:
    return int(now // WINDOW_SECONDS)


def issue(prefix: str, key_id: int, secret_hash: bytes, now: float) -> str:
    window = window_at(now)
    return f"{prefix}.{window}.{_mac(key_id, secret_hash, window)}"


def parse(text: str) -> StreamToken | None:
    match = _FORMAT.fullmatch(text)
    return StreamToken(match["prefix"], int(match["window"]), match["mac"]) if match else None


def genuine(token: StreamToken, key_id: int, secret_hash: bytes) -> bool:
    """Whether the token was issued for this key (in constant time), whatever its window."""
    return hmac.compare_digest(token.mac, _mac(key_id, secret_hash, token.window))


def current(token: StreamToken, now: float) -> bool:
    """Whether the token's window is this one or the one before."""
    return 0 <= window_at(now) - token.window <= 1


def _mac(key_id: int, secret_hash: bytes, window: int) -> str:
    digest = hmac.new(secret_hash, f"client-stream:{key_id}:{window}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
