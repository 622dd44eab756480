"""HTTP/1.1 requests pipelined on keep-alive connections, for tests that need 100,000 real requests.

httpx spends about a millisecond of client CPU per request, which on two cores would make a
100,000-request test take minutes. This client writes a window of requests on a connection
and then reads their responses in order (RFC 9112 pipelining, which uvicorn serves), parsing
only the status line and Content-Length: the server sees ordinary requests on ordinary sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson


def post_request(path: str, body: object, headers: dict[str, str]) -> bytes:
    payload = orjson.dumps(body)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return int(status_line.split(" ", 2)[1]), body


async def send_pipelined(
    host: str, port: int, requests: Sequence[bytes], window: int = 64
) -> list[tuple[int, bytes]]:
    """Send `requests` in order on one connection, `window` at a time; their (status, body) in order."""
    reader, writer = await asyncio.open_connection(host, port)
    answers: list[tuple[int, bytes]] = []
    try:
        for start in range(0, len(requests), window):
            chunk = requests[start : start + window]
            writer.write(b"".join(chunk))
            await writer.drain()
            for _ in chunk:
                answers.append(await _read_response(reader))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers
