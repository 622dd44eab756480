"""What the browser tests of web pages share: the npm packages, a page's origin, a client key, the network as
the page saw it.

The packages are tests/browser's, at the versions its package-lock.json pins (`make npm` installs them); without
them the tests skip with a message, and fail under CI (CI=true).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Page, Request, Response
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tests.support import flagd_env, missing

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[3]
NPM = ROOT / "tests" / "browser"
MODULES = NPM / "node_modules"
PACKAGES = (
    "@openfeature/core",
    "@openfeature/web-sdk",
    "@openfeature/ofrep-core",
    "@openfeature/ofrep-web-provider",
)


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
    one once it knows the origin), the installed npm packages under /node_modules."""

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
