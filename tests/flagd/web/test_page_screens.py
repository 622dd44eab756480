"""The experiment page as a product manager sees it, after 1, 7, 30 and 60 days, on a phone and two screens.

Four experiments get simulated traffic through POST /v1/events (their phases backdated so past days
are accepted): 1 day that cannot tell yet, 7 days whose variant harms a guardrail, 30 days with a
real winner, 60 days with a skewed split. Each page is rendered in Debian's chromium at 390, 1024
and 1440 px and kept as test-artifacts/results-page-{days}d-{width}.png; the page must not scroll
sideways, must say its headline in words and show no raw value.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from flagd.auth.keys import Scope
from flagd.settings import Settings
from tests.flagd.web.test_pages import ARTIFACTS, log_in
from tests.support import LiveServer, backdate_phase, create_key

WIDTHS = (390, 1024, 1440)
VARIANTS = ("classic", "one-page")
RAW = re.compile(r"\bNone\b|\bnan\b|\binf\b|\b1 units\b|\d{5,}|check failed")
DECIMAL = re.compile(r"\d[\d,]*\.\d+")


def raw(text: str) -> list[str]:
    """What a person would not write: Python values, bad plurals, unseparated or over-precise numbers."""
    precise = [n for n in DECIMAL.findall(text) if len(n.replace(",", "").replace(".", "").lstrip("0")) > 3]
    return RAW.findall(text) + precise


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, accepting events of the 60-day simulation."""
    return replace(settings, events_max_age_days=90)


def experiment(days: int, name: str) -> dict[str, Any]:
    return {
        "flag": f"checkout-{days}d",
        "name": name,
        "variants": {"classic": 1, "one-page": 1},
        "expected_units": 6_000,
        "metrics": [
            {"metric": f"checkout-rate-{days}d", "role": "primary"},
            {"metric": f"revenue-{days}d", "role": "secondary"},
            {"metric": f"errors-{days}d", "role": "guardrail"},
        ],
    }


SCENARIOS: dict[int, dict[str, Any]] = {
    # days: units, the rates of checkout and error per variant, the share of units on one-page
    1: {"units": 400, "rates": {"classic": (0.10, 0.02), "one-page": (0.12, 0.02)}, "share": 0.5},
    7: {"units": 2_100, "rates": {"classic": (0.10, 0.02), "one-page": (0.11, 0.09)}, "share": 0.5},
    30: {"units": 3_600, "rates": {"classic": (0.10, 0.02), "one-page": (0.16, 0.02)}, "share": 0.5},
    60: {"units": 3_000, "rates": {"classic": (0.10, 0.02), "one-page": (0.12, 0.02)}, "share": 0.57},
}


def document() -> dict[str, Any]:
    """A flag, an experiment and its metrics per scenario; each reads events of its own names, so one
    scenario's traffic is not another's."""
    metrics: dict[str, Any] = {}
    for days in SCENARIOS:
        metrics |= {
            f"checkout-rate-{days}d": {
                "name": "Checkout rate",
                "type": "conversion",
                "event": f"checkout-{days}d",
                "direction": "increase",
            },
            f"revenue-{days}d": {
                "name": "Revenue",
                "type": "sum",
                "event": f"checkout-{days}d",
                "direction": "increase",
            },
            f"errors-{days}d": {
                "name": "Errors",
                "type": "conversion",
                "event": f"error-{days}d",
                "direction": "decrease",
            },
        }
    return {
        "flags": {
            f"checkout-{days}d": {
                "state": "ENABLED",
                "variants": {v: v for v in VARIANTS},
                "defaultVariant": "classic",
            }
            for days in SCENARIOS
        },
        "metrics": metrics,
        "experiments": {
            f"checkout-{days}d": experiment(days, f"One-page checkout ({days} day{'s' if days > 1 else ''})")
            for days in SCENARIOS
        },
    }


def every(rate: float, index: int) -> bool:
    """Whether the index-th of a sequence is one of the `rate` share picked evenly (no random clumps, so
    no day looks unusual by chance)."""
    return math.floor((index + 1) * rate) > math.floor(index * rate)


