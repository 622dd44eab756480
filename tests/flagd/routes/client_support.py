"""What the client-key tests share: keys with origins, servers with their own settings, events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from flagd.app import create_app
from flagd.auth import keys
from flagd.auth.keys import Scope
from flagd.auth.repository import ApiKeyRepository
from flagd.settings import Settings
from tests.support import LiveServer, running_server

PAGE = "http://127.0.0.1:5173"
"""The origin every test server allows (FLAGD_CORS_ORIGINS)."""
OTHER_PAGE = "http://127.0.0.1:5174"
"""An origin a key of its own allows, and the server does not."""
STRANGER = "https://evil.example"
"""An origin nothing allows."""


async def create_client_key(database_url: str, *origins: str, name: str = "page") -> str:
    new = keys.generate()
    conn = await asyncpg.connect(database_url)
    try:
        await ApiKeyRepository(conn).create(name, Scope.CLIENT, new, origins=origins)
    finally:
        await conn.close()
    return new.token


async def revoke_all(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        repository = ApiKeyRepository(conn)
        for key in await repository.list():
            await repository.revoke(key.id)
    finally:
        await conn.close()


@asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[LiveServer]:
    """A live server of `settings` with `changes`, allowing PAGE server-wide."""
    changed = replace(settings, cors_origins=(PAGE,), **changes)
    async with running_server(create_app(changed)) as live:
        yield live


def exposure(
    unit: str, variant: str, *, experiment: str = "one-page", phase: int = 1, **attributes: Any
) -> dict[str, Any]:
    return {
        "kind": "exposure",
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "experiment": experiment,
        "phase": phase,
        "variant": variant,
        "unit": unit,
        "attributes": attributes,
    }


def track(unit: str, value: float | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "track",
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "event": "checkout",
        "unit": unit,
    }
    if value is not None:
        event["value"] = value
    return event


def client_headers(token: str, origin: str | None = PAGE) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def bulk(
    http: httpx.AsyncClient, token: str, origin: str | None = PAGE, **context: Any
) -> httpx.Response:
    return await http.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "user-1", **context}},
        headers=client_headers(token, origin),
    )
