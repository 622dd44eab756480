"""Fixtures of the results tests: a client with a results key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from flagd.auth.keys import Scope
from tests.support import LiveServer, bearer, create_key


@pytest.fixture
async def results_client(server: LiveServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, headers=bearer(token)) as http:
        yield http
