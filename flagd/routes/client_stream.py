"""The change stream of a client key, for a browser's EventSource: `GET /v1/client/stream?token=...`.

EventSource cannot send headers, so the stream authenticates with the token in its URL that the bulk
evaluation's `eventStreams` gives a client key (flagd.auth.stream_tokens): read-only, bound to the key, valid
for a bounded time, and ended with the key. Its events say only that a new config version exists,
`{"type": "refetchEvaluation", "version", "etag", "lastModified"}` (what OFREP's web provider refetches on),
never what changed. Each connection advises its own reconnection delay (`retry:`), RECONNECT_MS plus up to
RECONNECT_JITTER_MS at random, so the tabs a restart disconnects do not all come back at once. The stream is
the SDK stream's machinery (flagd.routes.config_stream), admitted like a client key's other requests (origin,
rate; flagd.auth.client); each is one of the worker's FLAGD_MAX_CONNECTIONS.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.auth.guard import Principal
from flagd.http.routing import resource
from flagd.routes.config_stream import change_stream
from flagd.state import server_state

CLIENT_STREAM_PATH = "/v1/client/stream"
RECONNECT_MS = 5_000
RECONNECT_JITTER_MS = 5_000
INACTIVITY_DELAY_SECONDS = 120
"""How long a hidden tab keeps its stream open (OFREP's eventStreams `inactivityDelaySec`)."""


def event_streams(principal: Principal, now: float) -> list[dict[str, Any]]:
    """The `eventStreams` of a client key's bulk evaluation: this stream, with a token for the key."""
    return [
        {
            "type": "sse",
            "endpoint": {"requestUri": f"{CLIENT_STREAM_PATH}?token={principal.stream_token(now)}"},
            "inactivityDelaySec": INACTIVITY_DELAY_SECONDS,
        }
    ]


async def stream_client(request: Request) -> Response:
    state = server_state(request)
    token = request.query_params.get("token")
    principal = await state.auth.authenticate_stream(token)
    state.auth.client.admit(principal.key_id, principal.origins, request.scope)
    assert token is not None  # authenticate_stream refuses a missing one
    retry_ms = RECONNECT_MS + secrets.randbelow(RECONNECT_JITTER_MS + 1)
    return change_stream(state, ("client", token), lambda: state.auth.stream_still_valid(token), retry_ms)


routes = [resource(CLIENT_STREAM_PATH, GET=stream_client)]
