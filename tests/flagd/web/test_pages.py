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
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page

from flagd.auth.keys import Scope
from tests.flagd.results.test_results_recompute import DOCUMENT, start_pricing
from tests.support import TIMEOUT, LiveServer, create_key

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


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


def with_draft(document: dict[str, Any]) -> dict[str, Any]:
    """`document` and an experiment that is never started."""
    drafted = copy.deepcopy(document)
    drafted["flags"]["later-flag"] = {"state": "ENABLED", "variants": {"x": 1, "y": 2}, "defaultVariant": "x"}
    drafted["experiments"]["later"] = {
        "flag": "later-flag",
        "variants": {"x": 1, "y": 1},
        "metrics": [{"metric": "converted", "role": "primary"}],
    }
    return drafted


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
    async with httpx.AsyncClient(
        timeout=TIMEOUT, base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        expected = (await api.get("/v1/experiments/pricing/results")).json()

    context = await browser.new_context(viewport={"width": 1280, "height": 1600})
    page = await context.new_page()
    assert await log_in(page, server.url, token, "/experiments/pricing") == 303
    assert page.url == server.url + "/experiments/pricing"
    await page.wait_for_selector("body[data-charts=drawn]", timeout=15_000)

    assert await page.text_content("#decision-action") == expected["decision"]["action"]
    headline = await page.text_content("#headline") or ""
    assert headline.startswith("Investigate before deciding: "), headline  # 7 of 240 units in two variants
    assert "check failed" not in headline
    rows = await page.locator("#metrics-table tbody tr").count()
    assert rows == len(expected["metrics"]) * len(expected["units"])  # a row per metric and variant
    treatments = len(expected["units"]) - 1
    # The lift plot: a line and a band per treatment, with a legend of its own; units: a line per variant.
    assert await page.get_attribute("#lift-chart", "data-series") == str(treatments)
    assert await page.get_attribute("#units-chart", "data-series") == str(len(expected["units"]))
    assert await page.locator("#lift-chart canvas").count() == 1
    assert await page.locator("#units-chart canvas").count() == 1
    assert await page.locator("#lift-legend .swatch").count() == treatments
    assert await page.locator("#health li").count() == len(expected["health"])
    # Metric names, not keys; p-values only in the technical details.
    assert "Order value" in (await page.inner_text("#metrics-table"))
    assert "p (adjusted)" not in (await page.inner_text("#metrics-table"))
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

    # The index lists both experiments with their headlines, metric names and no link to a draft.
    assert (
        await admin.put("/v1/admin/flag-set", json=with_draft(with_quiet_experiment()))
    ).status_code == 200
    await page.goto(server.url + "/experiments")
    assert await page.locator("#experiments tbody tr").count() == 3
    index = await page.inner_text("#experiments")
    assert "Converted" in index
    assert "draft — not started" in index
    assert await page.locator("#experiments a[href='/experiments/later']").count() == 0
    favicon = await page.goto(server.url + "/favicon.ico")
    assert favicon is not None
    assert favicon.status == 200
    assert favicon.headers["content-type"] == "image/x-icon"

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
