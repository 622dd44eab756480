"""The OpenFeature web SDK against flagd from a page on another origin (issue 22), in Debian's chromium.

The real @openfeature/web-sdk and @openfeature/ofrep-web-provider from npm, at the versions
tests/browser/package.json pins (`make npm` installs them), with flagd-web.js's hook for exposures and
conversions, and a client key restricted to the page's origin. The page (tests/browser/page.html, page.js) is
served from origin A by a small static server here; flagd is origin B (another port is another origin).
Without the npm packages or chromium these tests skip with a message, and fail under CI (CI=true). The
quickstarts of docs/browser.md run in test_browser_quickstarts.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, Response
from starlette.applications import Starlette

from tests.flagd.web.web_support import (
    NPM,
    ROOT,
    Network,
    create_client_key,
    import_map,
    static_origin,
    until,
)
from tests.support import TIMEOUT, LiveServer, bearer, running_server

SERVED_MODULE = ROOT / "flagd" / "web" / "static" / "flagd-web.js"
PUBLISHED = ROOT / "web" / "flagd-openfeature"
UNIT = "visitor-1"
EXPERIMENT = "one-page-checkout"
DOCUMENT: dict[str, Any] = {
    "flags": {
        "checkout-layout": {
            "state": "ENABLED",
            "variants": {"classic": "classic", "one-page": "one-page"},
            "defaultVariant": "classic",
        },
        "banner": {
            "state": "ENABLED",
            "variants": {"blue": "blue", "orange": "orange"},
            "defaultVariant": "blue",
            "targeting": {"if": [{"==": [{"var": "country"}, "NL"]}, "orange", "blue"]},
        },
        "new-nav": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"},
        "max-items": {
            "state": "ENABLED",
            "variants": {"few": 3, "many": 10},
            "defaultVariant": "few",
            "targeting": {"if": [{"==": [{"var": "country"}, "DE"]}, "many", "few"]},
        },
        "theme": {
            "state": "ENABLED",
            "variants": {"light": {"background": "#fff"}, "dark": {"background": "#000"}},
            "defaultVariant": "light",
        },
    },
    "metrics": {"orders": {"type": "conversion", "event": "order_paid", "direction": "increase"}},
    "experiments": {
        EXPERIMENT: {
            "flag": "checkout-layout",
            "variants": {"classic": 50, "one-page": 50},
            "metrics": [{"metric": "orders", "role": "primary"}],
        }
    },
}
CONFIGURATION_CHANGED = "PROVIDER_CONFIGURATION_CHANGED"


def page_app(imports: dict[str, str]) -> Starlette:
    """The test page's origin (tests/browser/page.html and page.js, the import map put in)."""
    html = (NPM / "page.html").read_text(encoding="utf-8")
    html = html.replace("{{IMPORT_MAP}}", json.dumps({"imports": imports}))
    scripts = {"/page.js": (NPM / "page.js").read_text(encoding="utf-8")}
    return static_origin(html, scripts | {"/flagd-web.js": SERVED_MODULE.read_text(encoding="utf-8")})


@dataclass(slots=True)
class Origins:
    allowed: LiveServer
    other: LiveServer


@pytest.fixture
async def origins() -> AsyncIterator[Origins]:
    app = page_app(import_map())
    async with running_server(app) as allowed, running_server(app) as other:
        yield Origins(allowed, other)


def page_url(origin: LiveServer, flagd: LiveServer, key: str, country: str) -> str:
    query = urlencode({"flagd": flagd.url, "key": key, "unit": UNIT, "country": country})
    return f"{origin.url}/?{query}"


async def started(page: Page) -> str:
    """The provider's status once the page has set it up (READY, or ERROR when that failed)."""
    await page.wait_for_function("() => window.flagdTest?.started === true", timeout=15_000)
    status: str = await page.evaluate("() => flagdTest.status()")
    return status


