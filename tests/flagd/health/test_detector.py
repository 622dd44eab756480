"""Acceptance 2 and 4 of issue 25: 28 days of simulated traffic with a weekly pattern, with three tracking mistakes
under some event names and the same traffic without them under others; the detector stepped hour by hour with a
clock the test controls. The last two days, and so every mistake, go through POST /v1/events; the 26 days before
are written straight into `events` (the same rows the ingestion writes), which keeps the test within its budget.

Each mistake opens its alarm at the first round after its first hour completed (the documented delay: one hour,
the grace, one round), with a notification in the outbox that the server's deliverer takes to a webhook's receiver
on 127.0.0.1 (signed, each once); the traffic without
mistakes raises none; the experiment whose primary metric's event is in alarm is not recommended for shipping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.health.alarms import Alarm
from flagd.health.detector import DataHealthDetector, floor_hour
from flagd.settings import Settings
from flagd.storage.pool import init_connection
from tests.flagd.health.traffic import HOUR, Mistakes, Row, as_event, shape, traffic
from tests.flagd.notify.receiver import Receiver, listening
from tests.flagd.results.test_decisions import DOCUMENT, dataset
from tests.flagd.web.test_sessions import logged_in
from tests.support import TIMEOUT, LiveServer, backdate_phase, bearer, create_key, free_port, running_server

GRACE = timedelta(seconds=300)
Key = tuple[str, str, str]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The server's own detector sleeps through the test: the test runs one with its clock.
    return replace(
        settings,
        data_health_seconds=86_400,
        data_health_max_hours=24 * 30,
        metrics="open",
        webhook_poll_seconds=0.05,
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running_server(create_app(settings)) as live:
        yield live


def drop_hour(end: datetime) -> datetime:
    """The busiest hour of the last day that leaves two hours of drop and one after it to judge."""
    candidates = [end - k * HOUR for k in range(3, 23)]
    return max(candidates, key=lambda h: min(shape(h), shape(h + HOUR)))


async def step(
    settings: Settings, database_url: str, end: datetime
) -> tuple[dict[Key, Alarm], dict[Key, Alarm]]:
    """The detector run at each hour of the last day (plus the grace and a second), as the worker would: the
    alarms opened and resolved."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, init=init_connection)
    detector = DataHealthDetector(settings, pool)
    opened: dict[Key, Alarm] = {}
    resolved: dict[Key, Alarm] = {}
    try:
        for k in range(25):
            clock = end - (24 - k) * HOUR + GRACE + timedelta(seconds=1)
            done = await detector.run_once(clock)
            assert done is not None
            assert done.changes is not None, done
            assert done.judged_hour == floor_hour(clock - GRACE) - HOUR
            for alarm in done.changes.opened:
                assert (alarm.kind, alarm.event, alarm.subject) not in opened, alarm  # it never flapped
                opened[(alarm.kind, alarm.event, alarm.subject)] = alarm
            for alarm in done.changes.resolved:
                resolved[(alarm.kind, alarm.event, alarm.subject)] = alarm
            await detector.refresh_gauge()
    finally:
        await pool.close()
    return opened, resolved


async def post_all(sdk: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 5000):
        sent = await sdk.post("/v1/events", json={"events": events[start : start + 5000]})
        assert sent.status_code == 200, sent.text
        assert sent.json()["accepted"] == len(events[start : start + 5000]), sent.text


