"""Config distribution for SDKs that evaluate locally: the flag set with its ETag, and a change stream.

`GET /v1/flags` answers 304 when `If-None-Match` names the current version.
`GET /v1/flags/stream` is a server-sent-events stream: one event with the current
version on connect, one per new version, and a heartbeat comment in between. Event
data follows OFREP's change notifications (`{"type": "refetchEvaluation", ...}`), so
OFREP client-side providers can use the stream too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagd.auth.guard import Principal, credentials, requires
from flagd.auth.keys import Scope
from flagd.config.snapshot import ConfigSnapshot
from flagd.config.watcher import ConfigWatcher
from flagd.state import ServerState, server_state

STREAM_PATH = "/v1/flags/stream"
RECONNECT_MS = 1000
"""The reconnection delay every change event suggests (SSE `retry`), so clients come back quickly after a
shutdown closes their stream."""
KEY_RECHECK_SECONDS = 0.5
"""How often an open stream re-checks its key, so a revoked key's stream ends within a second."""
SHUTDOWN_GRACE_SECONDS = 2.0
"""At shutdown, how long a stream has to end itself (it does within KEY_RECHECK_SECONDS) before sse-starlette
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


def change_event(snapshot: ConfigSnapshot, retry_ms: int = RECONNECT_MS) -> ServerSentEvent:
    data = {
        "type": "refetchEvaluation",
        "version": snapshot.version,
        "etag": snapshot.etag,
        "lastModified": int(snapshot.updated_at),
    }
    # `retry` tells clients how soon to reconnect when the stream ends (a restart, a deploy).
    return ServerSentEvent(data=orjson.dumps(data).decode(), id=str(snapshot.version), retry=retry_ms)


@requires(Scope.SDK)
async def stream_flags(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    token = credentials(request.scope["headers"])
    return change_stream(state, lambda: state.auth.still_valid(token, Scope.SDK), RECONNECT_MS)


def change_stream(state: ServerState, still_valid: Callable[[], Awaitable[bool]], retry_ms: int) -> Response:
    """An event stream of config versions (only that one came, never what it holds) for as long as
    `still_valid` says its caller may listen: checked every KEY_RECHECK_SECONDS and before each event."""
    # sse-starlette sets `shutdown` when the server begins to stop; the stream then ends itself, with the
    # chunk that completes the response, instead of being cancelled half-way (which uvicorn logs as an error).
    shutdown = anyio.Event()
    return EventSourceResponse(
        _changes(state.config, still_valid, shutdown, retry_ms),
        ping=state.settings.sse_heartbeat_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Flagd-Worker": state.worker_id},
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def _changes(
    watcher: ConfigWatcher,
    still_valid: Callable[[], Awaitable[bool]],
    shutdown: anyio.Event,
    retry_ms: int,
) -> AsyncIterator[ServerSentEvent]:
    subscriber = watcher.subscribe()
    try:
        sent = watcher.snapshot.version
        yield change_event(watcher.snapshot, retry_ms)
        while not shutdown.is_set():
            try:
                snapshot = await asyncio.wait_for(subscriber.get(), KEY_RECHECK_SECONDS)
            except TimeoutError:
                if not await still_valid():
                    return  # the key was revoked: the stream ends
                continue
            if snapshot is None:  # the server is shutting down
                return
            if not await still_valid():
                return
            if snapshot.version != sent:
                sent = snapshot.version
                yield change_event(snapshot, retry_ms)
    finally:
        watcher.unsubscribe(subscriber)


routes = [
    Route("/v1/flags", get_flags, methods=["GET"]),
    Route(STREAM_PATH, stream_flags, methods=["GET"]),
]