async def server_answer(
    flagd: LiveServer, key: str, origin: str, country: str, unit: str = UNIT
) -> dict[str, Any]:
    """flagd's own bulk OFREP answer for the context the page uses, by flag key."""
    context = {"targetingKey": unit, "country": country}
    async with httpx.AsyncClient(
        timeout=TIMEOUT, base_url=flagd.url, headers={**bearer(key), "Origin": origin}
    ) as http:
        response = await http.post("/ofrep/v1/evaluate/flags", json={"context": context})
    assert response.status_code == 200, response.text
    return {flag["key"]: flag for flag in response.json()["flags"]}


def flag_types(answer: dict[str, Any]) -> list[list[str]]:
    """Each flag with the getter an app would evaluate it with."""
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", dict: "object"}
    return [[key, kinds[type(flag["value"])]] for key, flag in answer.items()]


async def rendered(page: Page, answer: dict[str, Any], times: int = 1) -> dict[str, Any]:
    """The page's evaluation of every flag of `answer`, rendered `times` times (the last render)."""
    result: dict[str, Any] = await page.evaluate(
        "([flags, times]) => { let r; for (let i = 0; i < times; i++) r = flagdTest.render(flags); return r; }",
        [flag_types(answer), times],
    )
    return result


def assert_same_values(page_values: dict[str, Any], answer: dict[str, Any]) -> None:
    assert {key: v["value"] for key, v in page_values.items()} == {k: f["value"] for k, f in answer.items()}
    assert all(v["errorCode"] is None for v in page_values.values()), page_values


