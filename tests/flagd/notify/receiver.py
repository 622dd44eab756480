"""A webhook receiver for the tests and the bench: a real HTTP/1.1 server on 127.0.0.1 that checks every
signature, keeps each notification once by its Webhook-Id, and misbehaves as a scenario tells it to."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from flagd.notify import signing


@dataclass
class Receiver:
    secret: str
    slow_seconds: float = 0.0
    """Answers the next `slow_answers` requests only after this long."""
    slow_answers: int = 0
    failures: int = 0
    """Answers the next `failures` requests (after the slow ones) with 500."""
    requests: int = 0
    bad_signatures: int = 0
    received: dict[str, Any] = field(default_factory=dict)
    """Each notification once, by its id: what a receiver that drops duplicates keeps."""
    duplicates: int = 0
    connections: set[asyncio.StreamWriter] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = await self._answer(headers, body)
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok".encode())
                await writer.drain()
        self.connections.discard(writer)
        writer.close()

    async def _answer(self, headers: dict[str, str], body: bytes) -> int:
        self.requests += 1
        if self.slow_answers > 0:
            self.slow_answers -= 1
            await asyncio.sleep(self.slow_seconds)
        elif self.failures > 0:
            self.failures -= 1
            return 500
        timestamp = headers.get(signing.TIMESTAMP_HEADER.lower(), "")
        signature = headers.get(signing.SIGNATURE_HEADER.lower(), "")
        if not signing.verify(self.secret, timestamp, body, signature, time.time()):
            self.bad_signatures += 1
            return 401
        notification_id = headers[signing.ID_HEADER.lower()]
        if notification_id in self.received:
            self.duplicates += 1
        else:
            self.received[notification_id] = orjson.loads(body)
        return 200


@asynccontextmanager
async def listening(receiver: Receiver, port: int) -> AsyncIterator[None]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in list(receiver.connections):
            writer.close()
        await server.wait_closed()