def simulated(key: str, days: int, now: datetime) -> tuple[datetime, list[dict[str, Any]]]:
    """Units exposed evenly from the start of the first day (UTC) until now, then their events."""
    scenario = SCENARIOS[days]
    rng = random.Random(days)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(midnight, now - timedelta(hours=3)) if days == 1 else midnight - timedelta(days=days - 1)
    span = (now - start).total_seconds() - 900
    seen = dict.fromkeys(VARIANTS, 0)
    events: list[dict[str, Any]] = []
    for i in range(scenario["units"]):
        variant = "one-page" if every(scenario["share"], i) else "classic"
        exposed = start + timedelta(seconds=span * i / scenario["units"])
        unit = f"{key}-u{i}"
        events.append(
            {
                "kind": "exposure",
                "event_id": str(uuid.uuid4()),
                "timestamp": exposed.isoformat(),
                "experiment": key,
                "phase": 1,
                "variant": variant,
                "unit": unit,
            }
        )
        checkout, error = scenario["rates"][variant]
        for name, rate in ((f"checkout-{days}d", checkout), (f"error-{days}d", error)):
            if every(rate, seen[variant]):
                event: dict[str, Any] = {
                    "kind": "track",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": (exposed + timedelta(seconds=rng.randrange(1, 600))).isoformat(),
                    "event": name,
                    "unit": unit,
                }
                if name.startswith("checkout"):
                    event["value"] = round(rng.uniform(20, 80), 2)
                events.append(event)
        seen[variant] += 1
    return start, events


async def shoot(page: Page, url: str, days: int) -> str:
    """Each width's full-page screenshot; the headline, checked at each width."""
    headline = ""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.goto(url)
        await page.wait_for_selector("body[data-charts=drawn]", timeout=15_000)
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{days} days at {width} px: the page is {scroll_width} px wide"
        headline = (await page.text_content("#headline") or "").strip()
        text = await page.inner_text("main")
        assert not raw(text), (days, width, raw(text))
        shot = ARTIFACTS / f"results-page-{days}d-{width}.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert len(await asyncio.to_thread(shot.read_bytes)) > 10_000
    return headline


async def test_should_read_in_words_at_every_width_from_one_day_to_sixty(
    server: LiveServer, admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str, browser: Browser
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=document())).status_code == 200
    now = datetime.now(UTC)
    for days in SCENARIOS:
        key = f"checkout-{days}d"
        assert (await admin.post(f"/v1/admin/experiments/{key}/start")).status_code == 200
        start, events = simulated(key, days, now)
        # A little before the first exposure, but never into the day before: the 1-day phase must have one
        # day whatever the hour (its first exposure is at midnight until 03:00 UTC).
        margin = min(
            864.0, (start - start.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        )
        await backdate_phase(admin, database_url, key, ((now - start).total_seconds() + margin) / 86_400)
        for first in range(0, len(events), 5_000):
            sent = await sdk.post("/v1/events", json={"events": events[first : first + 5_000]})
            assert sent.status_code == 200, sent.text[:500]
            assert sent.json()["accepted"] == len(events[first : first + 5_000]), sent.text[:500]
    token = await create_key(database_url, Scope.RESULTS, "pm")
    ARTIFACTS.mkdir(exist_ok=True)
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    assert await log_in(page, server.url, token, "/experiments") == 303

    headlines = {
        days: await shoot(page, f"{server.url}/experiments/checkout-{days}d", days) for days in SCENARIOS
    }

    # 1 day: too early to tell, said with both ends of the range; no chart of one dot.
    one = headlines[1]
    assert one.startswith("No clear difference yet in Checkout rate: One-page is between "), one
    # On day 1 the planned design's boundary is wide enough that the relative (Fieller) interval may have no
    # finite ends; the range is then said as the absolute difference, in percentage points.
    assert re.search(
        r"between \d[\d.,]*(%| percentage points) lower and \d[\d.,]*(%| percentage points) higher than Classic",
        one,
    ), one
    assert "Keep running" in one
    # 30 days: a winner, named with the metric, the change and its interval in words.
    thirty = headlines[30]
    assert re.fullmatch(
        r"One-page raised Checkout rate by \d+(\.\d)?% \(between \d+(\.\d)?% and \d+(\.\d)?%\)\. Ship One-page\.",
        thirty,
    ), thirty
    assert headlines[7].startswith("One-page is hurting Errors: it raised it by "), headlines[7]
    assert headlines[60].startswith(
        "Investigate before deciding: the split of users between variants is off ("
    ), headlines[60]

    await page.goto(f"{server.url}/experiments/checkout-1d")
    assert await page.locator("#lift-empty").count() == 1
    assert await page.locator("#lift-chart").count() == 0
    await page.goto(f"{server.url}/experiments/checkout-30d")
    assert await page.locator("#lift-chart canvas").count() == 1
    assert await page.locator("#lift-legend .swatch").count() == 1  # one treatment, no empty boxes
    assert await page.locator(".u-legend").count() == 0
    technical = page.locator("#technical")
    assert await technical.get_attribute("open") is None  # p-values behind a disclosure
    assert "p (adjusted)" in (await technical.text_content() or "")
    await page.click("#technical summary")
    assert await page.locator("#technical-table tbody tr").count() == 3  # 3 metrics x 1 treatment
    await technical.screenshot(path=str(ARTIFACTS / "results-page-30d-technical.png"))
    await context.close()
