from __future__ import annotations

import logging

import httpx
import pytest


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "flagd.access"]


async def test_should_log_one_line_per_request_with_status_and_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flagd.access"):
        ok = await client.get("/healthz")
        missing = await client.get("/missing")
    records = _access_records(caplog)
    # The structured fields ride on the record as `extra`, which the JSON formatter emits.
    fields = [r.__dict__ for r in records]
    assert [(f["method"], f["path"], f["status"]) for f in fields] == [
        ("GET", "/healthz", 200),
        ("GET", "/missing", 404),
    ]
    assert [f["request_id"] for f in fields] == [
        ok.headers["x-request-id"],
        missing.headers["x-request-id"],
    ]
    assert all(f["duration_ms"] >= 0 for f in fields)
    assert '"GET /healthz HTTP/1.1" 200' in records[0].getMessage()


async def test_should_echo_a_well_formed_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "checkout-42.a:b"})
    assert response.headers["x-request-id"] == "checkout-42.a:b"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "line\tbreak", ""])
async def test_should_replace_a_request_id_that_could_forge_log_lines(
    client: httpx.AsyncClient, bad: str
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": bad})
    generated = response.headers["x-request-id"]
    assert generated != bad
    assert len(generated) == 32
