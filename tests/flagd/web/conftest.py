"""The browser the page tests drive: Debian's chromium, headless, through Playwright.

Without chromium the tests skip with a message, and fail under CI (CI=true): `make test` installs it
when run as root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support import missing

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if found:
        return found
    message = f"Debian's chromium is missing ({CHROMIUM}): `make test` installs it when run as root (apt-get install chromium)"
    missing(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()
