"""The pages read their parameters with the API's parser: a value the API refuses is a 400 page, never a 500."""

from __future__ import annotations

import httpx
import pytest

from flagd.auth.keys import Scope
from tests.flagd.web.test_sessions import logged_in
from tests.support import TIMEOUT, LiveServer, bearer, create_key


@pytest.mark.parametrize("segment", ["%00", "a%0Ab", "%1B%5B2J", "x" * 65, ""])
async def test_should_answer_a_bad_segment_on_the_page_with_400_as_the_api_does(
    server: LiveServer, database_url: str, segment: str
) -> None:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url, headers=bearer(token)) as api:
        assert (await api.get(f"/v1/experiments/pricing/results?segment={segment}")).status_code == 400
    page = await logged_in(server, token)
    try:
        answer = await page.get(f"/experiments/pricing?segment={segment}")
    finally:
        await page.aclose()
    assert answer.status_code == 400, answer.text
    assert "segment must be" in answer.text
