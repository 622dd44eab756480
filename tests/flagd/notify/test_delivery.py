"""Webhook delivery end to end: a real receiver on 127.0.0.1 that is down, then slow, then failing, and a
live server whose flag changes notify it (the issue's acceptance scenario, with its timings scaled down by
the FLAGD_WEBHOOK_* settings; bench/webhooks.py runs it at full length)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import asyncpg
import httpx
import pytest

from flagd.notify.deliverer import FINISHED_KEPT_SECONDS
from flagd.notify.queue import DeliveryQueue
from flagd.settings import Settings
from tests.flagd.notify.receiver import Receiver, listening
from tests.support import flag_definition, free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        webhook_poll_seconds=0.05,
        webhook_connect_timeout_seconds=0.2,
        webhook_timeout_seconds=0.3,
        webhook_backoff_base_seconds=0.02,
        webhook_backoff_cap_seconds=0.2,
        webhook_concurrency=4,
        webhook_concurrency_per_webhook=2,
        webhook_log_size=20,
    )


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Wait (a bound, not a timed assertion) until `condition()` is true, looking every 20 ms."""
    for _ in range(int(seconds / 0.02)):
        if await condition():
            return
        await asyncio.sleep(0.02)


async def _create(admin: httpx.AsyncClient, url: str, **more: object) -> dict[str, object]:
    created = await admin.post(
        "/v1/webhooks", json={"name": f"hook-{url[-5:]}", "url": url, "kinds": ["flag.changed"], **more}
    )
    assert created.status_code == 201, created.text
    body: dict[str, object] = created.json()
    return body


async def _states(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM webhook_deliveries GROUP BY state")
    finally:
        await conn.close()
    return {row["state"]: row["n"] for row in rows}


async def test_should_deliver_every_notification_through_an_outage_a_slow_and_a_failing_receiver(
    admin: httpx.AsyncClient, database_url: str
) -> None:
    port = free_port()
    hook = await _create(admin, f"http://127.0.0.1:{port}/hook")
    receiver = Receiver(secret=str(hook["secret"]), slow_seconds=0.5, slow_answers=3, failures=2)
    changes = 12
    for index in range(changes // 2):  # while the receiver is down
        answer = await admin.post(
            "/v1/admin/flags", json={"key": f"f{index}", "definition": flag_definition()}
        )
        assert answer.status_code == 201
    await asyncio.sleep(0.6)  # down: the deliverer is refused, backs off, and probes
    async with listening(receiver, port):
        for index in range(changes // 2, changes):
            answer = await admin.post(
                "/v1/admin/flags", json={"key": f"f{index}", "definition": flag_definition()}
            )
            assert answer.status_code == 201

        async def all_received() -> bool:
            return len(receiver.received) == changes and receiver.slow_answers == 0

        await _until(all_received, 6.0)
        # A slow answer the deliverer gave up on still arrives: the receiver may see it again, once more.
        await asyncio.sleep(0.6)

    assert receiver.bad_signatures == 0
    assert sorted(body["subject"] for body in receiver.received.values()) == sorted(
        f"f{i}" for i in range(changes)
    )
    assert all(body["kind"] == "flag.changed" for body in receiver.received.values())
    assert all(body["payload"]["flag"] == body["subject"] for body in receiver.received.values())
    assert all(notification_id == body["id"] for notification_id, body in receiver.received.items())
    assert receiver.duplicates >= 1  # retried after a slow answer arrived: the id let it drop them
    assert receiver.requests >= changes + 3 + 2
    assert await _states(database_url) == {"delivered": changes}
    log = (await admin.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 20})).json()
    assert log["deliveries"] == {"pending": 0, "delivered": changes, "failed": 0}
    outcomes = {attempt["outcome"] for attempt in log["attempts"]}
    assert outcomes == {"delivered", "retrying"}
    assert len(log["attempts"]) == 20  # the log keeps FLAGD_WEBHOOK_LOG_SIZE
    assert sum(a["status"] == 500 for a in log["attempts"]) == 2
    timeouts = [a for a in log["attempts"] if "no complete answer within 0.3 s" in (a["error"] or "")]
    assert len(timeouts) >= 3
    after = (await admin.get(f"/v1/webhooks/{hook['id']}")).json()
    assert after["consecutiveFailures"] == 0
    assert after["pausedUntil"] is None


async def test_should_mark_a_delivery_failed_when_its_retry_window_ends(
    admin: httpx.AsyncClient, database_url: str
) -> None:
    hook = await _create(admin, f"http://127.0.0.1:{free_port()}/dead")
    conn = await asyncpg.connect(database_url)
    try:
        # A disabled webhook is owed nothing.
        await conn.execute("UPDATE webhooks SET enabled = false WHERE id = $1", hook["id"])
        answer = await admin.post("/v1/admin/flags", json={"key": "late", "definition": flag_definition()})
        assert answer.status_code == 201
        await conn.execute("UPDATE webhooks SET enabled = true WHERE id = $1", hook["id"])
        # A delivery owed for longer than FLAGD_WEBHOOK_RETRY_SECONDS (24 h) is tried once more, then given up.
        await conn.execute(
            "INSERT INTO notifications (id, kind, subject, payload, created_at) "
            "VALUES (gen_random_uuid(), 'flag.changed', 'old', '{}', now() - interval '25 hours')"
        )
    finally:
        await conn.close()

    async def given_up() -> bool:
        return (await _states(database_url)).get("failed") == 1

    await _until(given_up, 5.0)
    assert (await _states(database_url)) == {"failed": 1}
    log = (await admin.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()
    assert log["attempts"][0]["outcome"] == "failed"
    assert "ConnectError" in log["attempts"][0]["error"]
    conn = await asyncpg.connect(database_url)
    try:  # kept a week after it finished, then forgotten
        queue = DeliveryQueue(conn)
        assert await queue.prune(FINISHED_KEPT_SECONDS, 100) == 0
        await conn.execute("UPDATE webhook_deliveries SET finished_at = now() - interval '8 days'")
        assert await queue.prune(FINISHED_KEPT_SECONDS, 100) == 1
    finally:
        await conn.close()
