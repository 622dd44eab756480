"""Fixtures of the client-key and CORS tests: a live server that allows the test page's origin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from flagd.settings import Settings
from tests.flagd.routes.client_support import serving
from tests.support import LiveServer


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    """A live server with FLAGD_CORS_ORIGINS naming client_support.PAGE."""
    async with serving(settings) as server:
        yield server


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `live` that sends no key of its own."""
    async with httpx.AsyncClient(base_url=live.url, timeout=10.0) as client:
        yield client
