"""A batch body to Python values: JSON or msgpack, optionally gzip, every size bounded before it is spent.

The inflated size of a gzip body is capped while inflating (a 1 KB "gzip bomb" never
becomes 1 GB in memory), over all its members (RFC 1952: a gzip file is one or more
members, as `cat a.gz b.gz` makes), and msgpack is read with its own length limits, so no
body can make decoding cost more than the limits allow. A batch of more events than
FLAGD_EVENTS_MAX_BATCH is 413 `batch_too_large` in either format: msgpack declares the
count before the events, so it is refused before they are read. JSON integers are read
exactly (orjson reads those past 64 bits as floats), so validation can refuse them rather
than store them rounded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import msgpack

from flagd import jsonio
from flagd.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from flagd.http.body import parse_json
from flagd.ingest.events import too_many_events

# Input is fed to zlib in pieces this big: each member's end copies what follows it in the piece
# (`unused_data`), so small pieces keep a body of many tiny members linear.
_GZIP_PIECE = 4096


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_inflated_bytes: int = 8 * 1024 * 1024
    max_events: int = 5_000
    batch_setting: str = "FLAGD_EVENTS_MAX_BATCH"


def inflate(body: bytes, limit: int) -> bytes:
    """The gzip body inflated, every member in turn, refusing (413) as soon as it would pass `limit` bytes."""
    out: list[bytes] = []
    size = 0
    inflater = _member()
    for start in range(0, len(body), _GZIP_PIECE):
        piece = body[start : start + _GZIP_PIECE]
        while piece:
            if inflater.eof:
                piece = piece.lstrip(b"\x00")  # zero padding after a member, as gzip(1) accepts
                if not piece:
                    break
                inflater = _member()
            try:
                data = inflater.decompress(piece, limit - size + 1)
            except zlib.error as exc:
                raise MalformedBody(
                    f"the body is not valid gzip: {exc.args[0] if exc.args else 'corrupt data'}"
                ) from None
            size += len(data)
            if size > limit or inflater.unconsumed_tail:
                raise PayloadTooLarge(
                    f"the body inflates to more than {limit} bytes (FLAGD_EVENTS_MAX_INFLATED_BYTES); "
                    "send smaller batches"
                )
            out.append(data)
            piece = inflater.unused_data if inflater.eof else b""
    if not inflater.eof:
        raise MalformedBody("the gzip body ends early; send the whole stream")
    return b"".join(out)


def _member() -> Any:
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


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
        return jsonio.exact(body, parse_json(body))
    raise UnsupportedMediaType(
        f"send the batch as application/json or application/msgpack, not {media[:60]!r}"
    )


def _msgpack(body: bytes, limits: DecodeLimits) -> Any:
    declared = _declared_events(body)
    if declared is not None and declared > limits.max_events:
        rejection = too_many_events(declared, limits.max_events, limits.batch_setting)
        raise PayloadTooLarge(rejection.message, code=rejection.code)
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


def _declared_events(body: bytes) -> int | None:
    """How many events a msgpack batch `{"events": [...]}` says it holds, read from its first bytes
    (None when it does not start so; the full read says what is wrong)."""
    header = msgpack.Unpacker(
        raw=False,
        max_buffer_size=128,
        max_str_len=64,
        max_array_len=0,
        max_map_len=0,
        max_bin_len=0,
        max_ext_len=0,
    )
    header.feed(body[:128])
    try:
        if header.read_map_header() != 1 or header.unpack() != "events":
            return None
        count: int = header.read_array_header()
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return count
