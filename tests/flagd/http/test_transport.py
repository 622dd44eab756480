"""The transport under the app: unfinished requests are closed by their deadline, connections past the cap make
room or get 503, the open-file limit is raised at start, a client that goes away costs one log line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from flagd.app import create_app
from flagd.http.transport import GuardedProtocol, server_options
from flagd.metrics import REGISTRY
from flagd.settings import Settings
from tests.support import TIMEOUT, LiveServer, bearer, flagd_env, free_port, running_server

# Far longer than any deadline these tests set: reaching it means the server never closed the connection.
NEVER = 15.0


def guarded_server(settings: Settings) -> AbstractAsyncContextManager[LiveServer]:
    """The app on 127.0.0.1 behind the transport `flagd serve` runs."""
    # A test that fails must not wait for ever, at shutdown, on a connection it left open.
    return running_server(create_app(settings), timeout_graceful_shutdown=5, **server_options(settings))


Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Opens raw connections to 127.0.0.1:port; all are closed after the test."""
    writers: list[asyncio.StreamWriter] = []

    async def open_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield open_connection
    for writer in writers:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def closed_count(reason: str) -> float:
    return REGISTRY.get_sample_value("flagd_connections_closed_total", {"reason": reason}) or 0.0


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    return await asyncio.wait_for(reader.read(), NEVER)


