"""The journeys page: the form, the funnel chart and its table, with the API's numbers, and on a phone.

Track events go in through POST /v1/events; the page is read over plain HTTP with a session (its numbers
must be the API's, in words) and in Debian's chromium at 390 px (no sideways scroll; a screenshot goes to
test-artifacts/journey-page-390.png). Without chromium the browser test skips with a message, and fails
under CI (CI=true).
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.async_api import Browser

from flagd.auth.keys import Scope
from flagd.results.words import percent
from tests.flagd.results.test_results_recompute import post_all
from tests.flagd.web.test_page_screens import raw
from tests.flagd.web.test_pages import ARTIFACTS, log_in
from tests.flagd.web.test_sessions import logged_in
from tests.support import TIMEOUT, LiveServer, bearer, create_key

STEPS = ("visit", "add_to_cart", "purchase")
QUERY = "step=visit&step=add_to_cart&step=purchase&window=2d&breakdown=property:country"


def journeys(units: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    events = []
    for i in range(units):
        moment = now - timedelta(days=rng.uniform(1, 10))
        country = rng.choice(("NL", "BE", "DE", "FR", "ES", "IT", "PT"))
        for k, step in enumerate(STEPS):
            if k and rng.random() < 0.4:
                break
            moment += timedelta(minutes=rng.uniform(1, 600))
            event: dict[str, Any] = {
                "kind": "track",
                "event_id": str(uuid.uuid4()),
                "timestamp": min(moment, now - timedelta(seconds=1)).isoformat(),
                "event": step,
                "unit": f"u{i}",
            }
            if k == 0:
                event["properties"] = {"country": country}
            events.append(event)
    return events


async def test_should_show_the_form_and_the_funnel_with_the_apis_numbers(
    server: LiveServer, sdk: httpx.AsyncClient, database_url: str
) -> None:
    await post_all(sdk, journeys(300))
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(token), timeout=60) as api:
        expected = (await api.get(f"/v1/journeys/funnel?{QUERY}")).json()
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as anonymous:
        away = await anonymous.get(f"/journeys?{QUERY}")
    assert away.status_code == 303
    assert away.headers["location"].startswith("/login?next=%2Fjourneys")
    page = await logged_in(server, token)
    try:
        form = await page.get("/journeys")
        # The form's empty fields mean their defaults, as a browser sends them.
        shown = await page.get(f"/journeys?{QUERY}&step=&from=&to=")
        bad = await page.get("/journeys?step=visit&step=visit")
        unknown = await page.get("/journeys?step=visit&step=purchase&breakdown=variant:nowhere")
        filtered = await page.get(
            "/journeys",
            params=[("step", "visit"), ("step", "purchase"), ("where", '1:{"country": {"in": ["NL"]}}')],
        )
    finally:
        await page.aclose()
    assert form.status_code == 200
    assert 'id="journey-form"' in form.text
    assert 'id="funnel-chart"' not in form.text
    assert shown.status_code == 200, shown.text
    html = shown.text
    assert "visit → add_to_cart → purchase" in html
    assert html.count('<g class="bar">') == 3 * (1 + 5)  # every unit and the 5 largest countries, per step
    assert "the table has all 7" in html
    everyone = expected["allUnits"]
    assert f"{everyone['entered']:,} units entered" in html
    for step in everyone["steps"]:
        assert f"{percent(step['fromStart'])} · {step['units']:,}" in html
    for segment in expected["segments"]:
        assert f"{segment['entered']:,} entered" in html
    text = re.sub(r"<[^>]+>", " ", html)
    assert raw(text) == []
    assert bad.status_code == 400
    assert "step 2 repeats step 1" in bad.text
    assert unknown.status_code == 400
    assert "breakdown names experiment nowhere" in unknown.text
    # A step's filter is kept in the form (a hidden field) and said above the chart.
    assert filtered.status_code == 200, filtered.text
    assert "1 step filtered (1)" in filtered.text
    assert 'name="where" value="1:{&#34;country&#34;:{&#34;in&#34;:[&#34;NL&#34;]}}"' in filtered.text


async def test_should_read_on_a_phone_without_scrolling_sideways(
    server: LiveServer, sdk: httpx.AsyncClient, database_url: str, browser: Browser
) -> None:
    await post_all(sdk, journeys(200))
    token = await create_key(database_url, Scope.RESULTS, "pm")
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    assert await log_in(page, server.url, token, f"/journeys?{QUERY}") == 303
    assert page.url == f"{server.url}/journeys?{QUERY}"
    assert await page.locator("#funnel-chart g.bar").count() == 18
    box = await page.locator("#funnel-chart").bounding_box()
    assert box is not None
    assert box["width"] <= 390
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    # The form asks again: dropping a step keeps the others.
    await page.fill("#journey-form input[name=step] >> nth=2", "")
    await page.click("#show-funnel")
    await page.wait_for_load_state()
    assert await page.locator("#funnel-chart g.bar").count() == 12
    await page.fill("#journey-form input[name=step] >> nth=2", "purchase")
    await page.click("#show-funnel")
    await page.wait_for_load_state()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "journey-page-390.png"), full_page=True)
    await context.close()
