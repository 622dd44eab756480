"""CORS on the endpoints a page calls with a client key, and on no other (flagd.http.cors)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagd.auth.client import ClientAccess, ClientPolicy
from flagd.http.cors import CorsMiddleware
from flagd.http.handlers import EXCEPTION_HANDLERS
from tests.flagd.routes.client_support import (
    OTHER_PAGE,
    PAGE,
    STRANGER,
    bulk,
    client_headers,
    create_client_key,
)
from tests.support import TIMEOUT, bearer, flag_definition, running_server

CLIENT_ENDPOINTS = [
    "/ofrep/v1/evaluate/flags",
    "/ofrep/v1/evaluate/flags/a",
    "/v1/events",
    "/v1/client/stream",
]
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type,if-none-match",
}


@pytest.mark.parametrize("path", CLIENT_ENDPOINTS)
async def test_should_answer_a_preflight_from_an_allowed_origin_before_authentication(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.options(path, headers={"Origin": PAGE, **PREFLIGHT})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == PAGE
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert response.headers["access-control-allow-headers"] == "Authorization, Content-Type, If-None-Match"
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers


async def test_should_allow_a_preflight_from_an_origin_a_client_key_allows(
    http: httpx.AsyncClient, database_url: str
) -> None:
    before = await http.options("/ofrep/v1/evaluate/flags", headers={"Origin": OTHER_PAGE, **PREFLIGHT})
    assert "access-control-allow-origin" not in before.headers
    await create_client_key(database_url, OTHER_PAGE)
    for _ in range(200):  # the origins are read again when the keys' notification arrives
        after = await http.options("/ofrep/v1/evaluate/flags", headers={"Origin": OTHER_PAGE, **PREFLIGHT})
        if "access-control-allow-origin" in after.headers:
            break
        await asyncio.sleep(0.02)
    assert after.headers["access-control-allow-origin"] == OTHER_PAGE


@pytest.mark.parametrize("path", CLIENT_ENDPOINTS)
async def test_should_not_allow_a_preflight_from_an_origin_nothing_allows(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.options(path, headers={"Origin": STRANGER, **PREFLIGHT})
    assert response.status_code == 204
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-methods" not in response.headers
    assert response.headers["vary"] == "Origin"


def assert_allowed(response: httpx.Response, origin: str = PAGE) -> None:
    assert response.headers.get("access-control-allow-origin") == origin, (
        response.status_code,
        response.headers,
    )
    assert response.headers["access-control-expose-headers"] == "ETag, Retry-After"
    assert "Origin" in response.headers.get_list("vary")
    assert "access-control-allow-credentials" not in response.headers


async def test_should_allow_every_answer_of_the_client_endpoints_errors_and_304_included(
    http: httpx.AsyncClient, database_url: str, admin_key: str
) -> None:
    await http.post(
        "/v1/admin/flags", json={"key": "a", "definition": flag_definition()}, headers=bearer(admin_key)
    )
    token = await create_client_key(database_url)
    first = await bulk(http, token)
    assert first.status_code == 200
    assert_allowed(first)
    revalidated = await http.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "user-1"}},
        headers={**client_headers(token), "If-None-Match": first.headers["etag"]},
    )
    assert revalidated.status_code == 304
    assert_allowed(revalidated)
    unauthorized = await http.post("/ofrep/v1/evaluate/flags", json={}, headers={"Origin": PAGE})
    assert unauthorized.status_code == 401
    assert_allowed(unauthorized)
    missing = await http.post("/ofrep/v1/evaluate/flags/nope", json={}, headers=client_headers(token))
    assert missing.status_code == 404
    assert_allowed(missing)
    no_token = await http.get("/v1/client/stream", headers={"Origin": PAGE})
    assert no_token.status_code == 401
    assert_allowed(no_token)
    malformed = await http.post("/v1/events", content=b"{", headers=client_headers(token))
    assert malformed.status_code == 400
    assert_allowed(malformed)


async def test_should_send_no_cors_headers_to_an_origin_nothing_allows(
    http: httpx.AsyncClient, database_url: str
) -> None:
    token = await create_client_key(database_url)
    response = await bulk(http, token, origin=STRANGER)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "path", ["/v1/flags", "/v1/flags/stream", "/v1/admin/flags", "/v1/experiments", "/metrics", "/healthz"]
)
async def test_should_send_no_cors_headers_elsewhere_and_refuse_options_there(
    http: httpx.AsyncClient, path: str, admin_key: str
) -> None:
    async with http.stream("GET", path, headers={"Origin": PAGE, **bearer(admin_key)}) as answered:
        assert answered.status_code == 200
        assert not [name for name in answered.headers if name.startswith("access-control-")]
    preflight = await http.options(path, headers={"Origin": PAGE, **PREFLIGHT})
    assert preflight.status_code == 405
    assert not [name for name in preflight.headers if name.startswith("access-control-")]


async def test_should_allow_the_answer_of_a_handler_that_failed() -> None:
    async def failing(request: Request) -> Response:
        raise RuntimeError("a bug")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        access = ClientAccess(cast(asyncpg.Pool, None), ClientPolicy(server_origins=frozenset({PAGE})))
        yield {"server": SimpleNamespace(auth=SimpleNamespace(client=access))}

    app = Starlette(
        routes=[Route("/v1/events", failing, methods=["POST"])],
        middleware=[Middleware(CorsMiddleware)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    async with running_server(app) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        response = await http.post("/v1/events", headers={"Origin": PAGE})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert_allowed(response)


@pytest.mark.parametrize("path", ["/static/flagd-web.js", "/static/results.css"])
async def test_should_let_a_page_of_any_origin_load_the_public_static_files(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path, headers={"Origin": STRANGER})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "access-control-expose-headers" not in response.headers
    page = await http.get("/experiments", headers={"Origin": STRANGER})
    assert not [name for name in page.headers if name.startswith("access-control-")]
