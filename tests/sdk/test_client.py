"""The SDK's clients against a live flagd: flag changes arrive, exposures are logged once, events are
delivered exactly once through an outage.

The sync `Client` runs threads: in these async tests its blocking calls (construction, flush, close)
go through `asyncio.to_thread`, so the in-process server keeps answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.settings import Settings
from flagd_sdk import AsyncClient, Client
from flagd_sdk.evaluation import FlagType, Reason
from tests.flagd.ingest.test_faults import serve
from tests.support import TIMEOUT, LiveServer, create_key, free_port, running_server

T = TypeVar("T")

DOCUMENT: dict[str, Any] = {
    "flags": {
        "checkout": {
            "state": "ENABLED",
            "variants": {"old": "old", "new": "new"},
            "defaultVariant": "old",
        },
        "banner": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"},
    },
    "metrics": {"bought": {"type": "conversion", "event": "purchase", "direction": "increase"}},
    "experiments": {
        "one-page": {
            "flag": "checkout",
            "variants": {"old": 1, "new": 1},
            "metrics": [{"metric": "bought", "role": "primary"}],
        }
    },
}


async def start_experiment(admin: httpx.AsyncClient) -> None:
    """The flag set stored and its experiment running."""
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/one-page/start")).status_code == 200


async def until(condition: Callable[[], T | None], what: str, within: float = 15.0) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False:
            return value
        await asyncio.sleep(0.02)  # polling the client's state; nothing asserts on the delay
    raise AssertionError(f"{what} within {within} s")


async def test_should_log_each_units_exposure_once_over_100000_evaluations(
    server: LiveServer, admin: httpx.AsyncClient, sdk_key: str, conn: asyncpg.Connection
) -> None:
    await start_experiment(admin)
    client = await asyncio.to_thread(Client, server.url, sdk_key, init_timeout=10.0, flush_seconds=0.2)
    try:
        assert client.status()["ready"]
        variants = {}
        for i in range(100_000):
            unit = f"user-{i % 10_000}"
            variants[unit] = client.variant("checkout", unit, {"platform": "ios" if i % 2 else "web"})
        assert set(variants.values()) == {"old", "new"}
        assert await asyncio.to_thread(client.flush, 30.0)
        status = client.status()
        assert status["sent"] == 10_000, str(status)  # one exposure per unit left the client
        assert status["dropped"] == status["rejected"] == 0
        stored = await conn.fetch("SELECT unit, variant FROM exposures WHERE experiment = 'one-page'")
        assert {r["unit"]: r["variant"] for r in stored} == variants
        # Not an experiment flag: no exposure.
        assert client.bool_value("banner", "user-1", True) is False
        assert client.status()["queued"] == 0
    finally:
        await asyncio.to_thread(client.close)


async def test_should_follow_flag_changes_over_the_stream(
    server: LiveServer, admin: httpx.AsyncClient, sdk_key: str
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    async with AsyncClient(server.url, sdk_key, init_timeout=10.0) as client:
        assert client.bool_value("banner", "u1", True) is False
        await until(lambda: client.status()["connected"], "the stream connected")
        changed = dict(DOCUMENT["flags"]["banner"], defaultVariant="on")
        version = (await admin.get("/v1/admin/flags/banner")).headers["etag"]
        put = await admin.put(
            "/v1/admin/flags/banner", json={"definition": changed}, headers={"If-Match": version}
        )
        assert put.status_code == 200, put.text
        await until(lambda: client.bool_value("banner", "u1", False), "the change arrived")
        details = client.details("banner", "u1", False)
        assert (details.value, details.variant, details.reason) == (True, "on", Reason.STATIC)


async def test_should_serve_defaults_or_its_bootstrap_file_without_a_server(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    client = await asyncio.to_thread(Client, f"http://127.0.0.1:{port}", "flagd_x", init_timeout=0.3)
    try:
        details = client.details("banner", "u1", True)
        assert details.value is True
        assert details.reason is Reason.ERROR
        assert details.error_code == "PROVIDER_NOT_READY"
        assert client.status()["ready"] is False
    finally:
        await asyncio.to_thread(client.close)
    bootstrap = tmp_path / "flags.json"
    bootstrap.write_bytes(orjson.dumps({"flags": DOCUMENT["flags"]}))
    offline = await asyncio.to_thread(
        Client, f"http://127.0.0.1:{port}", "flagd_x", init_timeout=0.3, bootstrap=bootstrap
    )
    try:
        assert offline.string_value("checkout", "u1", "x") == "old"
    finally:
        await asyncio.to_thread(offline.close)


async def test_should_keep_serving_through_an_outage_and_deliver_queued_events_exactly_once(
    database_url: str, admin_key: str, tmp_path: Path, conn: asyncpg.Connection
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flagd = serve(database_url, port, tmp_path / "first.log")
    await asyncio.to_thread(flagd.wait_ready, base)
    sdk_key = await create_key(database_url, Scope.SDK, "app")
    async with httpx.AsyncClient(
        timeout=TIMEOUT, base_url=base, headers={"Authorization": f"Bearer {admin_key}"}
    ) as admin:
        assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    client = await asyncio.to_thread(
        Client,
        base,
        sdk_key,
        init_timeout=10.0,
        flush_seconds=0.1,
        reconnect_seconds=0.1,
        max_reconnect_seconds=0.5,
    )
    try:
        assert client.string_value("checkout", "u1", "x") == "old"
        await asyncio.to_thread(flagd.stop)
        for i in range(300):
            client.track("purchase", f"user-{i}", value=float(i))
        await asyncio.sleep(0.5)  # the client tries to deliver, and fails, while the server is down
        assert client.string_value("checkout", "u1", "x") == "old"  # the last known flag set
        assert client.status()["sent"] == 0
        flagd = serve(database_url, port, tmp_path / "second.log")
        await asyncio.to_thread(flagd.wait_ready, base)
        assert await asyncio.to_thread(client.flush, 30.0)
        assert client.status()["sent"] == 300
        stored = await conn.fetchval("SELECT count(*) FROM events WHERE name = 'purchase'")
        assert stored == 300
        await until(lambda: client.status()["connected"], "the stream came back")
    finally:
        await asyncio.to_thread(client.close)
        await asyncio.to_thread(flagd.stop)


async def test_should_evaluate_remotely_through_ofrep_when_asked(
    server: LiveServer, admin: httpx.AsyncClient, sdk_key: str, conn: asyncpg.Connection
) -> None:
    await start_experiment(admin)
    client = await asyncio.to_thread(Client, server.url, sdk_key, remote=True)
    try:

        def evaluate() -> list[Any]:
            return [
                client.details("checkout", "remote-user", "x"),
                client.bool_value("banner", "remote-user", True),
                client.details("banner", "remote-user", "x", flag_type=FlagType.STRING),
                client.details("nope", "remote-user", 3),
            ]

        checkout, banner, mismatch, missing = await asyncio.to_thread(evaluate)
        assert checkout.value in ("old", "new")
        assert checkout.flag_metadata["experimentKey"] == "one-page"
        assert banner is False
        assert (mismatch.value, mismatch.error_code) == ("x", "TYPE_MISMATCH")
        assert (missing.value, missing.error_code) == (3, "FLAG_NOT_FOUND")
        assert client.status()["queued"] == 0  # the server records the exposure, not the client

        async def exposed() -> str | None:
            variant: str | None = await conn.fetchval(
                "SELECT variant FROM exposures WHERE unit = 'remote-user'"
            )
            return variant

        for _ in range(300):  # the server writes its exposures in the background: up to 15 s
            stored = await exposed()
            if stored is not None:
                break
            await asyncio.sleep(0.05)
        assert stored == checkout.value
    finally:
        await asyncio.to_thread(client.close)
    dead = await asyncio.to_thread(
        Client, f"http://127.0.0.1:{free_port()}", sdk_key, remote=True, request_timeout=0.5
    )
    try:
        failed = await asyncio.to_thread(dead.details, "banner", "u", True)
        assert (failed.value, failed.reason, failed.error_code) == (True, Reason.ERROR, "GENERAL")
    finally:
        await asyncio.to_thread(dead.close)


def established(port: int) -> int:
    """TCP connections this machine holds open on the server side of 127.0.0.1:`port`."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[1] == local and row[3] == "01")


