"""The single-flag evaluation answered in front of the middleware stack says what the stack would have said."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from flagd.app import create_app
from flagd.http.access_log import AccessLogWriter
from flagd.http.fast_lane import FastLane
from flagd.settings import Settings
from tests.support import TIMEOUT, bearer, running_server

PATH = "/ofrep/v1/evaluate/flags/banner"


def _scope(method: str = "POST", path: str = PATH, server: Any = None) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"origin", b"https://shop.example")],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
        "state": {"server": server},
    }


class _Inner:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(f"{scope['method']} {scope['path']}")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", PATH), ("OPTIONS", PATH), ("POST", "/ofrep/v1/evaluate/flags"), ("POST", PATH + "/x")],
)
async def test_should_leave_every_other_request_to_the_stack(method: str, path: str) -> None:
    inner = _Inner()
    await FastLane(inner, None)(_scope(method, path), _no_body, _discard)
    assert inner.seen == [f"{method} {path}"]


async def test_should_answer_an_unexpected_failure_with_the_500_of_the_error_model_then_raise_it() -> None:
    class Failing:
        async def authenticate_scope(self, scope: Scope, required: Any) -> Any:
            raise RuntimeError("a bug")

    server = SimpleNamespace(
        auth=SimpleNamespace(client=None, authenticate_scope=Failing().authenticate_scope)
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    writer = AccessLogWriter(json_lines=False)
    with pytest.raises(RuntimeError, match="a bug"):
        await FastLane(_Inner(), writer)(_scope(server=server), _no_body, send)
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 500
    assert orjson.loads(body["body"])["error"]["code"] == "internal_error"
    assert headers[b"vary"] == b"Origin"
    assert b"x-request-id" in headers
    assert writer._entries[0][5] == 500  # logged like any other answer


async def test_should_log_echo_the_request_id_and_allow_the_servers_origins_on_success_and_error(
    settings: Settings, sdk_key: str
) -> None:
    origin = "https://shop.example"
    app = create_app(dataclasses.replace(settings, cors_origins=(origin,), access_log=True, log_level="info"))
    async with running_server(app) as live, httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as http:
        headers = {"Origin": origin, "X-Request-ID": "lane-1"}
        missing = await http.post(PATH, json={}, headers={**headers, **bearer(sdk_key)})
        unauthorized = await http.post(PATH, json={}, headers=headers)
        too_large = await http.post(
            PATH, content=b"x" * (settings.max_body_bytes + 1), headers=bearer(sdk_key)
        )
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")
    assert (unauthorized.status_code, unauthorized.json()["error"]["code"]) == (401, "unauthorized")
    assert "www-authenticate" in unauthorized.headers
    for answer in (missing, unauthorized):
        assert answer.headers["x-request-id"] == "lane-1"
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["vary"] == "Origin"
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "payload_too_large")
    assert "access-control-allow-origin" not in too_large.headers  # no Origin, no CORS


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None
