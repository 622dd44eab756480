"""The connections under the app: a deadline for every request's headers and body, and a cap on connections.

uvicorn's httptools protocol (0.54) arms no timer on a new connection, and cancels its keep-alive timer at the
first byte of the next request: a client that opens a socket and sends nothing, or a header line now and then,
holds a descriptor for ever. At the open-file limit libuv accepts each newcomer only to close it, so every
normal request fails and nothing is logged. uvicorn's `limit_concurrency` does not help: it counts those
connections too, answers 503 only once a request's headers are complete, and logs every refusal.

`ConnectionGuard` builds the protocol of each connection (it is passed as uvicorn's `Config(http=...)`):
`GuardedProtocol`, uvicorn's httptools protocol with, independent of the app,

- deadlines: the next request's headers must be complete `header_timeout` after the connection opened or its
  previous response ended, and its body `body_timeout` after the headers, however slowly they trickle in;
  past them the connection is closed (reasons `header_timeout`, `body_timeout`). One timer per connection,
  re-armed when it fires (at most every min(header_timeout, body_timeout)): a request costs two clock reads,
  not a timer. A connection that waits for nothing (its response is being written, as a change stream's is
  for hours) lets its timer lapse until it waits again: 10,000 open streams had 1,000 timers a second, which
  a stall of the loop bunched together until they all fired at once (100 ms stalls, bench/streams.py).
- a cap: a worker holds at most `capacity` connections (FLAGD_MAX_CONNECTIONS, lowered to the open-file limit
  less the descriptors the worker needs for itself). A connection past it closes the connection that has waited
  longest for its request headers (an idle or a trickling one: `evicted`), so slow sockets cannot starve real
  requests; when every connection has a request in flight, the newcomer's request is answered 503
  `too_many_connections` with Retry-After (`refused`).

Every closing is counted in `flagd_connections_closed_total{reason}` and logged per worker at most once every
LOG_INTERVAL seconds, with the counts since the line before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from flagd import jsonio
from flagd.http.responses import error_body
from flagd.metrics import CONNECTIONS, CONNECTIONS_CLOSED
from flagd.settings import Settings

logger = logging.getLogger(__name__)

LOG_INTERVAL = 10.0
RESERVED_DESCRIPTORS = 128
"""Descriptors a worker keeps for itself besides its database pool (listener, event loop, logs, pipes)."""

HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
EVICTED = "evicted"
REFUSED = "refused"
SLOW_STREAM = "slow_stream"
ABORT_EXTENSION = "flagd.abort"
"""The ASGI scope extension through which a response may abort its connection with a reason (counted like the
guard's own closings): a change stream whose client stopped reading cannot end with a complete response."""


@dataclass(frozen=True, slots=True)
class TransportLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    reserved_descriptors: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
            reserved_descriptors=RESERVED_DESCRIPTORS + settings.db_pool_max_size,
        )

    def capacity(self) -> int:
        """FLAGD_MAX_CONNECTIONS, or fewer when this process's open-file limit could not hold them."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - self.reserved_descriptors))


def server_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn is started with, in `flagd serve` and in the tests' servers."""
    return {
        "http": ConnectionGuard(TransportLimits.from_settings(settings)),
        "ws": "none",  # no endpoint speaks WebSocket: an upgrade request is an ordinary request
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": None,  # the guard caps connections
    }


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise this process's open-file soft limit to its hard limit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # an unlimited hard limit the kernel will not grant: keep the soft one
        return soft, soft
    return soft, hard


