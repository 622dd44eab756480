"""The results pages' login, logout and session rules over plain HTTP (no browser needed)."""

from __future__ import annotations

import re

import asyncpg
import httpx

from flagd.auth.keys import Scope
from tests.flagd.results.test_results_recompute import start_pricing
from tests.flagd.web.test_pages import with_quiet_experiment
from tests.support import TIMEOUT, LiveServer, create_key

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def login_csrf(http: httpx.AsyncClient) -> str:
    form = await http.get("/login")
    assert form.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    return found.group(1)


async def logged_in(server: LiveServer, token: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url)
    csrf = await login_csrf(http)
    answer = await http.post("/login", data={"key": token, "csrf": csrf, "next": "/experiments"})
    assert answer.status_code == 303, answer.text
    return http


async def test_should_send_pages_without_a_session_to_the_login_form(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        for path in ("/experiments", "/experiments/pricing?segment=platform"):
            answer = await http.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login?next=%2Fexperiments")
    async with httpx.AsyncClient(
        timeout=TIMEOUT, base_url=server.url, cookies={"flagd_session": "x" * 43}
    ) as forged:
        assert (await forged.get("/experiments")).status_code == 303


async def test_should_refuse_a_login_without_its_form_token_or_from_another_site(
    server: LiveServer, database_url: str
) -> None:
    token = await create_key(database_url, Scope.RESULTS, "pm")
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        no_cookie = await http.post("/login", data={"key": token, "csrf": "guess"})
        assert no_cookie.status_code == 403
        assert "flagd_session" not in no_cookie.cookies
        csrf = await login_csrf(http)
        other_site = await http.post(
            "/login", data={"key": token, "csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert other_site.status_code == 403
        as_json = await http.post("/login", json={"key": token, "csrf": csrf})
        assert as_json.status_code == 400
        huge = await http.post("/login", content=b"key=" + b"a" * 10_000, headers=FORM)
        assert huge.status_code == 400
        # An open redirect is not possible: `next` stays on /experiments.
        good = await http.post("/login", data={"key": token, "csrf": csrf, "next": "https://evil.example/x"})
        assert good.status_code == 303
        assert good.headers["location"] == "/experiments"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert token not in cookie


async def test_should_end_sessions_on_logout_and_when_the_key_is_revoked(
    server: LiveServer, admin: httpx.AsyncClient, database_url: str, conn: asyncpg.Connection
) -> None:
    assert (await admin.put("/v1/admin/flag-set", json=with_quiet_experiment())).status_code == 200
    token = await create_key(database_url, Scope.RESULTS, "pm")
    http = await logged_in(server, token)
    try:
        page = await http.get("/experiments")
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        stale = await http.post("/logout", data={"csrf": "not it"})
        assert stale.status_code == 403
        assert (await http.get("/experiments")).status_code == 200  # still logged in
        out = await http.post("/logout", data={"csrf": csrf.group(1)})
        assert out.status_code == 303
        assert await conn.fetchval("SELECT count(*) FROM web_sessions") == 0
        assert (await http.get("/experiments")).status_code == 303
    finally:
        await http.aclose()

    again = await logged_in(server, token)
    try:
        assert (await again.get("/experiments")).status_code == 200
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'pm'")
        assert (await again.get("/experiments")).status_code == 303
    finally:
        await again.aclose()


async def test_should_serve_the_chart_library_from_the_package(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        script = await http.get("/static/uplot.iife.min.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert b"uPlot" in script.content
        assert (await http.get("/static/../pages.py")).status_code == 404
        assert (await http.get("/static/nope.js")).status_code == 404


async def test_should_refuse_a_form_with_too_many_fields_with_a_page(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
        crowded = "&".join(f"f{i}=x" for i in range(50))
        answer = await http.post("/login", content=crowded, headers=FORM)
        assert answer.status_code == 400
        assert answer.headers["content-type"].startswith("text/html")
        assert "could not be read" in answer.text


async def test_should_render_an_experiment_with_too_few_units_for_any_statistic(
    server: LiveServer, admin: httpx.AsyncClient, sdk: httpx.AsyncClient, database_url: str
) -> None:
    await start_pricing(
        admin, sdk, 3, database_url
    )  # one unit per variant: every comparison has a problem instead
    http = await logged_in(server, await create_key(database_url, Scope.RESULTS, "pm"))
    try:
        page = await http.get("/experiments/pricing")
        assert page.status_code == 200, page.text
        assert 'id="decision-action"' in page.text
        assert "not enough data" in page.text  # in words, not a statistic's code
        assert "None" not in page.text
    finally:
        await http.aclose()
