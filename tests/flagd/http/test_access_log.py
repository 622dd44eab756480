from __future__ import annotations

import asyncio
import io
import os
import re

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from flagd.http.access_log import AccessLogMiddleware, AccessLogWriter
from flagd.http.handlers import EXCEPTION_HANDLERS
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
    writer.record(
        client="-",
        method="GET",
        path="/",
        http_version="1.1",
        status=200,
        duration_ms=1.0,
        request_id=request_id,
    )


def test_should_write_in_batches_and_when_the_buffer_is_full() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink, max_buffered=3)
    _record(writer, "1")
    _record(writer, "2")
    assert sink.getvalue() == ""
    _record(writer, "3")
    assert len(sink.getvalue().splitlines()) == 3


async def test_should_flush_periodically_and_on_shutdown() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink, flush_interval=0.01)
    task = asyncio.create_task(writer.run())
    _record(writer, "1")
    await asyncio.sleep(0.05)
    assert len(sink.getvalue().splitlines()) == 1
    _record(writer, "2")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sink.getvalue().splitlines()) == 2


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
    writer.record(
        client="-", method="GET", path=path, http_version="1.1", status=404, duration_ms=1.0, request_id="r"
    )
    writer.flush()
    line = sink.getvalue()
    assert line.endswith("\n")
    assert line[:-1].isprintable(), repr(line)
    assert orjson.loads(line)["path"] == path  # the same value, escaped only in its JSON text
