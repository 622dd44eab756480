"""Reading request bodies within the size limit, and JSON objects with known members only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope

from flagd import jsonio
from flagd.errors import BadRequest, MalformedBody, PayloadTooLarge, UnsupportedMediaType

ADMIN_LIMIT = "FLAGD_MAX_BODY_BYTES"


async def read_body(request: Request, limit: int, setting: str = ADMIN_LIMIT) -> bytes:
    """The body, refused with 413 (naming `setting`, the variable that sets `limit`) past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit, setting)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, setting)
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_body(scope: Scope, receive: Receive, limit: int, setting: str = ADMIN_LIMIT) -> bytes:
    """`read_body` for plain ASGI apps: the same limit, straight from `receive`."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _too_large(int(value), limit, setting)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedBody("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, setting)
        if not message.get("more_body", False):
            return chunk if not chunks else b"".join([*chunks, chunk])
        chunks.append(chunk)


def _too_large(size: int, limit: int, setting: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {size} bytes or more; the limit is {limit} bytes ({setting})"
    )


async def read_json(request: Request, limit: int) -> Any:
    """A JSON body of an admin request, with every integer exact (definitions are stored as written)."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {_printable(content_type)}")
    body = await read_body(request, limit)
    return jsonio.exact(body, parse_json(body))


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedBody("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc


def _printable(text: str) -> str:
    return text if text.isprintable() and len(text) <= 100 else repr(text[:100])


def expect_object(
    value: Any, *, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> dict[str, Any]:
    """A JSON object with every required member and no member it does not know."""
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object", code="wrong_type")
    required, known = set(required), set(required) | set(optional)
    unknown = sorted(set(value) - known)
    if unknown:
        raise BadRequest(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"this endpoint accepts {', '.join(map(repr, sorted(known)))}",
            code="unknown_field",
        )
    missing = sorted(required - set(value))
    if missing:
        raise BadRequest(
            f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}",
            code="missing_field",
        )
    return value


def has_body(request: Request) -> bool:
    """Whether the request carries a body (an endpoint whose body is optional reads it only then)."""
    length = request.headers.get("content-length")
    return length not in (None, "0") or "transfer-encoding" in request.headers
