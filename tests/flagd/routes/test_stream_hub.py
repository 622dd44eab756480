"""The worker's change streams served together: bounded mailboxes, one key check per credential, slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx

from flagd.http.transport import ABORT_EXTENSION, SLOW_STREAM
from flagd.routes.config_stream import ChangeStreamResponse
from flagd.routes.stream_hub import Mailbox
from tests.flagd.routes.test_config_stream import events
from tests.support import flag_definition


async def test_should_hold_only_the_newest_event_for_a_stream_that_has_not_read() -> None:
    mailbox = Mailbox("key", retry_ms=1000)
    for version in range(1, 1001):
        mailbox.offer(version, b"id: %d\r\ndata: {}\r\n" % version)
        mailbox.ping(b": ping\r\n\r\n")
    assert await mailbox.next() == b"id: 1000\r\ndata: {}\r\nretry: 1000\r\n\r\n"
    mailbox.ping(b": ping\r\n\r\n")
    assert await mailbox.next() == b": ping\r\n\r\n"
    mailbox.end()
    assert await mailbox.next() is None


async def test_should_skip_the_version_a_stream_already_has() -> None:
    mailbox = Mailbox("key", retry_ms=5)
    mailbox.offer(3, b"id: 3\r\n")
    assert await mailbox.next() == b"id: 3\r\nretry: 5\r\n\r\n"
    mailbox.offer(3, b"id: 3\r\n")
    mailbox.end()
    assert await mailbox.next() is None


async def test_should_deliver_a_change_to_many_streams_of_one_key(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    async def first_two(started: asyncio.Event, count: list[int]) -> list[int]:
        async with sdk.stream("GET", "/v1/flags/stream") as response:
            stream = events(response)
            versions = [(await asyncio.wait_for(anext(stream), 5))["version"]]
            count.append(1)
            if len(count) == 20:
                started.set()
            versions.append((await asyncio.wait_for(anext(stream), 10))["version"])
            return versions

    started, count = asyncio.Event(), list[int]()
    readers = [asyncio.create_task(first_two(started, count)) for _ in range(20)]
    await asyncio.wait_for(started.wait(), 10)
    created = await admin.post("/v1/admin/flags", json={"key": "a", "definition": flag_definition()})
    assert created.status_code == 201
    seen = await asyncio.gather(*readers)
    assert {second - first for first, second in seen} == {1}


async def test_should_drop_a_client_that_does_not_read_and_count_it() -> None:
    aborted: list[str] = []
    disconnected = asyncio.Event()
    sent: list[MutableMapping[str, Any]] = []

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(10):
            yield b"data: %d\r\n\r\n" % n

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and len(sent) > 2:
            await asyncio.Event().wait()  # the client's socket is full: this write never completes

    async def receive() -> dict[str, Any]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    def abort(reason: str) -> None:
        aborted.append(reason)
        disconnected.set()

    scope = {"type": "http", "method": "GET", "extensions": {ABORT_EXTENSION: abort}}
    response = ChangeStreamResponse(chunks(), ping=0, send_timeout=0.2)
    await asyncio.wait_for(response(scope, receive, send), 5)
    assert aborted == [SLOW_STREAM]
    assert [m["body"] for m in sent[1:]] == [b"data: 0\r\n\r\n", b"data: 1\r\n\r\n"]
