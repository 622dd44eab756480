"""The webhook deliverer: a background task per server worker that sends what the queue owes.

It wakes on the `flagd_notifications` channel (a connection of its own LISTENs) and every
FLAGD_WEBHOOK_POLL_SECONDS besides, claims due deliveries (flagd.notify.queue) up to its free slots —
FLAGD_WEBHOOK_CONCURRENCY in flight per worker, FLAGD_WEBHOOK_CONCURRENCY_PER_WEBHOOK per receiver — and
sends each as its own task. It does I/O only: a body is a small JSON document, signed with one HMAC, so
nothing it does holds the event loop that answers evaluations. A database that is down costs a round,
logged once, and the next round tries again; a delivery whose outcome could not be written is sent again
when its lease ends (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from uuid_utils.compat import uuid7

from flagd.notify import signing
from flagd.notify.backoff import Backoff
from flagd.notify.messages import Notification, body
from flagd.notify.outbox import CHANNEL
from flagd.notify.queue import Claimed, DeliveryQueue
from flagd.notify.repository import Attempt, WebhookRecord, WebhookRepository
from flagd.notify.sender import Outcome, Sender
from flagd.settings import Settings
from flagd.storage.pool import connect
from flagd.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 2.0
"""How long stopping waits for attempts in flight before it cancels them (their leases run out, and another
worker sends them again)."""
LEASE_MARGIN_SECONDS = 30.0
FINISHED_KEPT_SECONDS = 7 * 86_400.0
"""Delivered and failed deliveries are counted for a week, then forgotten (their attempts stay in the log)."""
PRUNE_EVERY_SECONDS = 600.0
PRUNE_BATCH = 10_000


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        *,
        uniform: Callable[[], float] = random.random,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._uniform = uniform
        self._environ = environ
        self._backoff = Backoff(settings.webhook_backoff_base_seconds, settings.webhook_backoff_cap_seconds)
        self._lease = settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
        self.sender = Sender(settings)
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy: Counter[UUID] = Counter()
        self._failing = False
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="flagd-webhook-deliverer")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=STOP_GRACE_SECONDS)
        for task in set(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        await self.sender.close()

    def wake(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        try:
            listener = await connect(self._settings)
            await listener.add_listener(CHANNEL, lambda *args: self._wake.set())
        except Exception as exc:
            self._report_failure(f"listening on {CHANNEL} failed ({exc}); polling until it works")
            return
        self._listener = listener

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.webhook_poll_seconds)
            self._wake.clear()
            if self._listener is None or self._listener.is_closed():
                self._listener = None
                await self._listen()
            await self.fill()
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                await self.prune()

    async def prune(self) -> int:
        """Forget a batch of deliveries finished more than FINISHED_KEPT_SECONDS ago; how many."""
        try:
            async with self._pool.acquire(timeout=self._settings.db_connect_timeout) as conn:
                return await DeliveryQueue(conn).prune(FINISHED_KEPT_SECONDS, PRUNE_BATCH)
        except Exception as exc:
            self._report_failure(f"pruning finished webhook deliveries failed ({exc}); will retry")
            return 0

    async def fill(self) -> int:
        """Claim as many due deliveries as there are free slots and start sending them; how many."""
        free = self._settings.webhook_concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        try:
            async with self._pool.acquire(timeout=self._settings.db_connect_timeout) as conn:
                claimed = await DeliveryQueue(conn).claim(
                    limit=free,
                    per_webhook=self._settings.webhook_concurrency_per_webhook,
                    busy=self._busy,
                    lease_seconds=self._lease,
                )
        except Exception as exc:
            self._report_failure(f"claiming webhook deliveries failed ({exc}); will retry")
            return 0
        if self._failing:
            logger.info("claiming webhook deliveries works again")
            self._failing = False
        for item in claimed:
            self._busy[item.webhook_id] += 1
            task = asyncio.create_task(self._deliver(item), name="flagd-webhook-attempt")
            self._in_flight.add(task)
            task.add_done_callback(functools.partial(self._finished, webhook_id=item.webhook_id))
        if len(claimed) == free:
            self._wake.set()  # there may be more due, claimed as slots free up
        return len(claimed)

    def _finished(self, task: asyncio.Task[None], webhook_id: UUID) -> None:
        self._in_flight.discard(task)
        self._busy[webhook_id] -= 1
        if self._busy[webhook_id] <= 0:
            del self._busy[webhook_id]
        self._wake.set()

    async def _deliver(self, claimed: Claimed) -> None:
        outcome = await send(
            self.sender,
            claimed.notification,
            claimed.url,
            claimed.secret or self._environ.get(claimed.secret_env or ""),
            slack=claimed.slack,
        )
        try:
            async with (
                self._pool.acquire(timeout=self._settings.db_connect_timeout) as conn,
                conn.transaction(),
            ):
                queue = DeliveryQueue(conn)
                if outcome.delivered:
                    await queue.delivered(claimed)
                    state = "delivered"
                else:
                    retry_in = self._backoff.delay(claimed.attempt, self._uniform)
                    state, failures = await queue.failed(
                        claimed, retry_in, self._settings.webhook_retry_seconds
                    )
                    await queue.pause(claimed.webhook_id, self._backoff.delay(failures, self._uniform))
                if state != "superseded":
                    await WebhookRepository(conn).log_attempt(
                        claimed.webhook_id,
                        _attempt(
                            claimed.notification,
                            claimed.attempt,
                            outcome,
                            "retrying" if state == "pending" else state,
                        ),
                        self._settings.webhook_log_size,
                    )
        except Exception as exc:
            logger.warning(
                "the outcome of webhook delivery %s could not be recorded (%s); it is sent again when its "
                "lease ends",
                claimed.notification.id,
                exc,
            )

    def _report_failure(self, message: str) -> None:
        if not self._failing:
            logger.warning("%s", message)
        self._failing = True


async def ping(
    sender: Sender, webhook: WebhookRecord, environ: Mapping[str, str] = os.environ
) -> tuple[Attempt, Outcome]:
    """Send a `webhook.test` notification to `webhook` now, signed as any other; the attempt to log."""
    notification = Notification(
        id=uuid7(),
        kind="webhook.test",
        subject=webhook.name,
        payload={"message": f"a test of webhook {webhook.name} from flagd"},
        created_at=datetime.now(UTC),
    )
    secret = webhook.secret or environ.get(webhook.secret_env or "")
    outcome = await send(sender, notification, webhook.url, secret, slack=webhook.slack)
    return _attempt(notification, 1, outcome, "test"), outcome


async def send(
    sender: Sender, notification: Notification, url: str, secret: str | None, *, slack: bool
) -> Outcome:
    """One attempt: the body, signed now with `secret` (None: its environment variable is not set here)."""
    if not secret:
        return Outcome(
            False, None, 0.0, "the environment variable the webhook's secretEnv names is not set here"
        )
    payload = body(notification, slack=slack)
    headers = signing.headers(str(notification.id), secret, int(time.time()), payload)
    return await sender.send(url, headers, payload)


def _attempt(notification: Notification, number: int, outcome: Outcome, result: str) -> Attempt:
    return Attempt(
        notification_id=UUID(str(notification.id)),
        kind=notification.kind,
        attempt=number,
        outcome=result,
        status=outcome.status,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        at=datetime.now(UTC),
    )
