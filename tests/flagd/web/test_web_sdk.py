"""The OpenFeature web SDK against flagd from a page on another origin (issue 22), in Debian's chromium.

The real @openfeature/web-sdk and @openfeature/ofrep-web-provider from npm, at the versions
tests/browser/package.json pins (`make npm` installs them), with flagd-web.js's hook for exposures and
conversions, and a client key restricted to the page's origin. The page (tests/browser/page.html, page.js) is
served from origin A by a small static server here; flagd is origin B (another port is another origin).
Without the npm packages or chromium these tests skip with a message, and fail under CI (CI=true).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Response
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from flagd.cli.documents import read_document
from tests.docs.markdown import SAVED, blocks
from tests.support import LiveServer, bearer, flagd_env, missing, running_server

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[3]
NPM = ROOT / "tests" / "browser"
MODULES = NPM / "node_modules"
SERVED_MODULE = ROOT / "flagd" / "web" / "static" / "flagd-web.js"
PUBLISHED = ROOT / "web" / "flagd-openfeature"
PACKAGES = (
    "@openfeature/core",
    "@openfeature/web-sdk",
    "@openfeature/ofrep-core",
    "@openfeature/ofrep-web-provider",
)
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


def esm_entry(manifest: dict[str, Any]) -> str:
    """The file of a package's ES module build: its `module`, else the `import` condition of its exports."""
    module = manifest.get("module")
    if isinstance(module, str):
        return module
    exports = manifest.get("exports") or {}
    entry = exports.get(".", exports) if isinstance(exports, dict) else None
    found = entry.get("import") if isinstance(entry, dict) else None
    if not isinstance(found, str):
        raise AssertionError(f"{manifest.get('name')} names no ES module build (module or exports.import)")
    return found


def import_map() -> dict[str, str]:
    """Each OpenFeature package to its ES module build under /node_modules, and flagd-web to the hook."""
    absent = [name for name in PACKAGES if not (MODULES / name / "package.json").is_file()]
    if absent:
        missing(
            f"the npm packages of the browser tests are not installed ({', '.join(absent)} missing): "
            "run `make npm` (npm ci --prefix tests/browser)"
        )
    imports = {"flagd-web": "/flagd-web.js"}
    for name in PACKAGES:
        manifest = json.loads((MODULES / name / "package.json").read_text(encoding="utf-8"))
        imports[name] = f"/node_modules/{name}/{esm_entry(manifest).removeprefix('./')}"
    return imports


def static_origin(html: str, scripts: dict[str, str]) -> Starlette:
    """A page's origin: the page at /, each of `scripts` at its path (read when asked for, so a test may add
    one once it knows the origin), flagd-web.js as flagd serves it, the installed npm packages under
    /node_modules."""
    scripts.setdefault("/flagd-web.js", SERVED_MODULE.read_text(encoding="utf-8"))

    async def page(request: StarletteRequest) -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def script(request: StarletteRequest) -> StarletteResponse:
        text = scripts.get(request.url.path)
        if text is None:
            return StarletteResponse("not found", status_code=404)
        return StarletteResponse(text, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/", page),
            Mount("/node_modules", StaticFiles(directory=MODULES)),
            Route("/{name:path}", script),
        ]
    )


def page_app(imports: dict[str, str]) -> Starlette:
    """The test page's origin (tests/browser/page.html and page.js, the import map put in)."""
    html = (NPM / "page.html").read_text(encoding="utf-8")
    html = html.replace("{{IMPORT_MAP}}", json.dumps({"imports": imports}))
    return static_origin(html, {"/page.js": (NPM / "page.js").read_text(encoding="utf-8")})


@dataclass(slots=True)
class Origins:
    allowed: LiveServer
    other: LiveServer


@pytest.fixture
async def origins() -> AsyncIterator[Origins]:
    app = page_app(import_map())
    async with running_server(app) as allowed, running_server(app) as other:
        yield Origins(allowed, other)


