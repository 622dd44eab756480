"""The deliveries owed, as a queue several workers and hosts share.

A worker claims due deliveries with `FOR UPDATE SKIP LOCKED` and leases each until `lease_until`, so two
workers never send the same attempt at once; the attempt counter it claimed with is the lease's token,
so a worker whose lease ran out (and whose delivery another worker re-sent) cannot overwrite the newer
outcome. A webhook whose receiver fails is paused (`paused_until`) and, once the pause ends, probed with
one delivery at a time until one succeeds; then everything it owes is due at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from flagd.notify.messages import Notification
from flagd.storage.types import Connection

_CLAIM = """
WITH busy AS (
    SELECT * FROM unnest($4::uuid[], $5::int[]) AS b (webhook_id, n)
), picked AS (
    SELECT due.webhook_id, due.notification_id
    FROM webhooks w
    LEFT JOIN busy ON busy.webhook_id = w.id
    CROSS JOIN LATERAL (
        SELECT d.webhook_id, d.notification_id
        FROM webhook_deliveries d
        WHERE d.webhook_id = w.id AND d.state = 'pending' AND d.next_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until <= now())
        ORDER BY d.next_at
        LIMIT greatest(0, (CASE WHEN w.consecutive_failures > 0 THEN 1 ELSE $2 END) - coalesce(busy.n, 0))
        FOR UPDATE OF d SKIP LOCKED
    ) due
    WHERE w.enabled AND (w.paused_until IS NULL OR w.paused_until <= now())
    ORDER BY random()
    LIMIT $1
)
UPDATE webhook_deliveries d
SET lease_until = now() + make_interval(secs => $3), attempts = d.attempts + 1
FROM picked, notifications n, webhooks w
WHERE d.webhook_id = picked.webhook_id AND d.notification_id = picked.notification_id
  AND n.id = d.notification_id AND w.id = d.webhook_id
RETURNING d.webhook_id, d.attempts, n.id, n.kind, n.subject, n.payload, n.created_at,
          w.url, w.secret, w.secret_env, w.slack
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One attempt this worker holds the lease of, with what it needs to send it."""

    webhook_id: UUID
    attempt: int
    notification: Notification
    url: str
    secret: str | None
    secret_env: str | None
    slack: bool


class DeliveryQueue:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def claim(
        self, *, limit: int, per_webhook: int, busy: Mapping[UUID, int], lease_seconds: float
    ) -> list[Claimed]:
        """Up to `limit` due deliveries, at most `per_webhook` (minus those `busy` here) of a healthy webhook
        and one of a webhook being probed, each leased for `lease_seconds`."""
        rows = await self._conn.fetch(
            _CLAIM, limit, per_webhook, lease_seconds, list(busy), list(busy.values())
        )
        return [
            Claimed(
                webhook_id=row["webhook_id"],
                attempt=row["attempts"],
                notification=Notification(
                    id=row["id"],
                    kind=row["kind"],
                    subject=row["subject"],
                    payload=row["payload"],
                    created_at=row["created_at"],
                ),
                url=row["url"],
                secret=row["secret"],
                secret_env=row["secret_env"],
                slack=row["slack"],
            )
            for row in rows
        ]

    async def delivered(self, claimed: Claimed) -> None:
        """The receiver took it: done, and a webhook that was failing is healthy again."""
        await self._conn.execute(
            "UPDATE webhook_deliveries SET state = 'delivered', lease_until = NULL, finished_at = now() "
            "WHERE webhook_id = $1 AND notification_id = $2 AND attempts = $3 AND state = 'pending'",
            claimed.webhook_id,
            claimed.notification.id,
            claimed.attempt,
        )
        recovered = await self._conn.fetchval(
            "UPDATE webhooks SET consecutive_failures = 0, paused_until = NULL "
            "WHERE id = $1 AND consecutive_failures > 0 RETURNING id",
            claimed.webhook_id,
        )
        if recovered is not None:
            # Its backlog waited out the receiver's backoff, not its own: all of it is due now.
            # SKIP LOCKED: a row another worker is recording an outcome of keeps the outcome it gets (and
            # this transaction never waits on one that waits on the webhook row this one holds).
            await self._conn.execute(
                "UPDATE webhook_deliveries SET next_at = now() WHERE (webhook_id, notification_id) IN ("
                "SELECT webhook_id, notification_id FROM webhook_deliveries "
                "WHERE webhook_id = $1 AND state = 'pending' AND next_at > now() FOR UPDATE SKIP LOCKED)",
                claimed.webhook_id,
            )

    async def failed(self, claimed: Claimed, retry_in: float, retry_for: float) -> tuple[str, int]:
        """The attempt failed: try again in `retry_in` seconds, or give up once the delivery is `retry_for`
        seconds old (its last attempt no later than that). Returns the delivery's state and the webhook's
        failures in a row, this one included."""
        state = await self._conn.fetchval(
            "UPDATE webhook_deliveries SET lease_until = NULL, "
            "state = CASE WHEN now() >= created_at + make_interval(secs => $5) THEN 'failed' ELSE 'pending' END, "
            "finished_at = CASE WHEN now() >= created_at + make_interval(secs => $5) THEN now() END, "
            "next_at = least(now() + make_interval(secs => $4), created_at + make_interval(secs => $5)) "
            "WHERE webhook_id = $1 AND notification_id = $2 AND attempts = $3 AND state = 'pending' "
            "RETURNING state",
            claimed.webhook_id,
            claimed.notification.id,
            claimed.attempt,
            retry_in,
            retry_for,
        )
        failures = await self._conn.fetchval(
            "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = $1 "
            "RETURNING consecutive_failures",
            claimed.webhook_id,
        )
        return state or "superseded", failures or 0

    async def prune(self, older_than_seconds: float, limit: int) -> int:
        """Forget up to `limit` deliveries that finished more than `older_than_seconds` ago; how many."""
        status = await self._conn.execute(
            "DELETE FROM webhook_deliveries WHERE (webhook_id, notification_id) IN ("
            "SELECT webhook_id, notification_id FROM webhook_deliveries "
            "WHERE state <> 'pending' AND finished_at < now() - make_interval(secs => $1) LIMIT $2)",
            older_than_seconds,
            limit,
        )
        return int(status.split()[-1])

    async def pause(self, webhook_id: UUID, seconds: float) -> None:
        await self._conn.execute(
            "UPDATE webhooks SET paused_until = now() + make_interval(secs => $2) WHERE id = $1",
            webhook_id,
            seconds,
        )
