"""Config distribution: the flag set with its ETag, and the change stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from flagd.app import create_app
from flagd.settings import Settings
from tests.support import bearer, flag_definition, running_server


async def test_should_serve_the_flag_set_with_an_etag_and_304_when_unchanged(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await admin.post("/v1/admin/flags", json={"key": "a", "definition": flag_definition()})
    first = await sdk.get("/v1/flags")
    assert first.status_code == 200
    assert first.json() == {"flags": {"a": flag_definition()}}
    etag = first.headers["etag"]
    unchanged = await sdk.get("/v1/flags", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    await admin.put(
        "/v1/admin/flags/a",
        json={"definition": flag_definition(defaultVariant="on")},
        headers={"If-Match": "1"},
    )
    for _ in range(100):  # the reload follows the NOTIFY
        changed = await sdk.get("/v1/flags", headers={"If-None-Match": etag})
        if changed.status_code == 200:
            break
        await asyncio.sleep(0.02)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["flags"]["a"]["defaultVariant"] == "on"


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield orjson.loads(line[5:].strip())


async def test_should_stream_the_current_version_then_every_change(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    async with sdk.stream("GET", "/v1/flags/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        initial = await asyncio.wait_for(anext(stream), 5)
        assert initial["type"] == "refetchEvaluation"
        created = await admin.post("/v1/admin/flags", json={"key": "a", "definition": flag_definition()})
        assert created.status_code == 201
        change = await asyncio.wait_for(anext(stream), 5)
        assert change["version"] == initial["version"] + 1
        assert change["etag"] == f'"cfg-{change["version"]}"'


async def test_should_send_heartbeats_on_a_quiet_stream(sdk: httpx.AsyncClient) -> None:
    async with sdk.stream("GET", "/v1/flags/stream") as response:
        lines = response.aiter_lines()
        seen: list[str] = []
        while not any(line.startswith(":") for line in seen):
            seen.append(await asyncio.wait_for(anext(lines), 5))
    assert any(line.startswith(": ping") or line.startswith(":") for line in seen)
    # Every event suggests a reconnection delay, for when a shutdown or a deploy ends the stream.
    assert "retry: 1000" in seen


async def test_should_end_open_streams_with_a_complete_response_at_shutdown(
    settings: Settings, sdk_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    opened = asyncio.Event()

    async def read_to_the_end(url: str) -> list[str]:
        # httpx raises RemoteProtocolError if the connection closes before the chunked body's last chunk.
        async with (
            httpx.AsyncClient(base_url=url, headers=bearer(sdk_key), timeout=30.0) as http,
            http.stream("GET", "/v1/flags/stream") as response,
        ):
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                opened.set()
            return lines

    async with running_server(create_app(settings)) as live:
        reading = asyncio.create_task(read_to_the_end(live.url))
        await asyncio.wait_for(opened.wait(), 5)
    lines = await asyncio.wait_for(reading, 5)  # the server has stopped; so has the stream
    assert any(line.startswith("data:") for line in lines)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
