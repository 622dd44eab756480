"""One access-log line per request, with a request id, formatted and written off the request path.

A request only appends a tuple of what its line will say (`AccessLogWriter.record`, about a microsecond); the
writer's task (`run`) turns them into lines every FLUSH_INTERVAL seconds, or as soon as BATCH are waiting, a
chunk of at most BATCH lines at a time so that formatting never holds the event loop for long, and hands the
text to a thread that writes it: a stderr that blocks (a full pipe, a stopped terminal) stalls that thread,
never a request. Both buffers are bounded: at most `max_buffered` lines wait to be formatted and at most
MAX_CHUNKS chunks to be written; a line past either bound is dropped and counted in
`flagd_access_log_dropped_total`, so a log that cannot keep up costs lines, not memory or latency.

Lines go through this writer, not the `logging` module: building a LogRecord, formatting its time and one write
per request cost more than evaluating a flag (bench/ofrep.py measured about 65 us a request that way). The lines
have the same format as the other log lines (text or JSON, as FLAGD_LOG_FORMAT says).

Whatever a line copies from the request (the path, the method) is escaped first (flagd.text): control and other
non-printable characters, quotes and backslashes become `\\xNN`-style escapes, so no request can end a line
early, forge one or send the terminal an escape sequence; JSON lines keep the values as they came, with every
non-printable character as a `\\uXXXX` escape.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import re
import secrets
import sys
import threading
import time
from typing import TextIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagd.metrics import ACCESS_LOG_DROPPED
from flagd.text import escape as escape  # the shared escape (flagd.text); re-exported for older imports
from flagd.text import escape_json

REQUEST_ID_HEADER = b"x-request-id"
# A caller's request id is echoed only if it is short and printable, so it cannot forge log lines.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
FLUSH_INTERVAL = 0.1
BATCH = 256
MAX_BUFFERED = 20_000
MAX_CHUNKS = 64
SHUTDOWN_WRITE_SECONDS = 2.0

Client = tuple[str, int] | str | None
Entry = tuple[float, Client, str, str, str, int, float, str]
"""What a line says: (time, client, method, path, HTTP version, status, seconds taken, request id)."""


class AccessLogWriter:
    def __init__(
        self,
        *,
        json_lines: bool,
        stream: TextIO | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        max_buffered: int = MAX_BUFFERED,
        batch: int = BATCH,
    ) -> None:
        self._json = json_lines
        self._stream = stream
        self._flush_interval = flush_interval
        self._max_buffered = max_buffered
        self._batch = batch
        self._entries: list[Entry] = []
        self._pid = os.getpid()
        self._second = self._millisecond = -1
        self._date = self._stamp = ""
        self._wake: asyncio.Event | None = None
        self._chunks: queue.Queue[str | None] = queue.Queue(MAX_CHUNKS)
        self.dropped = 0

    def record(
        self,
        client: Client,
        method: str,
        path: str,
        http_version: str,
        status: int,
        seconds: float,
        request_id: str,
    ) -> None:
        """Keep one request's line to be written (or drop and count it when `max_buffered` are waiting)."""
        entries = self._entries
        if len(entries) >= self._max_buffered:
            self._drop(1)
            return
        entries.append((time.time(), client, method, path, http_version, status, seconds, request_id))
        if len(entries) == self._batch and self._wake is not None:
            self._wake.set()

    def flush(self) -> None:
        """Format and write every waiting line now, on this thread (tests, and the end of `run`)."""
        text = self._format(len(self._entries))
        if text:
            self._write(text)

    async def run(self) -> None:
        """Format lines in chunks and hand them to the writing thread until cancelled; then write what is left
        (waiting at most SHUTDOWN_WRITE_SECONDS for the thread)."""
        self._wake = asyncio.Event()
        thread = threading.Thread(target=self._writing, name="flagd-access-log", daemon=True)
        thread.start()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._wake.wait()
                self._wake.clear()
                while self._entries:
                    text = self._format(self._batch)
                    try:
                        self._chunks.put_nowait(text)
                    except queue.Full:
                        self._drop(text.count("\n"))
                    await asyncio.sleep(0)  # a chunk at a time: requests go on between them
        finally:
            self._wake = None
            with contextlib.suppress(queue.Full):
                self._chunks.put(None, timeout=SHUTDOWN_WRITE_SECONDS)
            await asyncio.to_thread(thread.join, SHUTDOWN_WRITE_SECONDS)
            if not thread.is_alive():
                self.flush()

    def _writing(self) -> None:
        while (text := self._chunks.get()) is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed or broken stderr: the lines are lost
                self._write(text)

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(text)
        stream.flush()

    def _drop(self, lines: int) -> None:
        self.dropped += lines
        ACCESS_LOG_DROPPED.inc(lines)

    def _format(self, count: int) -> str:
        entries = self._entries[:count]
        del self._entries[:count]
        return self._json_lines(entries) if self._json else self._text_lines(entries)

    def _text_lines(self, entries: list[Entry]) -> str:
        lines = []
        head = f" INFO    [{self._pid}] flagd.access: "
        words: dict[tuple[str, str], tuple[str, str]] = {}
        for at, client, method, path, http_version, status, seconds, request_id in entries:
            escaped = words.get((method, http_version))
            if escaped is None:
                escaped = words[method, http_version] = (
                    escape(method, quotes=True),
                    escape(http_version, quotes=True),
                )
            if not path.isprintable() or '"' in path or "\\" in path:
                path = escape(path, quotes=True)
            lines.append(
                f'{self._timestamp(at)}{head}{_client(client)} "{escaped[0]} {path} HTTP/{escaped[1]}" '
                f"{status} {seconds * 1000.0:.2f}ms id={request_id}\n"
            )
        return "".join(lines)

    def _json_lines(self, entries: list[Entry]) -> str:
        lines = []
        for at, client, method, path, http_version, status, seconds, request_id in entries:
            address = _client(client)
            duration_ms = seconds * 1000.0
            message = f'{address} "{method} {path} HTTP/{http_version}" {status} {duration_ms:.2f}ms id={request_id}'
            fields = {
                "time": self._timestamp(at),
                "level": "INFO",
                "logger": "flagd.access",
                "process": self._pid,
                "message": message,
                "client": address,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 3),
                "request_id": request_id,
            }
            lines.append(escape_json(orjson.dumps(fields).decode()))
        return "\n".join(lines) + "\n" if lines else ""

    def _timestamp(self, now: float) -> str:
        # The same form as logging's asctime ("2026-11-24 00:08:27,377"): the date and time formatted once a
        # second, the whole stamp once a millisecond (many lines share one).
        millisecond = int(now * 1000)
        if millisecond != self._millisecond:
            self._millisecond = millisecond
            second, milliseconds = divmod(millisecond, 1000)
            if second != self._second:
                self._second = second
                self._date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._stamp = f"{self._date},{milliseconds:03d}"
        return self._stamp


def _client(client: Client) -> str:
    if client is None:
        return "-"
    if isinstance(client, str):
        return client
    return f"{client[0]}:{client[1]}"


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, writer: AccessLogWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = request_id_of(scope)
        id_header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.writer.record(
                scope.get("client"),
                scope["method"],
                scope["path"],
                scope.get("http_version", "1.1"),
                status,
                time.perf_counter() - started,
                request_id,
            )


# Generated ids: 16 random hex digits per process, then a counter; unique without a syscall per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is safe to echo and log, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    return f"{_ID_PREFIX}{next(_id_counter):016x}"
