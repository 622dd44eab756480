"""GET /v1/journeys/funnel refuses what it cannot answer: each bad parameter is a 400 `invalid_parameter` whose
message names the parameter and what it takes; no key is a 401, a key of another scope a 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from flagd.auth.keys import Scope
from tests.support import LiveServer, bearer, create_key

TODAY = datetime.now(UTC).date()
TWO = "step=visit&step=purchase"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "give the funnel's steps in order as step=EVENT, 2 to 10 of them"),
        ("step=visit", "2 to 10 of them (step=checkout_started&step=order_paid); got 1"),
        ("&".join(f"step=e{i}" for i in range(11)), "2 to 10 of them"),
        ("step=visit&step=", "step 2 must be an event name"),
        ("step=visit&step=a%00b", "step 2 must be an event name"),
        ("step=visit&step=visit", "step 2 repeats step 1 (visit)"),
        (f"{TWO}&from=2026-13-01", "from must be a day as YYYY-MM-DD (UTC)"),
        (f"{TWO}&to=20261130", "to must be a day as YYYY-MM-DD"),
        (f"{TWO}&from=1999-12-31", "from must be a day as YYYY-MM-DD"),
        (f"{TWO}&from={TODAY}&to={TODAY - timedelta(days=1)}", "must not be later than to"),
        (f"{TWO}&from={TODAY - timedelta(days=92)}&to={TODAY}", "is 93 days; a journey covers at most 92"),
        (f"{TWO}&to={TODAY + timedelta(days=2)}", "to must not be later than tomorrow"),
        (f"{TWO}&window=0", "window must be seconds, or a number with s, m, h or d"),
        (f"{TWO}&window=31d", "from 1 s to 30d; got '31d'"),
        (f"{TWO}&window=7w", "window must be seconds"),
        (f"{TWO}&window=-5", "window must be seconds"),
        (f"{TWO}&breakdown=country", "breakdown must be property:NAME"),
        (f"{TWO}&breakdown=property:", "breakdown's property must be 1 to 64 characters"),
        (f"{TWO}&breakdown=property:" + "x" * 65, "breakdown's property must be 1 to 64 characters"),
        (f"{TWO}&breakdown=property:a%0Ab", "breakdown must be at most 256 printable characters"),
        (f"{TWO}&breakdown=exposure:pricing", "breakdown must be property:NAME"),
        (f"{TWO}&breakdown=exposure:%20bad:country", "breakdown's experiment must be an experiment key"),
        (f"{TWO}&breakdown=variant:nowhere", "breakdown names experiment nowhere, which does not exist"),
    ],
)
async def test_should_refuse_a_bad_parameter_with_a_message_that_names_it(
    server: LiveServer, database_url: str, query: str, says: str
) -> None:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(token), timeout=60) as http:
        answer = await http.get(f"/v1/journeys/funnel?{query}")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert says in error["message"], error["message"]


async def test_should_need_a_results_or_admin_key(server: LiveServer, database_url: str) -> None:
    sdk = await create_key(database_url, Scope.SDK, "app")
    admin = await create_key(database_url, Scope.ADMIN, "ops")
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        path = f"/v1/journeys/funnel?{TWO}"
        anonymous = await http.get(path)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        wrong = await http.get(path, headers=bearer(sdk))
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "forbidden"
        empty = await http.get(path, headers=bearer(admin))
        assert empty.status_code == 200, empty.text
    body = empty.json()
    assert body["allUnits"]["entered"] == 0
    assert [s["units"] for s in body["allUnits"]["steps"]] == [0, 0]
    assert body["allUnits"]["steps"][1]["fromStart"] is None
    assert body["windowSeconds"] == 7 * 86_400
    assert (body["fromDay"], body["toDay"]) == ((TODAY - timedelta(days=29)).isoformat(), TODAY.isoformat())


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("3:{}", "where must be a step number from 1 to 2, a colon and a filter as JSON"),
        ('{"a": {"equals": 1}}', "where must be a step number from 1 to 2"),
        ("2:", "where must be a step number"),
        ("2:{oops", "where for step 2 must be a JSON object"),
        ('2:{"currency": {"like": "E%"}}', "where for step 2.currency"),
        ('2:{"amount": {"gt": "ten"}}', "must be a finite number"),
        ("2:" + "x" * 1001, "where for step 2 is longer than 1000 characters"),
    ],
)
async def test_should_refuse_a_bad_step_filter_with_a_located_message(
    server: LiveServer, database_url: str, where: str, says: str
) -> None:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(token), timeout=60) as http:
        steps = [("step", "visit"), ("step", "purchase")]
        answer = await http.get("/v1/journeys/funnel", params=[*steps, ("where", where)])
        twice = await http.get(
            "/v1/journeys/funnel", params=[*steps, *[("where", '2:{"a": {"exists": true}}')] * 2]
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_parameter"
    assert says in answer.json()["error"]["message"], answer.json()["error"]["message"]
    assert twice.status_code == 400
    assert "two filters" in twice.json()["error"]["message"]
