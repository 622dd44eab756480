"""docs/browser.md's two quickstarts, as a reader saves them, against its example experiment, in chromium.

The plain HTML page runs as written (the import map's flagd URL put in), importing flagd-web.js from the flagd
server itself, another origin. The React app is bundled with the esbuild command the doc gives, from the
packages tests/browser pins (`make npm`), with a config.js naming the test's server and client key as the
reader's does. Each page is served from its own origin by a small static server; flagd is another.
Without the npm packages or chromium these tests skip with a message, and fail under CI (CI=true).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Browser

from flagd.cli.documents import read_document
from tests.docs.markdown import SAVED, blocks
from tests.flagd.web.web_support import (
    MODULES,
    NPM,
    ROOT,
    Network,
    create_client_key,
    import_map,
    static_origin,
    until,
)
from tests.support import LiveServer, running_server

DOC = ROOT / "docs" / "browser.md"
EXPERIMENT = "one-page-checkout"
DOC_FLAGD = "http://127.0.0.1:8080"  # where the doc's reader runs flagd


def saved_files() -> dict[str, str]:
    return {block.file: block.text for block in blocks(DOC) if block.lang in SAVED and block.file}


def doc_command(program: str) -> list[str]:
    """The arguments of the doc's one command line that runs `program` (continued lines joined)."""
    found = [
        shlex.split(line)
        for block in blocks(DOC)
        if block.lang == "sh"
        for line in block.text.replace("\\\n", " ").splitlines()
        if program in line
    ]
    assert len(found) == 1, f"docs/browser.md must run {program} once, not {len(found)} times"
    return found[0]


async def start_example(admin: httpx.AsyncClient) -> None:
    document = read_document(str(ROOT / "examples" / "experiment.yaml"))
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    assert (await admin.post(f"/v1/admin/experiments/{EXPERIMENT}/start")).status_code == 200


async def unit_in_experiment(sdk: httpx.AsyncClient, variant: str | None = None) -> tuple[str, str]:
    """A Dutch user the example experiment takes in (half of the eligible users, less the layer's holdout),
    in `variant` when given, and the variant: found with an sdk key (the client key's rate limit is for pages)
    in bulk, which records nothing."""
    for unit in (f"user-{i}" for i in range(200)):
        bulk = await sdk.post(
            "/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": unit, "country": "NL"}}
        )
        flag = next(f for f in bulk.json()["flags"] if f["key"] == "checkout-page")
        if flag["metadata"].get("experimentExposure") and variant in (None, flag["variant"]):
            return unit, flag["variant"]
    raise AssertionError(f"none of 200 users is in the example experiment's {variant or 'any'} variant")


async def stored_events(conn: asyncpg.Connection, count: int) -> list[tuple[Any, ...]]:
    async def stored() -> list[Any] | None:
        rows = await conn.fetch("SELECT name, unit, value FROM events ORDER BY name")
        return list(rows) if len(rows) >= count else None

    return [tuple(r) for r in await until(stored, "the quickstart's conversions were not stored")]


async def sent(network: Network, kind: str) -> list[dict[str, Any]] | None:
    """The events of `kind` the page has posted to flagd, when there are any."""
    return [e for e in network.posted_events() if e["kind"] == kind] or None


def config_js(server: LiveServer, key: str) -> str:
    """shop/config.js as the doc's first block writes it, for the test's server and key."""
    return f'export const FLAGD_URL = "{server.url}";\nexport const CLIENT_KEY = "{key}";\n'


