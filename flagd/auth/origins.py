"""Browser origins, pure: what `--origin` and FLAGD_CORS_ORIGINS accept, in the form browsers send.

A browser sends `Origin` as scheme://host[:port] in lowercase, without a path and without the scheme's default
port (RFC 6454, section 6.1); an allowed origin is written the same way, so a request's origin is allowed
exactly when it equals one: no patterns, no wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidOrigin(ValueError):
    """Not an origin; the message says what one looks like."""


def origin(text: str) -> str:
    """`text` as browsers send it: http://127.0.0.1:5173, https://shop.example (the default port dropped)."""
    written = text.strip()
    match = _ORIGIN.fullmatch(written.lower().rstrip("/"))
    port = int(match["port"]) if match and match["port"] else None
    if match is None or (port is not None and not 1 <= port <= 65535):
        shown = written if len(written) <= 80 and written.isprintable() else "that value"
        raise InvalidOrigin(
            f"{shown!r} is not an origin: write scheme://host[:port] without a path, "
            "such as http://127.0.0.1:5173 or https://shop.example"
        )
    scheme, host = match["scheme"], match["host"]
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origins(texts: Iterable[str]) -> tuple[str, ...]:
    """Each origin once, in the order first given."""
    return tuple(dict.fromkeys(origin(text) for text in texts))
