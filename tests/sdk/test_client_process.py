"""The SDK inside its host process: importing it starts nothing and pulls in no server dependency; a
forked child (gunicorn --preload) restarts its own background work; the OpenFeature provider."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import httpx
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.track import TrackingEventDetails

from flagd_sdk import Client
from flagd_sdk.openfeature import FlagdProvider
from tests.sdk.test_client import DOCUMENT, start_experiment
from tests.support import LiveServer

SERVER_ONLY = ("flagd", "starlette", "uvicorn", "asyncpg", "pgserver", "numpy", "scipy", "jinja2", "yaml")


def test_should_import_without_server_dependencies_or_threads() -> None:
    code = (
        "import sys, threading, flagd_sdk, flagd_sdk.client; "
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({SERVER_ONLY!r})); "
        "print(threading.active_count(), loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 []"


async def test_should_restart_its_background_work_in_a_forked_child(
    server: LiveServer, admin: httpx.AsyncClient, sdk_key: str, conn: asyncpg.Connection
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    client = await asyncio.to_thread(Client, server.url, sdk_key, init_timeout=10.0, flush_seconds=0.1)
    try:

        def fork_and_track() -> int:
            pid = os.fork()
            if pid == 0:  # the child: the parent's threads did not come along; the client's own restart
                try:
                    client.track("forked", "child-unit", value=1.0)
                    delivered = client.flush(20.0) and client.status()["sent"] >= 1
                finally:
                    os._exit(0 if delivered else 3)
            return os.waitpid(pid, 0)[1]

        status = await asyncio.to_thread(fork_and_track)
        assert os.waitstatus_to_exitcode(status) == 0
        assert await conn.fetchval("SELECT count(*) FROM events WHERE name = 'forked'") == 1
    finally:
        await asyncio.to_thread(client.close)


async def test_should_evaluate_and_track_through_openfeature(
    server: LiveServer, admin: httpx.AsyncClient, sdk_key: str, conn: asyncpg.Connection
) -> None:
    await start_experiment(admin)
    client = await asyncio.to_thread(Client, server.url, sdk_key, init_timeout=10.0, flush_seconds=0.1)
    provider = FlagdProvider(client)
    api.set_provider(provider)
    try:
        flags = api.get_client()
        context = EvaluationContext("of-user", {"country": "NL"})
        assert flags.get_boolean_value("banner", True, context) is False
        details = flags.get_string_details("checkout", "x", context)
        assert details.value in ("old", "new")
        assert details.flag_metadata["experimentKey"] == "one-page"
        assert flags.get_boolean_details("nope", True, context).error_code == "FLAG_NOT_FOUND"
        flags.track("purchase", context, TrackingEventDetails(value=9.5, attributes={"plan": "pro"}))
        assert await asyncio.to_thread(client.flush, 20.0)
        row = await conn.fetchrow(
            "SELECT unit, value, properties::text AS p FROM events WHERE name = 'purchase'"
        )
        assert row is not None
        assert (row["unit"], row["value"]) == ("of-user", 9.5)
        assert await conn.fetchval("SELECT variant FROM exposures WHERE unit = 'of-user'") == details.value
    finally:
        await asyncio.to_thread(api.shutdown)
