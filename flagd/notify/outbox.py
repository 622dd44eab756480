"""The notification outbox: `enqueue` writes one notification in the caller's transaction.

A change and what it notifies commit together or not at all; delivery (webhooks) is someone else's
work, woken by the `flagd_notifications` channel and reading the table in `created_at, id` order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from uuid import UUID

import orjson
from uuid_utils.compat import uuid7

from flagd.storage.types import Connection

CHANNEL: Final = "flagd_notifications"

KINDS: Final = frozenset(
    {
        "rollout.advanced",
        "rollout.held",
        "rollout.rolled_back",
        "rollout.completed",
        "experiment.decision_changed",
        "experiment.health_failed",
        "experiment.guardrail_harmed",
        "flag.changed",
        "schedule.executed",
        "data.volume_anomaly",
        "data.schema_drift",
        "data.duplicate_burst",
    }
)
"""Every kind a notification may have; a webhook subscribes to some of them."""


async def enqueue(conn: Connection, kind: str, subject: str, payload: Mapping[str, Any]) -> UUID:
    """Write a notification of `kind` about `subject` (a flag, experiment or rollout key) inside the
    transaction `conn` is in, and wake the deliverers when it commits. Returns its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not conn.is_in_transaction():
        raise RuntimeError("a notification is written in the transaction of the change that causes it")
    notification_id = uuid7()
    # The text itself, cast in SQL: a pooled connection's json codec would otherwise encode it once more.
    await conn.execute(
        "INSERT INTO notifications (id, kind, subject, payload) VALUES ($1, $2, $3, $4::text::json)",
        notification_id,
        kind,
        subject,
        orjson.dumps(dict(payload)).decode(),
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(notification_id))
    return UUID(str(notification_id))
