"""The live events page in a real browser (Debian's chromium through Playwright): a QA tester logs in, follows
a test device, the app posts events through POST /v1/events, and the rows appear with their verdicts
(a screenshot goes to test-artifacts/live-events-page.png)."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser

from flagd.auth.keys import Scope
from tests.flagd.tracking.test_arrival import PLAN, apply_plan, track
from tests.flagd.web.test_pages import ARTIFACTS, log_in
from tests.support import LiveServer, create_key

HOSTILE = '<img src=x onerror="document.body.dataset.owned=1">'


async def test_should_show_the_units_events_as_they_arrive_with_verdicts_and_repeats(
    server: LiveServer, admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str, browser: Browser
) -> None:
    await apply_plan(admin, {**PLAN, "$plan": {"mode": "observe"}})
    token = await create_key(database_url, Scope.RESULTS, "qa")
    page = await browser.new_page()
    assert await log_in(page, server.url, token, "/events/live?unit=qa-device") == 303
    assert page.url == server.url + "/events/live?unit=qa-device"
    await page.wait_for_selector("#live-status:has-text('Watching')", timeout=10_000)

    good = track("signup", {"plan": "pro"}, unit="qa-device")
    twice = {**track("signup", {"plan": "pro"}, unit="qa-device"), "timestamp": good["timestamp"]}
    wrong = track("signup", {"plan": HOSTILE}, unit="qa-device")
    other = track("signup", {"plan": "pro"}, unit="someone-else")
    answer = await sdk.post("/v1/events", json={"events": [good, twice, wrong, other]})
    assert answer.status_code == 200, answer.text

    await page.wait_for_selector("#live-rows > li:nth-child(3)", timeout=10_000)
    assert await page.locator("#live-rows > li").count() == 3
    assert await page.locator("#live-rows > li.bad").count() == 1
    problem = await page.inner_text("#live-rows > li.bad ul.problems")
    assert 'plan must be one of "free", "pro"; got "<img' in problem
    assert "(not in enum, properties.plan)" in problem
    # All three within a second of each other: the second and third fired again.
    assert await page.locator("#live-rows .repeat").count() == 2
    summary = await page.inner_text("#live-summary")
    assert "3 events seen: 3 track events, 0 exposures" in summary
    assert "Every track event is in the plan" in summary
    assert "1 of 3 track events do not match the plan" in summary
    assert "2 events fired again within 1 s" in summary
    # The property is shown as text: no element was made of it.
    assert await page.locator("#live-rows img").count() == 0
    assert "<img src=x onerror=" in await page.inner_text("#live-rows")
    assert await page.evaluate("document.body.dataset.owned") is None
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "live-events-page.png"), full_page=True)
    await page.close()
