"""The OpenAPI document: it describes exactly the app's routes, and a live server conforms to it.

schemathesis generates requests for every operation from the document, valid ones and
invalid ones (wrong types, missing members, strings with NUL and other control
characters, huge numbers, unknown query values), sends them with real keys to a
`flagd serve` process on its own database, and checks each response: never a 5xx,
a documented status, the documented content type, a body that matches the schema.
Example counts are bounded so the run takes well under a minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from starlette.routing import Route

from flagd.app import create_app
from flagd.auth.keys import Scope
from flagd.routes.openapi import document
from flagd.settings import Settings
from tests.conftest import fresh_database
from tests.support import (
    FlagdProcess,
    bearer,
    create_key,
    database_url_for,
    drop_database,
    flagd_env,
    free_port,
)

EXAMPLES = [
    Path(__file__).resolve().parents[2] / "examples" / name for name in ("flags.yaml", "experiment.yaml")
]
METHODS = {"get", "put", "post", "delete", "patch"}
EXAMPLES_PER_MODE = 75
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_should_document_exactly_the_routes_the_app_serves(tmp_path: Path) -> None:
    app = create_app(Settings(database_url="postgresql://unused", data_dir=tmp_path))
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, item in document()["paths"].items() for method in item if method in METHODS
    }
    assert served == documented


def test_should_serve_the_document(client_for_docs: httpx.Client) -> None:
    response = client_for_docs.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == document()
    assert response.json()["openapi"].startswith("3.1")


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    admin_key: str
    sdk_key: str


@pytest.fixture(scope="module")
def live_api(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    """`flagd serve` on a database of its own, with keys and the example flags."""
    name = asyncio.run(fresh_database(pg_admin_url, template_database))
    url = database_url_for(pg_admin_url, name)
    admin_key = asyncio.run(create_key(url, Scope.ADMIN, "schemathesis-admin"))
    sdk_key = asyncio.run(create_key(url, Scope.SDK, "schemathesis-sdk"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = flagd_env(DATABASE_URL=url, FLAGD_ACCESS_LOG="false", FLAGD_LOG_LEVEL="warning")
    server = FlagdProcess(["serve", "--port", str(port)], env, tmp_path_factory.mktemp("api") / "server.log")
    try:
        server.wait_ready(base)
        for example in EXAMPLES:
            applied = httpx.put(
                f"{base}/v1/admin/flag-set",
                content=_example_json(example),
                headers={**bearer(admin_key), "Content-Type": "application/json"},
            )
            assert applied.status_code == 200, applied.text
        yield LiveApi(base, admin_key, sdk_key)
    finally:
        code = server.stop()
        asyncio.run(drop_database(pg_admin_url, name))
        # Shown with `pytest -s`: how much the run covered.
        print(f"\nschemathesis sent {sum(SENT.values())} requests over {len(SENT)} operations: {SENT}")
    assert code == 0, server.output
    assert "Traceback" not in server.output, server.output


@pytest.fixture
def client_for_docs(live_api: LiveApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.base_url) as client:
        yield client


def _example_json(example: Path) -> bytes:
    import json

    import yaml

    return json.dumps(yaml.safe_load(example.read_text())).encode()


def _operations() -> list[tuple[str, schemathesis.GenerationMode]]:
    """Every operation with valid inputs, and with invalid ones where it takes any input."""
    runs = []
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            label = f"{method.upper()} {path}"
            runs.append((label, schemathesis.GenerationMode.POSITIVE))
            if "parameters" in item or "parameters" in operation or "requestBody" in operation:
                runs.append((label, schemathesis.GenerationMode.NEGATIVE))
    return runs


SENT: dict[str, int] = {}


@schemathesis.serializer("application/msgpack")
def _msgpack(ctx: Any, value: Any) -> bytes:
    """msgpack has no integers past 64 bits: like any msgpack client, send those as doubles."""

    def fit(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: fit(v) for key, v in item.items()}
        if isinstance(item, list):
            return [fit(v) for v in item]
        if type(item) is int and not -(2**63) <= item < 2**64:
            return float(item) if abs(item) < 2**1000 else str(item)
        return item

    packed: bytes = msgpack.packb(fit(value))
    return packed


@pytest.mark.parametrize(("label", "mode"), _operations())
def test_should_conform_to_the_document(
    live_api: LiveApi, label: str, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(document())
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    session = requests.Session()
    key = (
        live_api.sdk_key
        if label.split()[1].startswith(("/ofrep", "/v1/flags", "/v1/events"))
        and label != "GET /v1/events/live"  # a read for QA: results and admin keys
        else live_api.admin_key
    )

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        headers = dict(case.headers or {})
        headers.setdefault("Authorization", f"Bearer {key}")
        if label == "GET /v1/flags/stream":
            # An event stream does not end: its status, headers and first bytes are what is checked.
            with session.get(
                f"{live_api.base_url}/v1/flags/stream",
                headers={k: str(v) for k, v in headers.items()},
                stream=True,
                timeout=10,
            ) as streamed:
                SENT[label] = SENT.get(label, 0) + 1
                assert streamed.status_code in (200, 401, 403), streamed.status_code
                if streamed.status_code == 200:
                    assert streamed.headers["content-type"].startswith("text/event-stream")
                    assert next(streamed.iter_lines()).startswith(b"id:")
            return
        response = case.call(base_url=live_api.base_url, session=session, headers=headers, timeout=30)
        SENT[label] = SENT.get(label, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    exercise()
    assert SENT.get(label, 0) > 0
