"""The asyncpg connection pool, with connection failures translated into one clear error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from flagd import jsonio
from flagd.errors import DatabaseUnavailable
from flagd.settings import Settings

_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# The database being down, restarting, dropped or out of connections is not a bug in the request: HTTP
# handlers answer it with 503 so clients and load balancers retry, and key lookups fail fast on it. OSError
# covers refused and unreachable hosts, and a Unix socket whose file is gone (a local database that stopped).
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)


def redact(database_url: str) -> str:
    """The URL with any password replaced, fit for logs and error messages."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_pool(settings: Settings) -> asyncpg.Pool:
    url = _require_url(settings)
    with _translate_connect_errors(url):
        return await asyncpg.create_pool(
            url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_connect_timeout,
            init=init_connection,
        )


async def connect(settings: Settings) -> asyncpg.Connection:
    """A single connection, for the CLI and start-up tasks."""
    url = _require_url(settings)
    with _translate_connect_errors(url):
        conn = await asyncpg.connect(url, timeout=settings.db_connect_timeout)
    await init_connection(conn)
    return conn


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON columns in and out as Python values, through orjson (order and 1.0 kept as written).

    Rows too deep for orjson (written by hand or by an older version) still decode: see flagd.jsonio.
    """
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=_encode_json, decoder=jsonio.loads, format="text"
        )


def _encode_json(value: Any) -> str:
    return jsonio.dumps(value).decode()


def _require_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise DatabaseUnavailable(
            "DATABASE_URL is not set; set it to a PostgreSQL URL, or run `flagd serve` to use embedded PostgreSQL"
        )
    return settings.database_url


@contextmanager
def _translate_connect_errors(url: str) -> Iterator[None]:
    try:
        yield
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
