"""The error model: every failure, including Starlette's own, has one shape."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagd import errors
from flagd.http.handlers import EXCEPTION_HANDLERS
from tests.support import TIMEOUT, running_server


async def test_should_answer_unknown_route_with_not_found_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "No endpoint at GET /v1/nothing-here; check the path against the API reference.",
        }
    }


async def test_should_answer_wrong_method_with_405_and_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]
    assert "DELETE is not allowed on /healthz" in response.json()["error"]["message"]


async def _raise_validation(request: Request) -> Response:
    raise errors.ValidationFailed(
        "the flag set has 1 problem", details=[{"path": "flags.a", "message": "unknown variant"}]
    )


async def _raise_bug(request: Request) -> Response:
    raise KeyError("internal detail that must not leak")


async def _raise_custom_code(request: Request) -> Response:
    raise errors.Conflict("flag 'a' changed since version 3; fetch it again", code="version_conflict")


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/validation", _raise_validation),
            Route("/bug", _raise_bug),
            Route("/conflict", _raise_custom_code),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )


async def test_should_map_each_flagd_error_to_its_status_code_and_details() -> None:
    async with running_server(_app()) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        validation = await http.get("/validation")
        conflict = await http.get("/conflict")
    assert validation.status_code == 422
    assert validation.json() == {
        "error": {
            "code": "validation_failed",
            "message": "the flag set has 1 problem",
            "details": [{"path": "flags.a", "message": "unknown variant"}],
        }
    }
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "version_conflict"


async def test_should_hide_internal_details_of_unexpected_errors() -> None:
    # Starlette re-raises after answering, so the in-process server logs the traceback.
    async with running_server(_app()) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        response = await http.get("/bug")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "internal detail" not in response.text


def test_should_give_every_error_class_a_distinct_code() -> None:
    classes: list[type[errors.FlagdError]] = [errors.FlagdError, *_subclasses(errors.FlagdError)]
    codes = [cls.default_code for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(400 <= cls.default_status <= 599 for cls in classes)


def _subclasses(cls: type[errors.FlagdError]) -> list[type[errors.FlagdError]]:
    found: list[type[errors.FlagdError]] = []
    for sub in cls.__subclasses__():
        found.extend([sub, *_subclasses(sub)])
    return found
