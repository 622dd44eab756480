"""Every endpoint needs a key of the right scope; keys are checked against their stored hash."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from flagd.auth.keys import Scope
from flagd.auth.repository import ApiKeyRepository
from tests.support import bearer, create_key

ADMIN_ENDPOINTS = [
    ("GET", "/v1/admin/flags"),
    ("POST", "/v1/admin/flags"),
    ("GET", "/v1/admin/flags/some-flag"),
    ("PUT", "/v1/admin/flags/some-flag"),
    ("DELETE", "/v1/admin/flags/some-flag"),
    ("GET", "/v1/admin/flag-set"),
    ("PUT", "/v1/admin/flag-set"),
    ("GET", "/v1/admin/audit"),
]
SDK_ENDPOINTS = [
    ("GET", "/v1/flags"),
    ("POST", "/ofrep/v1/evaluate/flags/some-flag"),
    ("POST", "/ofrep/v1/evaluate/flags"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS + SDK_ENDPOINTS)
async def test_should_answer_401_without_a_key(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "flagd keys create" in response.json()["error"]["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
async def test_should_never_let_an_sdk_key_reach_admin_endpoints(
    client: httpx.AsyncClient, sdk_key: str, method: str, path: str
) -> None:
    response = await client.request(method, path, json={}, headers=bearer(sdk_key))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "this endpoint needs a key with scope admin; this key has scope sdk",
    }


@pytest.mark.parametrize(("method", "path"), SDK_ENDPOINTS)
async def test_should_not_let_a_results_key_evaluate_flags(
    client: httpx.AsyncClient, database_url: str, method: str, path: str
) -> None:
    results_key = await create_key(database_url, Scope.RESULTS)
    response = await client.request(method, path, json={}, headers=bearer(results_key))
    assert response.status_code == 403


async def test_should_let_an_admin_key_use_sdk_endpoints(client: httpx.AsyncClient, admin_key: str) -> None:
    assert (await client.get("/v1/flags", headers=bearer(admin_key))).status_code == 200


async def test_should_accept_the_key_in_x_api_key(client: httpx.AsyncClient, sdk_key: str) -> None:
    assert (await client.get("/v1/flags", headers={"X-API-Key": sdk_key})).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"Authorization": "Basic dXNlcjpwYXNz"},
            "The Authorization header must be `Bearer <key>`; got the Basic scheme. "
            "Send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        ),
        (
            {"Authorization": "flagd_0123456789_" + "A" * 43},
            "The Authorization header must be `Bearer <key>`; got a value without the Bearer scheme.",
        ),
        (
            {"Authorization": "Token flagd_0123456789_" + "A" * 43},
            "The Authorization header must be `Bearer <key>`; got the Token scheme.",
        ),
        (
            {"Authorization": "Bearer"},
            "The Authorization header must be `Bearer <key>`; got the Bearer scheme without a key.",
        ),
        ({"Authorization": "Bearer not-a-key"}, "the API key is malformed"),
        ({"X-API-Key": "flagd_0123456789_" + "A" * 43}, "the API key is not valid"),
    ],
)
async def test_should_explain_why_a_key_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    response = await client.get("/v1/flags", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith(message)
    assert "A" * 43 not in response.json()["error"]["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_should_take_x_api_key_beside_another_schemes_authorization(
    client: httpx.AsyncClient, sdk_key: str
) -> None:
    headers = {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": sdk_key}  # e.g. a proxy's own login
    assert (await client.get("/v1/flags", headers=headers)).status_code == 200


async def test_should_refuse_a_known_prefix_with_a_wrong_secret(
    client: httpx.AsyncClient, sdk_key: str
) -> None:
    forged = sdk_key[:-1] + ("A" if sdk_key[-1] != "A" else "B")
    response = await client.get("/v1/flags", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the API key is not valid"


async def test_should_stop_accepting_a_revoked_key_although_it_was_cached(
    client: httpx.AsyncClient, sdk_key: str, database_url: str
) -> None:
    assert (await client.get("/v1/flags", headers=bearer(sdk_key))).status_code == 200  # now cached
    conn = await asyncpg.connect(database_url)
    try:
        repository = ApiKeyRepository(conn)
        key = next(k for k in await repository.list() if sdk_key.startswith(f"flagd_{k.prefix}_"))
        await repository.revoke(key.id)
    finally:
        await conn.close()
    status = 200
    for _ in range(100):  # the revocation is announced by NOTIFY; wait for it to arrive
        status = (await client.get("/v1/flags", headers=bearer(sdk_key))).status_code
        if status == 401:
            break
        await asyncio.sleep(0.05)
    assert status == 401