async def test_should_end_its_change_stream_when_closed(settings: Settings, sdk_key: str) -> None:
    quiet = dataclasses.replace(settings, sse_heartbeat_seconds=60.0)  # no heartbeat to wake the reader
    async with running_server(create_app(quiet)) as live:
        client = await asyncio.to_thread(Client, live.url, sdk_key, init_timeout=10.0)
        try:
            await until(lambda: client.status()["connected"], "the stream connected")
            assert established(live.port) == 1
        finally:
            await asyncio.to_thread(client.close)
        await until(lambda: established(live.port) == 0, "the server saw the stream end")


async def test_should_say_in_words_what_the_server_answered_to_a_wrong_key(server: LiveServer) -> None:
    wrong = "flagd_0123456789_" + "x" * 43
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        refusal = (await http.get("/v1/flags", headers={"Authorization": f"Bearer {wrong}"})).json()
    said = f"the server refused the sdk key (401 unauthorized): {refusal['error']['message']}"
    client = await asyncio.to_thread(Client, server.url, wrong, init_timeout=0.5)
    try:
        await until(lambda: client.status()["last_error"], "the server answered")
        details = client.details("banner", "u1", True)
        assert (details.value, details.error_code) == (True, "PROVIDER_NOT_READY")
        assert (
            details.error_message
            == f"the flag set has not arrived: GET /v1/flags: {said}; the default was returned"
        )
        assert client.status()["last_error"] == f"GET /v1/flags: {said}"
    finally:
        await asyncio.to_thread(client.close)
    remote = await asyncio.to_thread(Client, server.url, wrong, remote=True)
    try:
        failed = await asyncio.to_thread(remote.details, "banner", "u1", True)
        assert (failed.value, failed.reason, failed.error_code) == (True, Reason.ERROR, "GENERAL")
        assert failed.error_message == said
    finally:
        await asyncio.to_thread(remote.close)
