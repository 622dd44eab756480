"""The worker's change streams served together: bounded mailboxes, one key check per credential, slow clients."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from flagd.http.transport import SLOW_STREAM
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


async def test_should_drop_a_stream_that_has_not_taken_what_it_was_given_in_time() -> None:
    aborted: list[str] = []
    mailbox = Mailbox("key", retry_ms=1000, slow_seconds=0.05)
    mailbox.abort = aborted.append
    mailbox.offer(1, b"id: 1\r\n")  # its task is stuck writing to a client that does not read
    mailbox.ping(b": ping\r\n\r\n")
    assert aborted == []
    await asyncio.sleep(0.1)
    mailbox.offer(2, b"id: 2\r\n")
    assert aborted == [SLOW_STREAM]
    assert await mailbox.next() is None


async def test_should_keep_a_stream_that_takes_what_it_is_given() -> None:
    mailbox = Mailbox("key", retry_ms=1000, slow_seconds=0.05)
    mailbox.abort = lambda reason: pytest.fail(f"dropped: {reason}")
    for version in range(1, 4):
        mailbox.offer(version, b"id: %d\r\n" % version)
        assert await mailbox.next() == b"id: %d\r\nretry: 1000\r\n\r\n" % version
        await asyncio.sleep(0.06)
