"""OFREP, the OpenFeature Remote Evaluation Protocol (open-feature/protocol, service/openapi.yaml).

Evaluation here does not know the type the caller wants, so values go out as stored
and the provider checks the type (that is where TYPE_MISMATCH comes from). Choices made
for real providers: `variant` is always present (null when no variant was chosen);
a flag that defers to the code default (disabled, or no default variant) has no
`value`; numbers of a flag with any fractional variant are sent as floats; every error
carries `errorDetails`; a request without a context, or a context without a
targetingKey, is evaluated as it is.

Client keys (public: a web page's) evaluate like sdk keys, admitted by origin and rate
(flagd.auth.client); their bulk answer's `eventStreams` is the client change stream with a
token for the key (flagd.routes.client_stream). A refetch that a change event triggers names
the version it was told of (`?flagConfigEtag="cfg-N"`, OFREP's ADR-0008); a worker that has
not loaded that version yet waits for it (at most CATCH_UP_SECONDS) instead of answering
with the old one, which the client would take as "unchanged".
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.snapshot import ConfigSnapshot
from flagd.config.watcher import ConfigWatcher
from flagd.errors import MalformedBody
from flagd.http.body import parse_json, read_body, receive_body
from flagd.ingest.server_exposures import wanted
from flagd.metrics import UNKNOWN_FLAG, count_evaluation
from flagd.routes.client_stream import event_streams
from flagd.routes.config_stream import STREAM_PATH, etag_matches
from flagd.routes.events import EVENTS_PATH
from flagd.state import ServerState, server_state
from flagd_sdk.evaluation import ErrorCode, FlagType, ResolutionDetails

_JSON = "application/json"
_EVENT_STREAMS = [{"type": "sse", "endpoint": {"requestUri": STREAM_PATH}}]
CATCH_UP_SECONDS = 1.0
_CONFIG_ETAG = re.compile(r'(?:W/)?"?cfg-([0-9]{1,18})"?', re.ASCII)


class _BadContext(Exception):
    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class EvaluateFlag:
    """POST /ofrep/v1/evaluate/flags/{key} as a route. The server answers it in front of the middleware stack
    (flagd.http.fast_lane calls `evaluate_one`); the route is what the router and the OpenAPI document see."""

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        status, body = await evaluate_one(scope, receive, scope["path_params"]["key"])
        await _send(send, status, body)


async def evaluate_one(scope: AsgiScope, receive: Receive, key: str) -> tuple[int, bytes]:
    """The status and JSON body of one flag's evaluation, the hottest path in the server.

    It does what the Starlette endpoints do (authenticate, read the body within the limit, answer in
    JSON, raise FlagdError for the shared handlers) without building Request and Response objects: one
    pass over the raw headers, one receive for the body, and a success body rendered once per (flag,
    variant, reason).
    """
    state: ServerState = scope["state"]["server"]
    principal = await state.auth.authenticate_scope(scope, Scope.CLIENT)
    try:
        context = _read_context(await receive_body(scope, receive, state.settings.max_body_bytes))
    except _BadContext as exc:
        error = {"key": key, "errorCode": ErrorCode.INVALID_CONTEXT.value, "errorDetails": exc.details}
        return 400, orjson.dumps(error)
    snapshot = state.config.snapshot
    details = snapshot.flag_set.resolve(FlagType.ANY, key, None, context)
    count_evaluation(key if key in snapshot.flag_set.flags else UNKNOWN_FLAG, details.reason.value)
    if details.error_code is None:
        exposed = snapshot.exposure(key, details, context)
        if (
            exposed is not None
            and state.settings.server_exposures
            and principal.server_exposures
            and wanted(scope["headers"])
        ):
            state.ingest.exposures.record(exposed)
        in_experiment = None if key not in snapshot.experiments else exposed is not None
        rendered_key = (key, details.variant, details.reason, in_experiment)
        body = snapshot.ofrep_bodies.get(rendered_key)
        if body is None:
            body = snapshot.ofrep_bodies[rendered_key] = orjson.dumps(
                _success(key, details, snapshot, in_experiment)
            )
        return 200, body
    status = 404 if details.error_code is ErrorCode.FLAG_NOT_FOUND else 400
    return status, orjson.dumps(_failure(key, details))


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@requires(Scope.CLIENT)
async def evaluate_flags(request: Request, principal: Principal) -> Response:
    state = server_state(request)
    try:
        context = await _context(request, state.settings.max_body_bytes)
    except _BadContext as exc:
        return _json({"errorCode": ErrorCode.INVALID_CONTEXT.value, "errorDetails": exc.details}, 400)
    told = _CONFIG_ETAG.fullmatch(request.query_params.get("flagConfigEtag", ""))
    if told is not None:
        await _caught_up(state.config, int(told[1]))
    snapshot = state.config.snapshot
    resolve = snapshot.flag_set.resolve
    flags = []
    for key in snapshot.flag_set.flags:
        details = resolve(FlagType.ANY, key, None, context)
        count_evaluation(key, details.reason.value)
        if details.error_code is not None:
            flags.append(_failure(key, details))
            continue
        in_experiment = (
            None if key not in snapshot.experiments else snapshot.exposure(key, details, context) is not None
        )
        flags.append(_success(key, details, snapshot, in_experiment))
    # Bulk evaluation is how clients fill a cache, not what a user saw: it records no exposure, and
    # says where a client sends the exposures it sees (flags with experimentExposure: true).
    metadata = {**snapshot.flag_set.metadata, "eventsEndpoint": EVENTS_PATH, "serverExposures": False}
    streams = event_streams(principal, time.time()) if principal.scope is Scope.CLIENT else _EVENT_STREAMS
    body = orjson.dumps({"flags": flags, "metadata": metadata, "eventStreams": streams})
    # The ETag names this exact answer, so it is right for this context and this config alike.
    etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type=_JSON, headers={"ETag": etag})


async def _caught_up(watcher: ConfigWatcher, version: int) -> None:
    """Until this worker serves config `version` or later, or CATCH_UP_SECONDS have passed."""
    if watcher.snapshot.version >= version or watcher.snapshot.version < 0:
        return
    subscriber = watcher.subscribe()
    try:
        async with asyncio.timeout(CATCH_UP_SECONDS):
            while watcher.snapshot.version < version:
                await subscriber.get()
    except TimeoutError:
        pass  # a version this worker never gets (a client's guess): answered with the current one
    finally:
        watcher.unsubscribe(subscriber)


async def _context(request: Request, limit: int) -> dict[str, Any]:
    return _read_context(await read_body(request, limit))


def _read_context(raw: bytes) -> dict[str, Any]:
    try:
        body = parse_json(raw)
    except MalformedBody as exc:
        raise _BadContext(exc.message) from exc
    if not isinstance(body, dict):
        raise _BadContext(
            'the request body must be a JSON object such as {"context": {"targetingKey": "user-1"}}'
        )
    context = body.get("context", {})
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise _BadContext("context must be a JSON object")
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise _BadContext("context.targetingKey must be a string")
    return context


def _success(
    key: str, details: ResolutionDetails, snapshot: ConfigSnapshot, in_experiment: bool | None
) -> dict[str, Any]:
    metadata = dict(details.flag_metadata)
    if in_experiment is not None:
        # Whether this evaluation is an exposure: for clients that record exposures themselves.
        metadata["experimentExposure"] = in_experiment
    body: dict[str, Any] = {
        "key": key,
        "reason": details.reason.value,
        "variant": details.variant,
        "metadata": metadata,
    }
    if details.variant is not None:
        value = details.value
        if type(value) is int and key in snapshot.float_flags:
            value = float(value)
        body["value"] = value
    return body


def _failure(key: str, details: ResolutionDetails) -> dict[str, Any]:
    assert details.error_code is not None
    return {
        "key": key,
        "errorCode": details.error_code.value,
        "errorDetails": details.error_message or details.error_code.value,
        "metadata": dict(details.flag_metadata),
    }


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON)


routes = [
    Route("/ofrep/v1/evaluate/flags/{key}", EvaluateFlag(), methods=["POST"]),
    Route("/ofrep/v1/evaluate/flags", evaluate_flags, methods=["POST"]),
]
