"""Signing a webhook's body, pure: HMAC-SHA256 over `timestamp.body` with the webhook's secret.

    Webhook-Id:        the notification's id, the same on every attempt (receivers deduplicate by it)
    Webhook-Timestamp: when this attempt was signed, in whole seconds since 1970
    Webhook-Signature: sha256=<hex of HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>

Signing the timestamp with the body lets a receiver refuse a replay: it checks the signature, then that the
timestamp is within five minutes of its clock (docs/notifications.md shows the receiver's code).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

ID_HEADER: Final = "Webhook-Id"
TIMESTAMP_HEADER: Final = "Webhook-Timestamp"
SIGNATURE_HEADER: Final = "Webhook-Signature"
REPLAY_WINDOW_SECONDS: Final = 300
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix of every secret, not one


def new_secret() -> str:
    """A fresh secret: 32 random bytes, URL-safe base64, behind a prefix that says what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Webhook-Signature header's value."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str, now: float) -> bool:
    """Whether `header` signs `body` at `timestamp` with `secret`, and the timestamp is no more than
    REPLAY_WINDOW_SECONDS from `now` (what a receiver does; the tests and docs use the same rule)."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs(now - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)


def headers(notification_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        ID_HEADER: notification_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