async def test_should_close_connections_whose_request_headers_never_complete(
    settings: Settings, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flagd.http.transport")
    strict = dataclasses.replace(settings, header_timeout_seconds=0.5)
    before = closed_count("header_timeout")
    async with guarded_server(strict) as live:
        silent = [await connect(live.port) for _ in range(20)]
        reader, writer = await connect(live.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:  # a header byte now and then: the deadline is not pushed back
            for _ in range(int(NEVER / 0.1)):
                writer.write(b"X")
                await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        try:
            assert await until_closed(reader) == b""
            for silent_reader, _ in silent:
                assert await until_closed(silent_reader) == b""
        finally:
            trickling.cancel()
        # A request that arrives in time is answered as ever.
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
            assert (await http.get("/healthz")).status_code == 200
    assert closed_count("header_timeout") - before == 21
    lines = [r.getMessage() for r in caplog.records if r.name == "flagd.http.transport"]
    assert 1 <= len(lines) <= 2, lines  # once at the first closing, then a summary per interval
    assert "FLAGD_HEADER_TIMEOUT_SECONDS" in lines[0]


async def test_should_close_a_request_whose_body_never_completes(
    settings: Settings, sdk_key: str, connect: Connect
) -> None:
    strict = dataclasses.replace(settings, body_timeout_seconds=0.5)
    before = closed_count("body_timeout")
    async with guarded_server(strict) as live:
        reader, writer = await connect(live.port)
        writer.write(
            b"POST /ofrep/v1/evaluate/flags/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + sdk_key.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        assert await until_closed(reader) == b""
    assert closed_count("body_timeout") - before == 1


async def test_should_check_no_deadline_of_a_connection_whose_response_is_being_written(
    settings: Settings, sdk_key: str, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A change stream waits for nothing from its client: its timer lapses instead of firing every
    # check_seconds (10,000 streams had 1,000 timers a second, which bunched into 100 ms stalls).
    strict = dataclasses.replace(settings, header_timeout_seconds=0.2, body_timeout_seconds=0.2)
    checks = 0
    check = GuardedProtocol._check_deadline

    def counted(self: GuardedProtocol) -> None:
        nonlocal checks
        checks += 1
        check(self)

    monkeypatch.setattr(GuardedProtocol, "_check_deadline", counted)
    streams = 10
    async with guarded_server(strict) as live:
        for _ in range(streams):
            reader, writer = await connect(live.port)
            writer.write(
                b"GET /v1/flags/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                b"Authorization: Bearer " + sdk_key.encode() + b"\r\n\r\n"
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200"), head
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)  # the first event, whole
        checked = checks
        await asyncio.sleep(2.0)  # ten check periods
        during = checks - checked
        assert during <= streams, f"{during} deadline checks of {streams} open streams in 2 s"
    # A connection that waits for its next request still has its deadline.
    before = closed_count("header_timeout")
    async with guarded_server(strict) as live:
        reader, writer = await connect(live.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = await until_closed(reader)  # answered, then closed when no next request came in time
        assert answered.startswith(b"HTTP/1.1 200")
    assert closed_count("header_timeout") - before == 1


async def test_should_close_the_longest_waiting_connection_to_make_room_at_the_cap(
    settings: Settings, connect: Connect
) -> None:
    capped = dataclasses.replace(settings, max_connections=3)
    before = closed_count("evicted")
    async with guarded_server(capped) as live:
        oldest, _ = await connect(live.port)
        await asyncio.sleep(0.05)  # so the order of arrival is certain
        newer = [await connect(live.port) for _ in range(2)]
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
            assert (await http.get("/healthz")).status_code == 200
        assert await until_closed(oldest) == b""
        for reader, writer in newer:  # still open: they answer a request
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await until_closed(reader)).startswith(b"HTTP/1.1 200")
    assert closed_count("evicted") - before >= 1


async def test_should_answer_503_past_the_cap_when_every_connection_has_a_request_in_flight(
    settings: Settings, sdk_key: str
) -> None:
    capped = dataclasses.replace(settings, max_connections=2)
    before = closed_count("refused")
    async with (
        guarded_server(capped) as live,
        httpx.AsyncClient(base_url=live.url, headers=bearer(sdk_key), timeout=NEVER) as first,
        httpx.AsyncClient(base_url=live.url, headers=bearer(sdk_key), timeout=NEVER) as second,
        first.stream("GET", "/v1/flags/stream") as one,
        second.stream("GET", "/v1/flags/stream") as two,
    ):
        assert (one.status_code, two.status_code) == (200, 200)
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as third:
            refused = await third.get("/healthz")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "too_many_connections"
        assert "FLAGD_MAX_CONNECTIONS" in refused.json()["error"]["message"]
    assert closed_count("refused") - before == 1


async def test_should_log_one_line_when_a_client_goes_away_before_its_request_is_complete(
    settings: Settings, sdk_key: str, admin_key: str, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with guarded_server(settings) as live:
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url, headers=bearer(admin_key)) as admin:
            big = {
                f"f{i}": {"state": "ENABLED", "variants": {"on": "x" * 2000}, "defaultVariant": "on"}
                for i in range(300)
            }
            assert (await admin.put("/v1/admin/flag-set", json={"flags": big})).status_code == 200
        # Half a body, then gone.
        reader, writer = await connect(live.port)
        writer.write(
            b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + sdk_key.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()
        # A 600 kB answer, read for a few bytes, then gone.
        reader, writer = await connect(live.port)
        writer.write(
            b"GET /v1/flags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + sdk_key.encode() + b"\r\n\r\n"
        )
        assert (await reader.read(100)).startswith(b"HTTP/1.1 200")
        writer.transport.abort()
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:  # the server answers on
            assert (await http.get("/healthz")).status_code == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    gone = [r.getMessage() for r in caplog.records if "closed the connection before" in r.getMessage()]
    assert gone == [
        "POST /ofrep/v1/evaluate/flags: the client closed the connection before the request was complete"
    ]


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-file limit for {pid}")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _serve_with_open_file_limit(
    soft: int, hard: int, database_url: str, log: Path
) -> subprocess.Popen[bytes]:
    """`flagd serve --workers 2` started with the open-file limit soft:hard."""
    command = ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-m", "flagd", "serve"]
    env = flagd_env(DATABASE_URL=database_url, FLAGD_ACCESS_LOG="false")
    with open(log, "wb") as output:
        return subprocess.Popen(
            [*command, "--port", str(free_port()), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_should_raise_the_open_file_soft_limit_to_the_hard_limit_in_serve_and_its_workers(
    database_url: str, tmp_path: Path
) -> None:
    soft, hard = 256, 4096
    log = tmp_path / "serve.log"
    server = _serve_with_open_file_limit(soft, hard, database_url, log)
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        children = _children(server.pid)  # the workers (and multiprocessing's resource tracker)
        assert len(children) >= 2
        assert [_soft_limit(pid) for pid in [server.pid, *children]] == [hard] * (1 + len(children))
        assert f"raised the open-file limit from {soft} to {hard}" in log.read_text()
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)