async def test_should_evaluate_follow_changes_and_send_exposures_and_conversions_from_another_origin(
    browser: Browser,
    origins: Origins,
    server: LiveServer,
    admin: httpx.AsyncClient,
    database_url: str,
    conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    assert (await admin.post(f"/v1/admin/experiments/{EXPERIMENT}/start")).status_code == 200
    origin = origins.allowed.url
    key = await create_client_key(database_url, origin, tmp_path)
    page = await browser.new_page()
    network = Network(server.url)
    network.watch(page)

    # Ready, with every flag as flagd evaluates it for the page's context, however often it renders.
    await page.goto(page_url(origins.allowed, server, key, "NL"))
    assert await started(page) == "READY", await page.evaluate("() => flagdTest.log")
    answer = await server_answer(server, key, origin, "NL")
    assert_same_values(await rendered(page, answer, times=20), answer)
    assigned = answer["checkout-layout"]["variant"]
    assert answer["checkout-layout"]["metadata"]["experimentExposure"] is True

    # A new context is evaluated again by the server (the banner follows the country). With the same
    # targetingKey the provider first answers from what it stored for that key and refreshes in the
    # background, announcing the server's answer with PROVIDER_CONFIGURATION_CHANGED: an app re-renders then.
    before = await page.evaluate("() => Date.now()")
    await page.evaluate("() => flagdTest.setContext({targetingKey: 'visitor-1', country: 'DE'})")
    answer = await server_answer(server, key, origin, "DE")
    changed = await page.wait_for_function(
        "([type, since]) => flagdTest.log.events.find(e => e.type === type && e.at >= since)",
        arg=[CONFIGURATION_CHANGED, before],
        timeout=10_000,
    )
    assert {"banner", "max-items"} <= set((await changed.json_value())["flagsChanged"])
    assert_same_values(await rendered(page, answer, times=20), answer)
    assert answer["banner"]["value"] == "blue"
    assert answer["max-items"]["value"] == 10
    await page.evaluate("() => flagdTest.flagd.flush()")
    exposures = [e for e in network.posted_events() if e["kind"] == "exposure"]
    assert [(e["experiment"], e["phase"], e["unit"], e["variant"]) for e in exposures] == [
        (EXPERIMENT, 1, UNIT, assigned)
    ]

    # The page again with the same context: the provider starts from its stored answer and revalidates
    # it with the ETag it read (exposed to the page by CORS): 304.
    async with page.expect_response(
        lambda r: r.url == f"{server.url}/ofrep/v1/evaluate/flags" and r.request.method == "POST"
    ) as revalidated:
        await page.goto(page_url(origins.allowed, server, key, "DE"))
    assert (await revalidated.value).status == 304
    assert (await revalidated.value).headers.get("access-control-allow-origin") == origin
    assert await started(page) == "READY"
    assert_same_values(await rendered(page, answer, times=5), answer)

    # A flag changed on the server reaches the page through the stream the bulk answer advertised.
    async def stream_open() -> Response | None:
        return next((r for r in network.responses if "/v1/client/stream" in r.url and r.status == 200), None)

    await until(stream_open, "the page opened no change stream")
    before = await page.evaluate("() => Date.now()")
    changed = DOCUMENT["flags"]["new-nav"] | {"defaultVariant": "on"}
    version = (await admin.get("/v1/admin/flags/new-nav")).headers["etag"]
    put = await admin.put(
        "/v1/admin/flags/new-nav", json={"definition": changed}, headers={"If-Match": version}
    )
    assert put.status_code == 200, put.text
    event = await page.wait_for_function(
        "([type, since]) => flagdTest.log.events.find(e => e.type === type && e.at >= since)",
        arg=[CONFIGURATION_CHANGED, before],
        timeout=5_000,
    )
    arrived = await event.json_value()
    assert arrived["at"] - before < 2_000, arrived
    assert "new-nav" in arrived["flagsChanged"]
    answer = await server_answer(server, key, origin, "DE")
    assert answer["new-nav"]["value"] is True
    assert_same_values(await rendered(page, answer), answer)

    # A conversion tracked just before the page is left is sent as it unloads, and stored.
    await page.evaluate("() => flagdTest.flagd.track('order_paid', 'visitor-1', {value: 1})")
    errors = await page.evaluate("() => flagdTest.log.errors")
    await page.goto("about:blank")

    async def conversion() -> list[Any] | None:
        rows = await conn.fetch("SELECT unit, value FROM events WHERE name = 'order_paid'")
        return list(rows) or None

    assert [tuple(r) for r in await until(conversion, "the conversion sent at unload was not stored")] == [
        (UNIT, 1.0)
    ]
    assert errors == []

    # One exposure stored for the unit, in the variant the server assigns; the results count it.
    stored = await conn.fetch(
        "SELECT experiment, phase, unit, variant, source, multiple_variants FROM exposures"
    )
    assert [tuple(r) for r in stored] == [(EXPERIMENT, 1, UNIT, assigned, "client", False)]
    results = await admin.get(f"/v1/experiments/{EXPERIMENT}/results")
    assert results.status_code == 200, results.text
    units = {u["variant"]: u["units"] for u in results.json()["units"]}
    assert units[assigned] == 1
    assert sum(units.values()) == 1
    await page.close()


async def test_should_refuse_the_page_from_an_origin_the_key_does_not_allow(
    browser: Browser,
    origins: Origins,
    server: LiveServer,
    admin: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=DOCUMENT)).status_code == 200
    key = await create_client_key(database_url, origins.allowed.url, tmp_path)
    page = await browser.new_page()
    network = Network(server.url)
    network.watch(page)
    await page.goto(page_url(origins.other, server, key, "NL"))
    assert await started(page) == "ERROR"
    assert network.requests, "the page never asked flagd"
    assert all("access-control-allow-origin" not in r.headers for r in network.responses)
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        preflight = await http.options(
            "/ofrep/v1/evaluate/flags",
            headers={
                "Origin": origins.other.url,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert "access-control-allow-origin" not in preflight.headers
    await page.close()


async def test_should_serve_the_hook_as_the_published_package_holds_it(client: httpx.AsyncClient) -> None:
    served = await client.get("/static/flagd-web.js")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    assert served.content == SERVED_MODULE.read_bytes() == (PUBLISHED / "flagd-web.js").read_bytes()
    manifest = json.loads((PUBLISHED / "package.json").read_text(encoding="utf-8"))
    assert manifest["type"] == "module"
    assert manifest["exports"]["."]["default"] == "./flagd-web.js"
    assert set(manifest["files"]) <= {path.name for path in PUBLISHED.iterdir()}
