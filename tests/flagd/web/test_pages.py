"""The results pages in a real browser: Debian's chromium, headless, driven by Playwright.

The server is a real `flagd` app on 127.0.0.1 with events posted through POST /v1/events. The
browser logs in through the form, reads the decision, the metrics table and both plots, and a
screenshot goes to test-artifacts/ (RESULTS_SCREENSHOT names another file). Without chromium the
tests skip with a message, and fail under CI (CI=true): `make test` installs it when run as root.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from flagd.auth.keys import Scope
from tests.flagd.results.test_results_recompute import DOCUMENT, start_pricing
from tests.support import LiveServer, create_key

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
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
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def with_quiet_experiment() -> dict[str, Any]:
    """The priced experiment, and a second one that starts but never gets data."""
    document = copy.deepcopy(DOCUMENT)
    document["flags"]["banner"] = {
        "state": "ENABLED",
        "variants": {"off": False, "on": True},
        "defaultVariant": "off",
    }
    document["experiments"]["quiet"] = {
        "flag": "banner",
        "variants": {"off": 1, "on": 1},
        "metrics": [{"metric": "converted", "role": "primary"}],
    }
    return document


async def log_in(page: Page, base: str, token: str, target: str) -> int:
    """Open `target`, be sent to the form, log in with `token`; the login answer's status."""
    await page.goto(base + target)
    assert page.url.startswith(base + "/login?next=")
    await page.fill("#key", token)
    async with page.expect_response(
        lambda r: r.url.endswith("/login") and r.request.method == "POST"
    ) as answer:
        await page.click("#login")
    await page.wait_for_load_state()
    status = (await answer.value).status
    if status == 403:
        print(await page.content())
    return status


async def test_should_log_in_and_show_the_decision_the_table_and_both_plots(
    server: LiveServer, admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str, browser: Browser
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=with_quiet_experiment())).status_code == 200
    assert (await admin.post("/v1/admin/experiments/quiet/start")).status_code == 200
    await start_pricing(admin, sdk, 240, database_url)
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as api:
        expected = (await api.get("/v1/experiments/pricing/results")).json()

    context = await browser.new_context(viewport={"width": 1280, "height": 1600})
    page = await context.new_page()
    assert await log_in(page, server.url, token, "/experiments/pricing") == 303
    assert page.url == server.url + "/experiments/pricing"
    await page.wait_for_selector("body[data-charts=drawn]", timeout=15_000)

    assert await page.text_content("#decision-action") == expected["decision"]["action"]
    assert await page.text_content("#decision-reason") == expected["decision"]["reason"]
    rows = await page.locator("#metrics-table tbody tr").count()
    assert rows == len(expected["metrics"]) * len(expected["units"])  # a row per metric and variant
    treatments = len(expected["units"]) - 1
    # The lift plot: each treatment's lift with its upper and lower always-valid bound; units: a line per variant.
    assert await page.get_attribute("#lift-chart", "data-series") == str(3 * treatments)
    assert await page.get_attribute("#units-chart", "data-series") == str(len(expected["units"]))
    assert await page.locator("#lift-chart canvas").count() == 1
    assert await page.locator("#units-chart canvas").count() == 1
    assert await page.locator("#health tbody tr").count() == len(expected["health"])
    ARTIFACTS.mkdir(exist_ok=True)
    shot = Path(os.environ.get("RESULTS_SCREENSHOT", ARTIFACTS / "results-page.png"))
    await page.screenshot(path=str(shot), full_page=True)
    assert len(await asyncio.to_thread(shot.read_bytes)) > 10_000

    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["flagd_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert token not in session["value"]

    # A segment breakdown comes with its multiple-comparisons warning.
    await page.fill("#segment", "platform")
    await page.click("#segments button")
    await page.wait_for_selector("#segment-warning")
    assert "comparisons" in (await page.text_content("#segment-warning") or "")

    # The index lists both experiments with their headlines.
    await page.goto(server.url + "/experiments")
    assert await page.locator("#experiments tbody tr").count() == 2

    missing = await page.goto(server.url + "/experiments/nope")
    assert missing is not None
    assert missing.status == 404
    assert "No such experiment" in (await page.text_content("#message") or "")

    quiet = await page.goto(server.url + "/experiments/quiet")
    assert quiet is not None
    assert quiet.status == 200
    assert "No data yet" in (await page.text_content("#message") or "")

    await page.click("header .logout button")
    await page.wait_for_load_state()
    assert page.url.startswith(server.url + "/login")
    await page.goto(server.url + "/experiments/pricing")
    assert page.url.startswith(server.url + "/login?next=")
    await context.close()


async def test_should_refuse_a_wrong_key_without_saying_which_part_was_wrong(
    server: LiveServer, admin: httpx.AsyncClient, database_url: str, browser: Browser
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=with_quiet_experiment())).status_code == 200
    real = await create_key(database_url, Scope.RESULTS, "pm")
    sdk_key = await create_key(database_url, Scope.SDK, "app")
    prefix, secret = real[len("flagd_") :].split("_", 1)
    wrong_secret = f"flagd_{prefix}_{'A' * len(secret)}"
    unknown = f"flagd_{'0' * 10}_{secret}"
    context = await browser.new_context()
    page = await context.new_page()
    messages = set()
    for token in (wrong_secret, unknown, sdk_key, "not a key at all"):
        assert await log_in(page, server.url, token, "/experiments") == 401
        messages.add(await page.text_content("#login-error"))
    assert len(messages) == 1  # the same sentence, whatever was wrong
    (message,) = messages
    assert message is not None
    for telling in ("secret", "prefix", "scope", "malformed", "revoked", "unknown"):
        assert telling not in message.lower()
    assert "flagd_session" not in {c["name"] for c in await context.cookies()}
    await context.close()