async def create_client_key(database_url: str, origin: str, cwd: Path) -> str:
    """A client key allowed from `origin`, made as an operator makes one (`flagd keys create`)."""
    command = [sys.executable, "-m", "flagd", "keys", "create", "--scope", "client", "web-page"]
    command += ["--origin", origin, "--database-url", database_url]
    done = await asyncio.to_thread(
        subprocess.run, command, env=flagd_env(), cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass(slots=True)
class Network:
    """What the page asked flagd, and what flagd answered, as the browser saw it."""

    flagd: str
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("request", lambda request: self._keep(self.requests, request, request.url))
        page.on("response", lambda response: self._keep(self.responses, response, response.url))

    def _keep(self, into: list[Any], item: Any, url: str) -> None:
        if url.startswith(self.flagd):
            into.append(item)

    def posted_events(self) -> list[dict[str, Any]]:
        sent = []
        for request in self.requests:
            if request.method == "POST" and request.url == f"{self.flagd}/v1/events" and request.post_data:
                sent.extend(json.loads(request.post_data)["events"])
        return sent


async def until(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 10.0) -> T:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} within {seconds} s")
        await asyncio.sleep(0.05)


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
    async with httpx.AsyncClient(base_url=flagd.url, headers={**bearer(key), "Origin": origin}) as http:
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
    async with httpx.AsyncClient(base_url=server.url) as http:
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


async def test_should_run_the_page_of_the_browser_quickstart(
    browser: Browser,
    server: LiveServer,
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    database_url: str,
    conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    """docs/browser.md's page and script as the reader saves them, against its example experiment."""
    saved = {block.file: block.text for block in blocks(ROOT / "docs" / "browser.md") if block.lang in SAVED}
    html, app = saved["shop/index.html"], saved["shop/app.js"]
    for name, path in import_map().items():
        if name.startswith("@openfeature/"):
            assert f'"{name}": ".{path}"' in html, f"docs/browser.md's import map must map {name} to .{path}"
    document = read_document(str(ROOT / "examples" / "experiment.yaml"))
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/one-page-checkout/start")).status_code == 200
    scripts = {"/app.js": app}
    async with running_server(static_origin(html, scripts)) as shop:
        key = await create_client_key(database_url, shop.url, tmp_path)
        scripts["/config.js"] = (
            f'export const FLAGD_URL = "{server.url}";\nexport const CLIENT_KEY = "{key}";\n'
        )
        # A unit the example experiment takes in (half of the eligible users, less the layer's holdout),
        # found with an sdk key (the client key's rate limit is for pages) in bulk, which records nothing.
        unit, assigned = "", None
        for candidate in (f"user-{i}" for i in range(200)):
            context = {"targetingKey": candidate, "country": "NL"}
            bulk = await sdk.post("/ofrep/v1/evaluate/flags", json={"context": context})
            flag = next(f for f in bulk.json()["flags"] if f["key"] == "checkout-page")
            if flag["metadata"].get("experimentExposure"):
                unit, assigned = candidate, flag["variant"]
                break
        assert unit, "none of 200 users is in the example experiment"
        page = await browser.new_page(locale="nl-NL")
        await page.goto(f"{shop.url}/?user={unit}")
        await page.wait_for_selector("#checkout[data-layout]", timeout=15_000)
        assert await page.get_attribute("#checkout", "data-layout") == assigned
        await page.click("#pay")
        await page.goto("about:blank")

        async def stored() -> list[Any] | None:
            rows = await conn.fetch("SELECT name, unit, value FROM events ORDER BY name")
            return list(rows) if len(rows) >= 2 else None

        events = await until(stored, "the quickstart's conversions were not stored")
        assert [tuple(r) for r in events] == [("checkout_completed", unit, None), ("order_paid", unit, 49.5)]
        exposures = await conn.fetch("SELECT unit, variant, source, attributes FROM exposures")
        assert [(r["unit"], r["variant"], r["source"]) for r in exposures] == [(unit, assigned, "client")]
        assert json.loads(exposures[0]["attributes"]) == {"country": "NL"}
        await page.close()
