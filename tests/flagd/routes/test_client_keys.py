"""Client keys: what they reach, from where, how often, their change stream and their events (issue 22)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from flagd.settings import Settings
from tests.flagd.routes.client_support import (
    OTHER_PAGE,
    PAGE,
    bulk,
    client_headers,
    create_client_key,
    exposure,
    revoke_all,
    serving,
    track,
)
from tests.support import bearer, flag_definition

DOCUMENT: dict[str, Any] = {
    "flags": {
        "checkout": {"state": "ENABLED", "variants": {"off": "off", "on": "on"}, "defaultVariant": "off"},
        "banner": flag_definition(),
    },
    "experiments": {
        "one-page": {
            "flag": "checkout",
            "variants": {"off": 50, "on": 50},
            "eligibility": {"in": [{"var": "country"}, ["NL", "BE"]]},
        },
    },
}


@pytest.fixture
async def client_key(database_url: str) -> str:
    return await create_client_key(database_url)


async def start_experiment(http: httpx.AsyncClient, admin_key: str) -> None:
    applied = await http.put("/v1/admin/flag-set", json=DOCUMENT, headers=bearer(admin_key))
    assert applied.status_code == 200, applied.text
    started = await http.post("/v1/admin/experiments/one-page/start", headers=bearer(admin_key))
    assert started.status_code == 200, started.text


async def evaluate_checkout(
    http: httpx.AsyncClient, key: str, unit: str, country: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        "/ofrep/v1/evaluate/flags/checkout",
        json={"context": {"targetingKey": unit, "country": country}},
        headers={**client_headers(key), **(headers or {})},
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/flags"),
        ("GET", "/v1/flags/stream"),
        ("GET", "/v1/admin/flags"),
        ("GET", "/v1/admin/flag-set"),
        ("GET", "/v1/experiments"),
        ("GET", "/v1/admin/events/stats"),
        ("GET", "/metrics"),
    ],
)
async def test_should_refuse_a_client_key_everything_but_evaluation_events_and_its_stream(
    http: httpx.AsyncClient, client_key: str, method: str, path: str
) -> None:
    response = await http.request(method, path, headers=client_headers(client_key))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert "this key has scope client" in response.json()["error"]["message"]


async def test_should_evaluate_with_a_client_key_from_an_allowed_origin_or_none(
    http: httpx.AsyncClient, client_key: str, admin_key: str
) -> None:
    await start_experiment(http, admin_key)
    for origin in (PAGE, None):  # no Origin: a mobile app, not a browser
        answer = await bulk(http, client_key, origin, country="NL")
        assert answer.status_code == 200, answer.text
        assert {flag["key"] for flag in answer.json()["flags"]} == {"checkout", "banner"}
        single = await http.post(
            "/ofrep/v1/evaluate/flags/banner",
            json={"context": {"targetingKey": "user-1"}},
            headers=client_headers(client_key, origin),
        )
        assert single.status_code == 200, single.text


async def test_should_refuse_a_key_from_an_origin_it_does_not_allow_without_cors_headers(
    http: httpx.AsyncClient, database_url: str
) -> None:
    own = await create_client_key(database_url, OTHER_PAGE)
    assert (await bulk(http, own, OTHER_PAGE)).headers["access-control-allow-origin"] == OTHER_PAGE
    # PAGE is allowed server-wide, but this key names origins of its own.
    refused = await bulk(http, own, PAGE)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers
    events = await http.post("/v1/events", json={"events": [track("u")]}, headers=client_headers(own, PAGE))
    assert events.status_code == 403
    assert events.json()["error"]["code"] == "origin_not_allowed"
    # A key without origins of its own takes the server's.
    plain = await create_client_key(database_url)
    assert (await bulk(http, plain, OTHER_PAGE)).json()["error"]["code"] == "origin_not_allowed"


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield orjson.loads(line[5:].strip())


async def stream_url(http: httpx.AsyncClient, key: str) -> str:
    answer = await bulk(http, key)
    assert answer.status_code == 200, answer.text
    (stream,) = answer.json()["eventStreams"]
    assert stream["type"] == "sse"
    assert stream["inactivityDelaySec"] == 120
    uri: str = stream["endpoint"]["requestUri"]
    assert uri.startswith("/v1/client/stream?token=")
    return uri


async def test_should_give_a_client_key_a_stream_url_with_a_token_that_reports_changes(
    http: httpx.AsyncClient, client_key: str, admin_key: str, sdk_key: str
) -> None:
    uri = await stream_url(http, client_key)
    # The same URL (and so the same answer and ETag) for as long as its window lasts.
    assert uri == await stream_url(http, client_key)
    async with http.stream("GET", uri, headers={"Origin": PAGE}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["access-control-allow-origin"] == PAGE
        changes = sse_events(response)
        initial = await asyncio.wait_for(anext(changes), 5)
        assert initial["type"] == "refetchEvaluation"
        created = await http.post(
            "/v1/admin/flags", json={"key": "new", "definition": flag_definition()}, headers=bearer(admin_key)
        )
        assert created.status_code == 201
        change = await asyncio.wait_for(anext(changes), 2)
    assert change["type"] == "refetchEvaluation"
    assert change["version"] == initial["version"] + 1
    assert set(change) == {"type", "version", "etag", "lastModified"}  # that something changed, not what
    # An sdk key's bulk answer names the sdk stream, as before.
    sdk_answer = await http.post("/ofrep/v1/evaluate/flags", json={}, headers=bearer(sdk_key))
    assert sdk_answer.json()["eventStreams"] == [
        {"type": "sse", "endpoint": {"requestUri": "/v1/flags/stream"}}
    ]


async def test_should_advise_a_reconnection_delay_of_several_seconds_with_jitter(
    http: httpx.AsyncClient, client_key: str
) -> None:
    delays = set()
    for _ in range(4):
        async with http.stream("GET", await stream_url(http, client_key)) as response:
            async for line in response.aiter_lines():
                if line.startswith("retry:"):
                    delays.add(int(line.removeprefix("retry:")))
                    break
    assert all(5_000 <= delay <= 10_000 for delay in delays)
    assert len(delays) > 1


async def test_should_refuse_a_stream_without_a_valid_token_or_of_a_revoked_key(
    http: httpx.AsyncClient, client_key: str, database_url: str
) -> None:
    missing = await http.get("/v1/client/stream")
    assert missing.status_code == 401
    assert "eventStreams" in missing.json()["error"]["message"]
    uri = await stream_url(http, client_key)
    forged = uri[:-4] + ("AAAA" if not uri.endswith("AAAA") else "BBBB")
    assert (await http.get(forged)).status_code == 401
    async with http.stream("GET", uri) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        await revoke_all(database_url)

        # The open stream ends once its key is revoked (it re-checks every half second).
        async def drain() -> None:
            async for _ in lines:
                pass

        await asyncio.wait_for(drain(), 5)
    revoked = await http.get(uri)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]["message"]


async def exposures(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch("SELECT * FROM exposures ORDER BY unit"))
    finally:
        await conn.close()


async def test_should_refuse_an_exposure_the_unit_is_not_assigned_and_keep_the_right_one_once(
    http: httpx.AsyncClient, client_key: str, admin_key: str, database_url: str
) -> None:
    await start_experiment(http, admin_key)
    served = await evaluate_checkout(http, client_key, "visitor-7", "NL", {"Flagd-Server-Exposures": "off"})
    assert served.json()["metadata"]["experimentExposure"] is True
    variant, phase = served.json()["variant"], served.json()["metadata"]["experimentPhase"]
    other = "on" if variant == "off" else "off"
    batch = [
        exposure("visitor-7", other, phase=phase, country="NL"),
        exposure("visitor-8", "on", phase=phase, country="FR"),  # not eligible: in no variant
        exposure("visitor-7", variant, phase=phase, country="NL"),
    ]
    answer = await http.post("/v1/events", json={"events": batch}, headers=client_headers(client_key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [
        (0, "variant_not_assigned"),
        (1, "variant_not_assigned"),
    ]
    assert f"assigned variant {variant!r}" in answer.json()["rejected"][0]["message"]
    again = await http.post(
        "/v1/events",
        json={"events": [exposure("visitor-7", variant, phase=phase, country="NL")]},
        headers=client_headers(client_key),
    )
    assert again.json() == {"accepted": 1, "rejected": []}
    rows = await exposures(database_url)
    assert [(r["unit"], r["variant"], r["source"]) for r in rows] == [("visitor-7", variant, "client")]


async def test_should_record_the_exposure_of_a_client_keys_single_evaluation(
    http: httpx.AsyncClient, client_key: str, admin_key: str, database_url: str
) -> None:
    await start_experiment(http, admin_key)
    served = await evaluate_checkout(http, client_key, "visitor-1", "BE")
    assert served.json()["metadata"]["experimentExposure"] is True
    for _ in range(200):
        rows = await exposures(database_url)
        if rows:
            break
        await asyncio.sleep(0.02)
    assert [(r["unit"], r["variant"], r["source"]) for r in rows] == [
        ("visitor-1", served.json()["variant"], "server")
    ]
    # The bulk evaluation records none: the page's hook posts what it shows.
    await bulk(http, client_key, targetingKey="visitor-2", country="BE")
    await asyncio.sleep(0.3)
    assert "visitor-2" not in {r["unit"] for r in await exposures(database_url)}


async def test_should_bound_a_client_keys_batches_more_tightly(
    http: httpx.AsyncClient, client_key: str, sdk_key: str
) -> None:
    fifty_one = {"events": [track(f"u{i}") for i in range(51)]}
    refused = await http.post("/v1/events", json=fifty_one, headers=client_headers(client_key))
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "batch_too_large"
    assert "FLAGD_CLIENT_EVENTS_MAX_BATCH" in refused.json()["error"]["message"]
    assert refused.headers["access-control-allow-origin"] == PAGE
    assert (await http.post("/v1/events", json=fifty_one, headers=bearer(sdk_key))).status_code == 200
    big = {"events": [{**track("u"), "properties": {"text": "x" * 4000}} for _ in range(20)]}
    too_big = await http.post("/v1/events", json=big, headers=client_headers(client_key))
    assert too_big.status_code == 413
    assert "FLAGD_CLIENT_EVENTS_MAX_BODY_BYTES" in too_big.json()["error"]["message"]
    values = {"events": [track("u", 1e6), track("u", -1e6), track("u", 999_999.5), track("u", -3)]}
    answer = await http.post("/v1/events", json=values, headers=client_headers(client_key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2
    assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [
        (0, "value_out_of_range"),
        (1, "value_out_of_range"),
    ]
    # An sdk key's values are not bounded so.
    sdk_answer = await http.post("/v1/events", json={"events": [track("u", 1e6)]}, headers=bearer(sdk_key))
    assert sdk_answer.json() == {"accepted": 1, "rejected": []}


async def test_should_limit_a_client_keys_rate_per_address_and_per_key(
    settings: Settings, database_url: str
) -> None:
    key = await create_client_key(database_url)
    async with (
        serving(
            settings,
            client_rate_per_second=0.5,
            client_rate_burst=3,
            client_key_rate_per_second=0.5,
            client_key_rate_burst=5,
        ) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10.0) as http,
    ):

        async def call(address: str) -> httpx.Response:
            return await http.post(
                "/ofrep/v1/evaluate/flags",
                json={},
                headers={**client_headers(key), "X-Forwarded-For": address},
            )

        first = [(await call("192.0.2.1")).status_code for _ in range(4)]
        assert first == [200, 200, 200, 429]
        limited = await call("192.0.2.1")
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["access-control-allow-origin"] == PAGE
        assert limited.headers["access-control-expose-headers"] == "ETag, Retry-After"
        # Another address has its own bucket, until the key's own is empty (5 taken, the 6th refused).
        assert [(await call("192.0.2.2")).status_code for _ in range(3)] == [200, 200, 429]
        assert "with this key" in (await call("192.0.2.3")).json()["error"]["message"]
