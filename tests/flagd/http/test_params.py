"""Numbers in query parameters are ASCII decimals within their range: float() and int() read far more."""

from __future__ import annotations

import httpx
import pytest

from flagd.auth.keys import Scope
from tests.support import TIMEOUT, LiveServer, bearer, create_key


@pytest.mark.parametrize(
    "alpha",
    [
        "\u0660.\u0660\u0665",
        "0.\u0660\u0665",
        "nan",
        "inf",
        "0.0_5",
        " 0.05",
        "0.05 ",
        "+0.05",
        "0x1p-4",
        "0.6",
        "",
    ],
)
async def test_should_refuse_an_alpha_that_is_not_an_ascii_decimal_in_range(
    server: LiveServer, database_url: str, alpha: str
) -> None:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url, headers=bearer(token)) as api:
        for path in ("/v1/experiments/pricing/results", "/v1/experiments/pricing/results/timeseries"):
            answer = await api.get(path, params={"alpha": alpha})
            assert answer.status_code == 400, (alpha, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_parameter"
            assert error["message"].startswith("alpha must be a decimal number from 0.001 to 0.5, got ")


@pytest.mark.parametrize("alpha", ["0.05", ".1", "0.5", "1e-2", "0.001"])
async def test_should_read_an_ascii_decimal_alpha(server: LiveServer, database_url: str, alpha: str) -> None:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url, headers=bearer(token)) as api:
        answer = await api.get("/v1/experiments/pricing/results", params={"alpha": alpha})
    assert answer.status_code == 404, answer.text  # read, then: there is no such experiment
    assert answer.json()["error"]["code"] == "experiment_not_found"