class ConnectionGuard:
    """Builds every connection's protocol and keeps the worker's account of them: which wait for their request
    headers (oldest first), and what was closed since the last log line. Pickled into each worker process
    (uvicorn spawns them with its config) as its limits only: each worker keeps its own account."""

    def __init__(self, limits: TransportLimits) -> None:
        self.limits = limits
        self.capacity = limits.capacity()
        self.check_seconds = min(limits.header_timeout, limits.body_timeout)
        self._waiting: dict[GuardedProtocol, None] = {}
        """Connections waiting for request headers, in the order they began to wait (dicts keep it)."""
        self._closed: collections.Counter[str] = collections.Counter()
        self._log_window: asyncio.TimerHandle | None = None
        self._refusal_body = jsonio.dumps(
            error_body(
                "too_many_connections",
                f"the server holds its limit of {self.capacity} connections, each with a request in flight "
                "(FLAGD_MAX_CONNECTIONS); retry shortly",
            )
        )

    def __reduce__(self) -> tuple[type[ConnectionGuard], tuple[TransportLimits]]:
        return ConnectionGuard, (self.limits,)

    def __call__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> GuardedProtocol:
        return GuardedProtocol(config, server_state, app_state, _loop, guard=self)

    def make_room(self, open_connections: int) -> bool:
        """Whether a newcomer may be served: under the cap, or once the longest-waiting connection is closed."""
        if open_connections <= self.capacity:
            return True
        for victim in self._waiting:
            self.close(victim, EVICTED)
            return True
        return False

    def close(self, connection: GuardedProtocol, reason: str) -> None:
        self._waiting.pop(connection, None)
        connection.transport.close()
        self.count(reason)

    def waiting(self, connection: GuardedProtocol) -> None:
        self._waiting.pop(connection, None)
        self._waiting[connection] = None

    def busy(self, connection: GuardedProtocol) -> None:
        self._waiting.pop(connection, None)

    async def refuse(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI app of a connection past the cap: 503 too_many_connections, then the connection closes."""
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._refusal_body)).encode()),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._refusal_body})
        self.count(REFUSED)

    def count(self, reason: str) -> None:
        CONNECTIONS_CLOSED.labels(reason).inc()
        if self._log_window is None:
            self._log({reason: 1}, None)
            self._log_window = asyncio.get_running_loop().call_later(LOG_INTERVAL, self._end_log_window)
        else:
            self._closed[reason] += 1

    def _end_log_window(self) -> None:
        closed, self._closed = self._closed, collections.Counter()
        if not closed:
            self._log_window = None
            return
        self._log(closed, LOG_INTERVAL)
        self._log_window = asyncio.get_running_loop().call_later(LOG_INTERVAL, self._end_log_window)

    def _log(self, closed: collections.Counter[str] | dict[str, int], seconds: float | None) -> None:
        limits = self.limits
        described = {
            HEADER_TIMEOUT: f"closed without complete request headers after {limits.header_timeout:g} s "
            "(FLAGD_HEADER_TIMEOUT_SECONDS)",
            BODY_TIMEOUT: f"closed without a complete request body {limits.body_timeout:g} s after its headers "
            "(FLAGD_BODY_TIMEOUT_SECONDS)",
            EVICTED: f"waiting for request headers, closed to make room at the limit of {self.capacity} "
            "connections (FLAGD_MAX_CONNECTIONS)",
            REFUSED: f"answered 503 too_many_connections: all {self.capacity} connections had a request in "
            "flight (FLAGD_MAX_CONNECTIONS)",
            SLOW_STREAM: "change streams dropped: their clients did not read what they were sent",
        }
        parts = [f"{closed[reason]} {described[reason]}" for reason in _REASONS if closed.get(reason)]
        since = f" in the last {seconds:g} s" if seconds is not None else ""
        logger.warning("connections%s: %s", since, "; ".join(parts))


_REASONS = (HEADER_TIMEOUT, BODY_TIMEOUT, EVICTED, REFUSED, SLOW_STREAM)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the guard's deadlines and cap (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._deadline: float | None = None
        """When the part of a request being waited for must have arrived; None while none is awaited."""
        self._awaiting = HEADER_TIMEOUT
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        CONNECTIONS.inc()
        if not self._guard.make_room(len(self.connections)):
            self._refused = True
            self.app = self._guard.refuse
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        CONNECTIONS.dec()
        self._guard.busy(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._guard.busy(self)
        self._deadline = self.loop.time() + self._guard.limits.body_timeout
        self._awaiting = BODY_TIMEOUT
        self._arm()
        extensions: dict[str, Any] = {ABORT_EXTENSION: self._abort}  # uvicorn's httptools scope has none
        self.scope["extensions"] = extensions
        super().on_headers_complete()

    def _abort(self, reason: str) -> None:
        """Drop the connection at once, whatever is left unsent (close() would wait to send it)."""
        self.transport.abort()
        self._guard.count(reason)

    def on_message_complete(self) -> None:
        self._deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request has arrived already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_headers()

    def _await_headers(self) -> None:
        self._deadline = self.loop.time() + self._guard.limits.header_timeout
        self._awaiting = HEADER_TIMEOUT
        self._arm()
        if not self._refused:
            self._guard.waiting(self)

    def _arm(self) -> None:
        """Check the deadline within check_seconds, unless a check is due already."""
        if self._timer is None:
            self._timer = self.loop.call_later(self._guard.check_seconds, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._deadline is None:
            return  # nothing awaited: the next deadline set arms the timer again (`_arm`)
        # Never sleep past check_seconds: a deadline set meanwhile is at least that far away, so none is missed.
        left = self._deadline - self.loop.time()
        if left <= 0:
            self._guard.close(self, self._awaiting)
            return
        self._timer = self.loop.call_later(min(self._guard.check_seconds, left), self._check_deadline)
