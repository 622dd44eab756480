"""The API key format, pure: `flagd_<prefix>_<secret>`.

The prefix (10 hex characters) is stored in clear to find the key; the secret (32
random bytes, URL-safe base64) is stored only as its SHA-256. A slow password hash is
not needed: the secret has 256 bits of entropy, so it cannot be guessed from its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

_FORMAT = re.compile(r"^flagd_(?P<prefix>[0-9a-f]{10})_(?P<secret>[A-Za-z0-9_-]{43})$")


class Scope(StrEnum):
    ADMIN = "admin"
    SDK = "sdk"
    RESULTS = "results"
    CLIENT = "client"
    """For code anyone can read (a web page, a mobile app): OFREP evaluation, events and the client change
    stream only, from the origins the key allows, rate-limited."""


@dataclass(frozen=True, slots=True)
class NewKey:
    prefix: str
    secret_hash: bytes
    token: str
    """The whole key, shown to its owner once and never stored."""


@dataclass(frozen=True, slots=True)
class PresentedKey:
    prefix: str
    secret: str


def generate() -> NewKey:
    prefix = secrets.token_hex(5)
    secret = secrets.token_urlsafe(32)
    return NewKey(prefix=prefix, secret_hash=hash_secret(secret), token=f"flagd_{prefix}_{secret}")


def parse(token: str) -> PresentedKey | None:
    match = _FORMAT.match(token)
    return PresentedKey(match["prefix"], match["secret"]) if match else None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def matches(presented: PresentedKey, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(presented.secret), secret_hash)