async def send(sdk: httpx.AsyncClient, database_url: str, rows: list[Row], cutoff: datetime) -> None:
    """Events before `cutoff` copied into the events table; the rest posted."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table(
            "events",
            columns=["event_id", "occurred_at", "received_at", "name", "unit", "properties"],
            records=[
                (i, at, at, name, unit, orjson.dumps(p).decode())
                for i, at, name, unit, p in rows
                if at < cutoff
            ],
        )
    finally:
        await conn.close()
    await post_all(sdk, [as_event(r) for r in rows if r[1] >= cutoff])


async def test_should_alarm_each_tracking_mistake_within_the_delay_with_a_notification(
    server: LiveServer,
    settings: Settings,
    database_url: str,
    sdk: httpx.AsyncClient,
    admin: httpx.AsyncClient,
) -> None:
    port = free_port()
    created = await admin.post(
        "/v1/webhooks",
        json={
            "name": "data-health",
            "url": f"http://127.0.0.1:{port}/hook",
            "kinds": ["data.volume_anomaly", "data.schema_drift", "data.duplicate_burst"],
        },
    )
    assert created.status_code == 201, created.text
    receiver = Receiver(secret=created.json()["secret"])
    end = floor_hour(datetime.now(UTC))
    start = drop_hour(end)
    mistakes = Mistakes(drop_from=start, string_from=start, double_from=start)
    await send(sdk, database_url, traffic(end, 28, mistakes), end - 48 * HOUR)
    async with listening(receiver, port):
        opened, resolved = await step(settings, database_url, end)
        for _ in range(500):  # a bound (10 s), not a timed assertion: the deliverer is woken by each one
            if len(receiver.received) >= 4:
                break
            await asyncio.sleep(0.02)
    delivered = sorted(
        (body["kind"], body["subject"], body["payload"]["state"]) for body in receiver.received.values()
    )
    assert delivered == [
        ("data.duplicate_burst", "page_view", "open"),
        ("data.schema_drift", "purchase", "open"),
        ("data.volume_anomaly", "signup", "open"),
        ("data.volume_anomaly", "signup", "resolved"),
    ], delivered
    assert receiver.bad_signatures == 0

    assert set(opened) == {
        ("volume_anomaly", "signup", ""),
        ("schema_drift", "purchase", "amount"),
        ("duplicate_burst", "page_view", ""),
    }, [a.summary for a in opened.values()]
    delay = HOUR + GRACE + timedelta(seconds=1)
    drop = opened[("volume_anomaly", "signup", "")]
    assert (drop.rule, drop.since, drop.opened_at) == ("drop", start, start + delay)
    assert drop.observed < 0.45 * drop.expected
    assert "expected for that hour of the week" in drop.summary
    drift = opened[("schema_drift", "purchase", "amount")]
    assert (drift.rule, drift.since, drift.opened_at) == ("type_change", start, start + delay)
    assert "was a string in 100%" in drift.summary
    double = opened[("duplicate_burst", "page_view", "")]
    assert (double.since, double.opened_at) == (start, start + delay)
    assert double.details["units"]
    assert all(int(u[1:]) % 10 < 3 for u in double.details["units"])  # the double-firing units
    # The drop lasted two hours: judged usual again on the third, it resolved; the others go on.
    assert set(resolved) == {("volume_anomaly", "signup", "")}
    assert resolved[("volume_anomaly", "signup", "")].resolved_at == start + 2 * HOUR + delay

    conn = await asyncpg.connect(database_url)
    try:
        notified = await conn.fetch(
            "SELECT kind, subject, payload::text FROM notifications ORDER BY created_at, id"
        )
    finally:
        await conn.close()
    assert sorted((r["kind"], r["subject"]) for r in notified) == [
        ("data.duplicate_burst", "page_view"),
        ("data.schema_drift", "purchase"),
        ("data.volume_anomaly", "signup"),
        ("data.volume_anomaly", "signup"),
    ]
    states = sorted(orjson.loads(r["payload"])["state"] for r in notified)
    assert states == ["open", "open", "open", "resolved"]

    results_key = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT, headers=bearer(results_key)) as pm:
        listed = (await pm.get("/v1/data-health", params={"state": "open"})).json()
        assert {(a["kind"], a["event"]) for a in listed["alarms"]} == {
            ("schema_drift", "purchase"),
            ("duplicate_burst", "page_view"),
        }
        assert listed["detector"]["judgedHour"] == (end - HOUR).isoformat()
        every = (await pm.get("/v1/data-health", params={"event": "signup"})).json()["alarms"]
        assert [(a["state"], a["rule"]) for a in every] == [("resolved", "drop")]
        for bad in ({"limit": "0"}, {"state": "closed"}, {"event": "no spaces"}):
            answer = await pm.get("/v1/data-health", params=bad)
            assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_parameter"), bad
        assert (await sdk.get("/v1/data-health")).status_code == 403

        scraped = (await pm.get("/metrics")).text
        assert 'flagd_data_health_open_alarms{event="purchase",kind="schema_drift"} 1.0' in scraped
        assert 'flagd_data_health_open_alarms{event="signup",kind="volume_anomaly"} 0.0' in scraped


async def test_should_raise_no_alarm_on_the_same_traffic_without_the_mistakes(
    server: LiveServer, settings: Settings, database_url: str, sdk: httpx.AsyncClient
) -> None:
    end = floor_hour(datetime.now(UTC))
    await send(sdk, database_url, traffic(end, 28, Mistakes()), end - 48 * HOUR)
    opened, resolved = await step(settings, database_url, end)
    assert opened == {}, [a.summary for a in opened.values()]
    assert resolved == {}


async def test_should_not_recommend_shipping_while_the_primary_metrics_event_is_in_alarm(
    server: LiveServer,
    settings: Settings,
    database_url: str,
    sdk: httpx.AsyncClient,
    admin: httpx.AsyncClient,
) -> None:
    """Acceptance 4: a clear winner on "purchase" (DOCUMENT's primary metric), whose `amount` became a string."""
    end = floor_hour(datetime.now(UTC))
    start = end - 10 * HOUR
    rows = [r for r in traffic(end, 15, Mistakes(string_from=start)) if r[2] == "purchase"]
    await send(sdk, database_url, rows, end)
    opened, _ = await step(settings, database_url, end)
    assert set(opened) == {("schema_drift", "purchase", "amount")}

    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/checkout/start")).status_code == 200
    events = dataset(units=3000, rates={"old": {"purchase": 0.10}, "new": {"purchase": 0.18}})
    first = min(datetime.fromisoformat(e["timestamp"]) for e in events)
    await backdate_phase(
        admin, database_url, "checkout", (datetime.now(UTC) - first).total_seconds() / 86_400 + 0.01
    )
    await post_all(sdk, events)
    results_key = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT, headers=bearer(results_key)) as pm:
        body = (await pm.get("/v1/experiments/checkout/results")).json()
    check = next(c for c in body["health"] if c["check"] == "data health")
    assert check["ok"] is False, check
    assert "was a string" in check["found"]
    assert body["decision"]["action"] == "investigate", body["decision"]
    assert "data health" in body["decision"]["failedChecks"]

    browser = await logged_in(server, results_key)
    try:
        page = await browser.get("/experiments/checkout")
        assert page.status_code == 200
        assert "was a string in 100%" in page.text
        assert "Ship " not in page.text
        health = await browser.get("/data-health")
        assert health.status_code == 200
        assert 'data-event="purchase"' in health.text
    finally:
        await browser.aclose()
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as anonymous:
        assert (await anonymous.get("/data-health")).status_code == 303
