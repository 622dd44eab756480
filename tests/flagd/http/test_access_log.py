from __future__ import annotations

import asyncio
import io
import os
import re
import threading
import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from flagd.http.access_log import MAX_CHUNKS, AccessLogMiddleware, AccessLogWriter
from flagd.http.handlers import EXCEPTION_HANDLERS
from flagd.metrics import REGISTRY
from tests.support import TIMEOUT, running_server


async def _hello(request: Request) -> Response:
    return PlainTextResponse("hi")


def _app(writer: AccessLogWriter) -> Starlette:
    return Starlette(
        routes=[Route("/hello", _hello)],
        middleware=[Middleware(AccessLogMiddleware, writer=writer)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )


async def test_should_write_one_text_line_per_request_with_status_and_request_id() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink)
    async with (
        running_server(_app(writer)) as live,
        httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http,
    ):
        ok = await http.get("/hello")
        missing = await http.get("/missing")
    writer.flush()
    lines = sink.getvalue().splitlines()
    assert len(lines) == 2
    pattern = r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    \[(\d+)\] flagd\.access: 127\.0\.0\.1:\d+ "GET (\S+) HTTP/1\.1" (\d{3}) [\d.]+ms id=(\S+)$'
    parsed = [re.match(pattern, line) for line in lines]
    assert all(parsed), lines
    assert [(m[2], m[3], m[4]) for m in parsed if m] == [
        ("/hello", "200", ok.headers["x-request-id"]),
        ("/missing", "404", missing.headers["x-request-id"]),
    ]
    assert {m[1] for m in parsed if m} == {str(os.getpid())}


async def test_should_write_json_lines_with_the_structured_fields() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=True, stream=sink)
    async with (
        running_server(_app(writer)) as live,
        httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http,
    ):
        await http.get("/hello", headers={"X-Request-ID": "abc-1"})
    writer.flush()
    (record,) = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    assert {k: record[k] for k in ("level", "logger", "method", "path", "status", "request_id")} == {
        "level": "INFO",
        "logger": "flagd.access",
        "method": "GET",
        "path": "/hello",
        "status": 200,
        "request_id": "abc-1",
    }
    assert record["duration_ms"] >= 0
    assert record["process"] == os.getpid()


def _record(writer: AccessLogWriter, request_id: str) -> None:
    writer.record("-", "GET", "/", "1.1", 200, 0.001, request_id)


def test_should_keep_lines_until_a_flush_and_drop_and_count_past_the_bound() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink, max_buffered=3)
    dropped_before = _dropped_total()
    for request_id in "12345":
        _record(writer, request_id)
    assert sink.getvalue() == ""  # a request never formats nor writes
    assert (writer.dropped, _dropped_total() - dropped_before) == (2, 2)
    writer.flush()
    assert [line.rsplit("id=", 1)[1] for line in sink.getvalue().splitlines()] == ["1", "2", "3"]


async def test_should_write_from_its_task_periodically_and_on_shutdown() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink, flush_interval=0.05)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)
    _record(writer, "1")
    await _until(lambda: len(sink.getvalue().splitlines()) == 1)
    _record(writer, "2")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sink.getvalue().splitlines()) == 2


async def test_should_write_as_soon_as_a_batch_waits() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink, flush_interval=30.0, batch=4)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)
    for request_id in "abcd":  # a full batch wakes the task long before its 30 s interval
        _record(writer, request_id)
    await _until(lambda: len(sink.getvalue().splitlines()) == 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class _Blocked(io.StringIO):
    """A stream whose writes block until released, like a full pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(10)
        return super().write(text)


async def test_should_drop_and_count_rather_than_block_when_the_stream_blocks() -> None:
    stream = _Blocked()
    writer = AccessLogWriter(json_lines=False, stream=stream, flush_interval=0.01, batch=1)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)
    started = time.monotonic()
    for n in range(MAX_CHUNKS + 50):
        _record(writer, str(n))
        await asyncio.sleep(0)  # the loop goes on: the writing thread is stuck, not the loop
    await _until(lambda: writer.dropped > 0)
    assert time.monotonic() - started < 5
    stream.release.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    written = len(stream.getvalue().splitlines())
    assert written + writer.dropped == MAX_CHUNKS + 50
    assert written >= MAX_CHUNKS


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.01)


def _dropped_total() -> float:
    value = REGISTRY.get_sample_value("flagd_access_log_dropped_total")
    return value or 0.0


async def test_should_echo_a_well_formed_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "checkout-42.a:b"})
    assert response.headers["x-request-id"] == "checkout-42.a:b"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "line\tbreak", ""])
async def test_should_replace_a_request_id_that_could_forge_log_lines(
    client: httpx.AsyncClient, bad: str
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": bad})
    generated = response.headers["x-request-id"]
    assert generated != bad
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


async def test_should_generate_distinct_request_ids(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_should_write_client_text_in_json_lines_with_every_invisible_character_escaped() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=True, stream=sink)
    path = "/\x1b[2J\x9b31m\u202e\u2028x"  # ESC, C1 CSI, a bidi override, a line separator
    writer.record("-", "GET", path, "1.1", 404, 0.001, "r")
    writer.flush()
    line = sink.getvalue()
    assert line.endswith("\n")
    assert line[:-1].isprintable(), repr(line)
    assert orjson.loads(line)["path"] == path  # the same value, escaped only in its JSON text
