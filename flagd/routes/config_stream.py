"""Config distribution for SDKs that evaluate locally: the flag set with its ETag, and a change stream.

`GET /v1/flags` answers 304 when `If-None-Match` names the current version.
`GET /v1/flags/stream` is a server-sent-events stream: one event with the current
version on connect, one per new version, and a heartbeat comment in between. Event
data follows OFREP's change notifications (`{"type": "refetchEvaluation", ...}`), so
OFREP client-side providers can use the stream too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from flagd.auth.guard import Principal, credentials, requires
from flagd.auth.keys import Scope
from flagd.http.transport import ABORT_EXTENSION, SLOW_STREAM
from flagd.state import ServerState, server_state

STREAM_PATH = "/v1/flags/stream"
RECONNECT_MS = 1000
"""The reconnection delay every change event suggests (SSE `retry`), so clients come back quickly after a
shutdown closes their stream."""
SHUTDOWN_GRACE_SECONDS = 2.0
"""At shutdown, how long a stream has to end itself (the hub ends them all at once) before sse-starlette
cancels it; well within uvicorn's graceful shutdown of 10 s."""
SLOW_CLIENT_SECONDS = 30.0
"""How long one write to a stream may wait for its client to read (the socket's buffers are full) before the
client is dropped: a reader that far behind holds the worker's memory, not the stream's news."""


def etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in candidates or "*" in candidates


@requires(Scope.SDK)
async def get_flags(request: Request, principal: Principal) -> Response:
    snapshot = server_state(request).config.snapshot
    headers = {
        "ETag": snapshot.etag,
        "Cache-Control": "no-cache",
        "X-Flagd-Config-Version": str(snapshot.version),
    }
    if etag_matches(request.headers.get("if-none-match"), snapshot.etag):
        return Response(status_code=304, headers=headers)
    return Response(snapshot.body, media_type="application/json", headers=headers)


@requires(Scope.SDK)
async def stream_flags(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    token = credentials(request.scope["headers"])
    return change_stream(
        state, ("sdk", token), lambda: state.auth.still_valid(token, Scope.SDK), RECONNECT_MS
    )


def change_stream(
    state: ServerState, credential: Hashable, still_valid: Callable[[], Awaitable[bool]], retry_ms: int
) -> Response:
    """An event stream of config versions (only that one came, never what it holds) for as long as
    `still_valid` says its caller may listen. The worker's StreamHub checks it (once for all the streams of
    one `credential`) every half second and before each event, and hands the stream its events and heartbeats
    (flagd.routes.stream_hub); this response only writes them."""
    return ChangeStreamResponse(
        _changes(state, credential, still_valid, retry_ms),
        ping=0,  # the hub sends one heartbeat to all streams
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Flagd-Worker": state.worker_id},
        send_timeout=SLOW_CLIENT_SECONDS,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def _changes(
    state: ServerState, credential: Hashable, still_valid: Callable[[], Awaitable[bool]], retry_ms: int
) -> AsyncIterator[bytes]:
    hub = state.streams
    mailbox = hub.open(credential, still_valid, retry_ms)  # before reading the snapshot: no change is missed
    try:
        yield mailbox.first(state.config.snapshot)
        while (chunk := await mailbox.next()) is not None:
            yield chunk
    finally:
        hub.close(mailbox)


class ChangeStreamResponse(EventSourceResponse):
    """sse-starlette's response, where a client that does not read what it is sent is dropped: its connection
    is aborted (counted in flagd_connections_closed_total{reason="slow_stream"}), not buffered for."""

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
            if abort is None:
                raise
            abort(SLOW_STREAM)
            # uvicorn marks the connection lost in a later turn of the loop; answering before then would
            # have it log an incomplete response.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while (await receive())["type"] != "http.disconnect":
                        pass


routes = [
    Route("/v1/flags", get_flags, methods=["GET"]),
    Route(STREAM_PATH, stream_flags, methods=["GET"]),
]
