"""OFREP against a live server, through the real OpenFeature SDK and its OFREP provider."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason
from openfeature.provider.no_op_provider import NoOpProvider

from flagd.app import create_app
from flagd.settings import Settings
from tests.support import TIMEOUT, LiveServer, bearer, flag_definition, running_server

FLAGS: dict[str, Any] = {
    "metadata": {"flagSetId": "shop"},
    "flags": {
        "new-checkout": flag_definition(defaultVariant="on", metadata={"owner": "payments"}),
        "greeting": {"state": "ENABLED", "variants": {"hi": "hi", "bye": "bye"}, "defaultVariant": "hi"},
        "page-size": {"state": "ENABLED", "variants": {"small": 10, "large": 100}, "defaultVariant": "large"},
        "discount": {
            "state": "ENABLED",
            "variants": {"none": 0, "some": 0.15, "flat": 1},
            "defaultVariant": "flat",
        },
        "layout": {
            "state": "ENABLED",
            "variants": {"grid": {"cols": 3}, "list": {"cols": 1}},
            "defaultVariant": "grid",
        },
        "beta": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", None]},
        },
        "experiment": {
            "state": "ENABLED",
            "variants": {"control": "control", "treatment": "treatment"},
            "defaultVariant": "control",
            "targeting": {"fractional": [["control", 50], ["treatment", 50]]},
        },
        "retired": {"state": "DISABLED", "variants": {"on": True}, "defaultVariant": "on"},
        "no-default": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": None},
    },
}


@pytest.fixture
async def of_client(
    server: LiveServer, admin: httpx.AsyncClient, sdk_key: str
) -> AsyncIterator[OpenFeatureClient]:
    applied = await admin.put("/v1/admin/flag-set", json=FLAGS)
    assert applied.status_code == 200, applied.text
    await _wait_for_version(admin, server, applied.json()["configVersion"])
    domain = f"test-{uuid.uuid4().hex}"
    provider = OFREPProvider(server.url, headers_factory=lambda: {"Authorization": f"Bearer {sdk_key}"})
    api.set_provider(provider, domain=domain)
    yield api.get_client(domain=domain)
    api.set_provider(NoOpProvider(), domain=domain)  # the SDK's registry is global: leave it as found


async def _wait_for_version(admin: httpx.AsyncClient, server: LiveServer, version: int) -> None:
    for _ in range(100):
        ready = await admin.get(f"{server.url}/readyz")
        if ready.json().get("configVersion") == version:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server did not load config version {version}")


async def details(call: Callable[..., FlagEvaluationDetails[Any]], *args: Any) -> FlagEvaluationDetails[Any]:
    # The provider is synchronous (requests); the live server shares this event loop.
    return await asyncio.to_thread(call, *args)


async def test_should_round_trip_every_type(of_client: OpenFeatureClient) -> None:
    boolean = await details(of_client.get_boolean_details, "new-checkout", False)
    string = await details(of_client.get_string_details, "greeting", "x")
    integer = await details(of_client.get_integer_details, "page-size", 1)
    floating = await details(of_client.get_float_details, "discount", 0.5)
    obj = await details(of_client.get_object_details, "layout", {})
    assert (boolean.value, boolean.variant, boolean.reason) == (True, "on", Reason.STATIC)
    assert (string.value, integer.value, obj.value) == ("hi", 100, {"cols": 3})
    # "flat" is 1 in the file; the flag has a fractional variant, so it travels as 1.0.
    assert (floating.value, floating.error_code) == (1.0, None)
    assert type(floating.value) is float
    assert boolean.flag_metadata == {"flagSetId": "shop", "owner": "payments"}


async def test_should_round_trip_targeting_and_splits(of_client: OpenFeatureClient) -> None:
    staff = await details(
        of_client.get_boolean_details, "beta", False, EvaluationContext(attributes={"email": "a@example.com"})
    )
    other = await details(
        of_client.get_boolean_details,
        "beta",
        True,
        EvaluationContext(attributes={"email": "a@elsewhere.org"}),
    )
    assert (staff.value, staff.reason) == (True, Reason.TARGETING_MATCH)
    assert (other.value, other.variant, other.reason) == (False, "off", Reason.DEFAULT)
    split = [
        await details(
            of_client.get_string_details, "experiment", "x", EvaluationContext(targeting_key=f"user-{i}")
        )
        for i in range(20)
    ]
    assert {d.reason for d in split} == {Reason.SPLIT}
    assert {d.value for d in split} == {"control", "treatment"}


async def test_should_accept_a_context_without_targeting_key_or_without_any_context(
    of_client: OpenFeatureClient,
) -> None:
    no_key = await details(
        of_client.get_string_details, "experiment", "x", EvaluationContext(attributes={"plan": "pro"})
    )
    nothing = await details(of_client.get_string_details, "greeting", "x")
    # Without a targeting key a split cannot bucket: the default variant, no error.
    assert (no_key.value, no_key.reason, no_key.error_code) == ("control", Reason.DEFAULT, None)
    assert (nothing.value, nothing.error_code) == ("hi", None)


async def test_should_report_missing_disabled_and_mistyped_flags(of_client: OpenFeatureClient) -> None:
    missing = await details(of_client.get_string_details, "nope", "fallback")
    disabled = await details(of_client.get_boolean_details, "retired", False)
    mistyped = await details(of_client.get_integer_details, "greeting", 7)
    code_default = await details(of_client.get_string_details, "no-default", "mine")
    assert (missing.value, missing.error_code) == ("fallback", ErrorCode.FLAG_NOT_FOUND)
    assert missing.error_message == 'flag "nope" is not in the flag set'
    assert (disabled.value, disabled.reason, disabled.error_code) == (False, Reason.DISABLED, None)
    assert (mistyped.value, mistyped.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert (code_default.value, code_default.reason) == ("mine", Reason.DEFAULT)


async def test_should_answer_in_ofrep_shapes(sdk: httpx.AsyncClient, of_client: OpenFeatureClient) -> None:
    found = await sdk.post("/ofrep/v1/evaluate/flags/greeting", json={"context": {"targetingKey": "u"}})
    missing = await sdk.post("/ofrep/v1/evaluate/flags/nope", json={"context": {}})
    disabled = await sdk.post("/ofrep/v1/evaluate/flags/retired", json={})
    assert found.json() == {
        "key": "greeting",
        "reason": "STATIC",
        "variant": "hi",
        "metadata": {"flagSetId": "shop"},
        "value": "hi",
    }
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert missing.json()["errorDetails"]
    assert disabled.json() == {
        "key": "retired",
        "reason": "DISABLED",
        "variant": None,
        "metadata": {"flagSetId": "shop"},
    }


@pytest.mark.parametrize(
    ("body", "details_fragment"),
    [
        (b"{oops", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"context": "user-1"}', "context must be a JSON object"),
        (b'{"context": {"targetingKey": 42}}', "targetingKey must be a string"),
    ],
)
async def test_should_refuse_bad_requests_with_invalid_context(
    sdk: httpx.AsyncClient, body: bytes, details_fragment: str
) -> None:
    single = await sdk.post("/ofrep/v1/evaluate/flags/greeting", content=body)
    bulk = await sdk.post("/ofrep/v1/evaluate/flags", content=body)
    assert single.status_code == bulk.status_code == 400
    assert single.json()["key"] == "greeting"
    for response in (single, bulk):
        assert response.json()["errorCode"] == "INVALID_CONTEXT"
        assert details_fragment in response.json()["errorDetails"]


async def test_should_evaluate_in_bulk_with_an_etag(
    sdk: httpx.AsyncClient, of_client: OpenFeatureClient
) -> None:
    context = {"context": {"targetingKey": "user-1", "email": "a@example.com"}}
    first = await sdk.post("/ofrep/v1/evaluate/flags", json=context)
    assert first.status_code == 200
    body = first.json()
    by_key = {f["key"]: f for f in body["flags"]}
    assert set(by_key) == set(FLAGS["flags"])
    assert by_key["beta"]["value"] is True
    assert by_key["discount"]["value"] == 1.0
    assert "value" not in by_key["retired"]
    assert body["metadata"] == {"flagSetId": "shop", "eventsEndpoint": "/v1/events", "serverExposures": False}
    assert body["eventStreams"] == [{"type": "sse", "endpoint": {"requestUri": "/v1/flags/stream"}}]
    same = await sdk.post(
        "/ofrep/v1/evaluate/flags", json=context, headers={"If-None-Match": first.headers["etag"]}
    )
    other = await sdk.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "user-1", "email": "b@elsewhere.org"}},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert same.status_code == 304
    assert other.status_code == 200


async def test_should_refuse_an_oversized_body_and_a_request_without_key(
    settings: Settings, sdk_key: str, server: LiveServer
) -> None:
    app = create_app(replace(settings, max_body_bytes=1024))
    big = b'{"context": {"pad": "' + b"x" * 2048 + b'"}}'
    async with running_server(app) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        oversized = await http.post("/ofrep/v1/evaluate/flags/greeting", content=big, headers=bearer(sdk_key))
        anonymous = await http.post("/ofrep/v1/evaluate/flags/greeting", json={})
    assert oversized.status_code == 413
    assert oversized.json()["error"]["code"] == "payload_too_large"
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