async def test_should_run_the_page_of_the_browser_quickstart_with_the_hook_from_the_server(
    browser: Browser,
    server: LiveServer,
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    database_url: str,
    conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    saved = saved_files()
    html, app = saved["shop/index.html"], saved["shop/app.js"]
    for name, path in import_map().items():
        if name.startswith("@openfeature/"):
            assert f'"{name}": ".{path}"' in html, f"docs/browser.md's import map must map {name} to .{path}"
    module = f"{DOC_FLAGD}/static/flagd-web.js"
    assert f'"@flagd/openfeature-web-hooks": "{module}"' in html, "the page imports flagd-web.js from flagd"
    await start_example(admin)
    scripts = {"/app.js": app}
    async with running_server(static_origin(html.replace(DOC_FLAGD, server.url), scripts)) as shop:
        key = await create_client_key(database_url, shop.url, tmp_path)
        scripts["/config.js"] = config_js(server, key)
        unit, assigned = await unit_in_experiment(sdk)
        page = await browser.new_page(locale="nl-NL")
        network = Network(server.url)
        network.watch(page)
        await page.goto(f"{shop.url}/?user={unit}")
        await page.wait_for_selector("#checkout[data-layout]", timeout=15_000)
        assert await page.get_attribute("#checkout", "data-layout") == assigned
        # The module came from flagd, allowed to any origin (module scripts are fetched in CORS mode).
        [hook] = [r for r in network.responses if r.url == f"{server.url}/static/flagd-web.js"]
        assert (hook.status, hook.headers.get("access-control-allow-origin")) == (200, "*")
        await page.click("#pay")
        await page.goto("about:blank")

        events = await stored_events(conn, 2)
        assert events == [("checkout_completed", unit, None), ("order_paid", unit, 49.5)]
        exposures = await conn.fetch("SELECT unit, variant, source, attributes FROM exposures")
        assert [(r["unit"], r["variant"], r["source"]) for r in exposures] == [(unit, assigned, "client")]
        assert json.loads(exposures[0]["attributes"]) == {"country": "NL"}
        await page.close()


async def bundle_react_app(folder: Path) -> str:
    """The doc's React app bundled in `folder` by the doc's own esbuild command, with tests/browser's
    node_modules where the reader's `npm install --prefix react` puts theirs."""
    install = doc_command("npm install --prefix react")
    lock = json.loads((NPM / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for spec in install:
        name, _, version = spec.rpartition("@")
        if name and not name.startswith("-"):
            pinned = lock.get(f"node_modules/{name}", {}).get("version")
            assert version == pinned, f"docs/browser.md installs {spec}; the tests use {name}@{pinned}"
    assert "./web/flagd-openfeature" in install, "docs/browser.md installs the hook from the checkout"
    build = doc_command("esbuild react/main.jsx")
    assert build[0] == "react/node_modules/.bin/esbuild", build
    (folder / "react" / "node_modules").symlink_to(MODULES, target_is_directory=True)
    done = await asyncio.to_thread(
        subprocess.run, build, cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return (folder / "react" / "app.js").read_text(encoding="utf-8")


async def test_should_run_the_react_app_of_the_browser_quickstart_and_expose_once_however_often_it_renders(
    browser: Browser,
    server: LiveServer,
    admin: httpx.AsyncClient,
    sdk: httpx.AsyncClient,
    database_url: str,
    conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    import_map()  # skips, with what to run, when the npm packages are not installed
    saved = saved_files()
    await start_example(admin)
    scripts: dict[str, str] = {}
    async with running_server(static_origin(saved["react/index.html"], scripts)) as shop:
        key = await create_client_key(database_url, shop.url, tmp_path)
        (tmp_path / "react").mkdir()
        (tmp_path / "react" / "main.jsx").write_text(saved["react/main.jsx"], encoding="utf-8")
        (tmp_path / "react" / "config.js").write_text(config_js(server, key), encoding="utf-8")
        scripts["/app.js"] = await bundle_react_app(tmp_path)
        # A unit in the variant whose button differs from the default's, so the text shows the server's answer.
        unit, _ = await unit_in_experiment(sdk, "one-page")
        page = await browser.new_page(locale="nl-NL")
        network = Network(server.url)
        network.watch(page)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{shop.url}/?user={unit}")

        # Ready: the Suspense fallback gives way to the checkout in the assigned variant.
        await page.wait_for_selector("#pay", timeout=15_000)
        assert await page.get_attribute("#checkout", "data-layout") == "one-page"
        assert await page.text_content("#pay") == "Pay now"
        # Re-rendered before and after the exposure's batch leaves (within a second), and paid: the
        # conversions' batch leaves within a second too, while the page is open (what a page sends as it is
        # left, the browser does not report).
        for _ in range(3):
            await page.click("#more")
        await until(lambda: sent(network, "exposure"), "the app sent no exposure")
        for _ in range(2):
            await page.click("#more")
        assert await page.text_content("#more") == "Items: 6"
        await page.click("#pay")
        await page.wait_for_selector("#thanks")
        await until(lambda: sent(network, "track"), "the app sent no conversion")

        stored = await stored_events(conn, 2)
        assert stored == [("checkout_completed", unit, None), ("order_paid", unit, 6 * 49.5)]
        exposed = await sent(network, "exposure")
        assert [(e["unit"], e["variant"]) for e in exposed or []] == [(unit, "one-page")]
        exposures = await conn.fetch("SELECT unit, variant, source FROM exposures")
        assert [tuple(r) for r in exposures] == [(unit, "one-page", "client")]
        assert errors == []
        await page.close()
