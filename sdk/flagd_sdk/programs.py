"""The client's background work, written once for both clients as generators of effects.

A program yields what it needs done (an HTTP request, a line of a stream, a pause) and gets the
outcome back; `flagd_sdk.drivers` carries the effects out with threads and httpx.Client for `Client`
and with tasks and httpx.AsyncClient for `AsyncClient`. So the protocol (ETags, the change stream,
reconnecting with backoff and jitter, batching, retries that resend the same event ids, Retry-After)
exists once, and the two clients differ only in how they wait.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from flagd_sdk.answers import describe
from flagd_sdk.core import Core
from flagd_sdk.options import Options

logger = logging.getLogger("flagd_sdk")


@dataclass(frozen=True, slots=True)
class Call:
    """An HTTP request; the outcome is a `Reply`, or an exception (a network failure)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Open:
    """Open a streamed GET; the outcome is a status code (the stream is read with `Line`)."""

    path: str


@dataclass(frozen=True, slots=True)
class Line:
    """The next line of the open stream: a str, or None once it ended (or failed, or the client stops)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait `seconds`, or less when woken (a flush, a full batch, a stop)."""

    seconds: float


Effect = Call | Open | Line | Pause
Program = Generator[Effect, Any, None]


class Backoff:
    """Exponential backoff with full jitter between `first` and `limit` seconds."""

    def __init__(self, first: float, limit: float) -> None:
        self._first = first
        self._limit = limit
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self, at_least: float = 0.0) -> float:
        ceiling = min(self._limit, self._first * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        return max(at_least, random.uniform(ceiling / 2, ceiling))


def _fetch(core: Core) -> Generator[Effect, Any, bool]:
    """GET /v1/flags with the ETag; True when the client has a current flag set."""
    headers = {"If-None-Match": core.etag} if core.etag else {}
    try:
        reply: Reply = yield Call("GET", "/v1/flags", headers)
    except Exception as exc:
        core.config_failed(f"cannot reach the server: {exc}")
        return False
    if reply.status == 304:
        return True
    if reply.status != 200:
        core.config_failed(f"GET /v1/flags: {describe(reply.status, reply.body)}")
        logger.warning("%s", core.last_error)
        return False
    try:
        document = json.loads(reply.body)
        version_header = reply.headers.get("x-flagd-config-version")
        core.apply(
            document, version=int(version_header) if version_header else None, etag=reply.headers.get("etag")
        )
    except Exception as exc:  # a flag set the SDK cannot read keeps the last one serving
        core.config_failed(f"the flag set could not be read: {exc}")
        logger.warning("%s", core.last_error)
        return False
    return True


def config_program(core: Core, options: Options) -> Program:
    """Keep the flag set current: fetch it, then follow the change stream; on failure back off and retry,
    polling with ETags while the stream is unavailable (or off)."""
    backoff = Backoff(options.reconnect_seconds, options.max_reconnect_seconds)
    while True:
        if not (yield from _fetch(core)):
            core.connected = False
            yield Pause(backoff.next())
            continue
        if not options.stream:
            yield Pause(options.poll_seconds)
            continue
        try:
            status = yield Open("/v1/flags/stream")
        except Exception as exc:
            status = 0
            core.last_error = f"the change stream failed: {exc}"
        if status not in (0, 200):
            core.last_error = f"GET /v1/flags/stream: {describe(status, b'')}"
        if status != 200:
            core.connected = False
            yield Pause(backoff.next())
            continue
        core.connected = True
        backoff.reset()
        while True:
            line = yield Line()
            if line is None:
                break
            if not line.startswith("data:"):
                continue  # ids, heartbeats
            try:
                change = json.loads(line[5:].strip())
            except json.JSONDecodeError:
                continue
            if change.get("etag") != core.etag:
                yield from _fetch(core)
        core.connected = False
        logger.info("the flag change stream ended; reconnecting")
        yield Pause(backoff.next())


_RETRIED = {408, 425, 429, 500, 502, 503, 504}


def delivery_program(core: Core, options: Options) -> Program:
    """Send queued events in batches as msgpack; retry a failed batch with the same event ids (the server
    deduplicates them), after Retry-After or a backoff with jitter; drop a batch the server refuses."""
    backoff = Backoff(options.reconnect_seconds, options.max_reconnect_seconds)
    while True:
        if core.waiting < options.batch_size:
            yield Pause(options.flush_seconds)
        batch = core.take()
        if not batch:
            continue
        body = _batch_body(batch)
        headers = {"Content-Type": "application/msgpack"}
        while True:
            try:
                reply: Reply = yield Call("POST", "/v1/events", headers, body)
            except Exception as exc:
                core.last_error = f"events not delivered yet: {exc}"
                yield Pause(backoff.next())
                continue
            if reply.status in _RETRIED:
                core.last_error = f"POST /v1/events: {describe(reply.status, reply.body)}; retrying"
                yield Pause(backoff.next(_retry_after(reply)))
                continue
            break
        backoff.reset()
        if reply.status in (200, 422):
            answer = json.loads(reply.body) if reply.body else {}
            core.sent += int(answer.get("accepted", 0))
            refused = answer.get("rejected") or []
            core.rejected += len(refused)
            for item in refused[:5]:
                logger.warning("an event was refused: %s (%s)", item.get("message"), item.get("code"))
        else:
            core.rejected += len(batch)
            core.last_error = (
                f"POST /v1/events: {describe(reply.status, reply.body)}; {len(batch)} events dropped"
            )
            logger.error("%s", core.last_error)
        core.delivering = 0


def _batch_body(packed: list[bytes]) -> bytes:
    """{"events": [...]} in msgpack, around events packed one by one when they were queued."""
    packer = msgpack.Packer()
    head: bytes = packer.pack_map_header(1) + packer.pack("events") + packer.pack_array_header(len(packed))
    return head + b"".join(packed)


def _retry_after(reply: Reply) -> float:
    try:
        return min(float(reply.headers.get("retry-after", "0")), 300.0)
    except ValueError:
        return 0.0
