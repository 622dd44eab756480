"""Config distribution for SDKs that evaluate locally: the flag set with its ETag, and a change stream.

`GET /v1/flags` answers 304 when `If-None-Match` names the current version.
`GET /v1/flags/stream` is a server-sent-events stream: one event with the current
version on connect, one per new version, and a heartbeat comment in between. Event
data follows OFREP's change notifications (`{"type": "refetchEvaluation", ...}`), so
OFREP client-side providers can use the stream too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Send
from starlette.types import Scope as AsgiScope

from flagd.auth.guard import Principal, credentials, requires
from flagd.auth.keys import Scope
from flagd.http.transport import ABORT_EXTENSION
from flagd.state import ServerState, server_state

STREAM_PATH = "/v1/flags/stream"
RECONNECT_MS = 1000
"""The reconnection delay every change event suggests (SSE `retry`), so clients come back quickly after a
shutdown closes their stream."""
SHUTDOWN_GRACE_SECONDS = 2.0
"""At shutdown, how long a stream has to end itself (the hub ends them all at once) before sse-starlette
cancels it; well within uvicorn's graceful shutdown of 10 s."""


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
        state,
        credential,
        still_valid,
        retry_ms,
        ping=0,  # the hub sends one heartbeat to all streams
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Flagd-Worker": state.worker_id},
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


class ChangeStreamResponse(EventSourceResponse):
    """sse-starlette's response (HEAD, disconnects, shutdown, the closing chunk), writing what the hub gives.

    Its writes skip sse-starlette's per-send cancel scope (`send_timeout`): at 10,000 streams that scope was a
    good part of each delivery's cost, and a client that stops reading is dropped by the hub instead, which
    aborts its connection (ABORT_EXTENSION, counted in flagd_connections_closed_total{reason="slow_stream"})."""

    def __init__(
        self,
        state: ServerState,
        credential: Hashable,
        still_valid: Callable[[], Awaitable[bool]],
        retry_ms: int,
        **options: Any,
    ) -> None:
        super().__init__(self._changes(state, credential, still_valid, retry_ms), **options)
        self._abort: Callable[[str], None] | None = None

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        self._abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        await super().__call__(scope, receive, send)

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise

    async def _changes(
        self,
        state: ServerState,
        credential: Hashable,
        still_valid: Callable[[], Awaitable[bool]],
        retry_ms: int,
    ) -> AsyncIterator[bytes]:
        hub = state.streams
        # Opened before the snapshot is read, so no change is missed; only once the response runs (not for HEAD).
        mailbox = hub.open(credential, still_valid, retry_ms, self._abort)
        try:
            yield mailbox.first(state.config.snapshot)
            while (chunk := await mailbox.next()) is not None:
                yield chunk
        finally:
            hub.close(mailbox)


routes = [
    Route("/v1/flags", get_flags, methods=["GET"]),
    Route(STREAM_PATH, stream_flags, methods=["GET"]),
]
