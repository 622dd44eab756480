"""A database connection lost in the middle of an operation is a warning, not an error.

When PostgreSQL goes away while asyncpg is between sending a message and awaiting its answer (the
transport closed under a COPY, say), asyncpg can leave that operation's future behind and set the
connection's loss on it later; nothing awaits it, so asyncio's default handler logs "Future exception
was never retrieved" at ERROR with a traceback. The failure itself has already reached flagd through
the operation that raised (the writer refuses events and probes; the pool reconnects), so the orphaned
copy of it is logged once as a warning. Every other unhandled exception keeps the default handling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)

_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.CannotConnectNowError, ConnectionError)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Route `loop`'s unhandled exceptions through `handle` (idempotent)."""
    loop.set_exception_handler(handle)


def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, _LOST) and "never retrieved" in str(context.get("message", "")):
        logger.warning("a database connection was lost in the middle of an operation: %s", exc)
        return
    loop.default_exception_handler(context)
