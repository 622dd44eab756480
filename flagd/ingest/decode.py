"""A batch body to Python values: JSON or msgpack, optionally gzip, every size bounded before it is spent.

The inflated size of a gzip body is capped while inflating (a 1 KB "gzip bomb" never
becomes 1 GB in memory), and msgpack is read with its own length limits, so no body can
make decoding cost more than the limits allow.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import msgpack

from flagd.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from flagd.http.body import parse_json


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_inflated_bytes: int = 8 * 1024 * 1024
    max_events: int = 5_000


def inflate(body: bytes, limit: int) -> bytes:
    """The gzip body inflated, refusing (413) as soon as it would pass `limit` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedBody(
            f"the body is not valid gzip: {exc.args[0] if exc.args else 'corrupt data'}"
        ) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(
            f"the body inflates to more than {limit} bytes (FLAGD_EVENTS_MAX_INFLATED_BYTES); send smaller batches"
        )
    if not inflater.eof:
        raise MalformedBody("the gzip body ends early; send the whole stream")
    return data


def decode(body: bytes, content_type: str | None, content_encoding: str | None, limits: DecodeLimits) -> Any:
    """The decoded batch document (not yet validated)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        body = inflate(body, limits.max_inflated_bytes)
    elif encoding not in ("identity", ""):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or no encoding"
        )
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if not body.strip():
        raise MalformedBody('the request body is empty; send {"events": [...]}')
    if media in ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack"):
        return _msgpack(body, limits)
    if media == "application/json" or media.endswith("+json"):
        return parse_json(body)
    raise UnsupportedMediaType(
        f"send the batch as application/json or application/msgpack, not {media[:60]!r}"
    )


def _msgpack(body: bytes, limits: DecodeLimits) -> Any:
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_array_len=max(limits.max_events, 1024),
            max_map_len=1024,
            max_str_len=len(body),
            max_bin_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        kind = type(exc).__name__
        reason = {
            "ExtraData": "it has bytes after the batch",
            "StackError": "it is nested too deeply",
            "FormatError": "it is not msgpack",
        }.get(kind, "it is malformed or exceeds a length limit")
        raise MalformedBody(f"the msgpack body cannot be read: {reason}") from None
