"""Hostile and careless requests against a live server: each numbered case of the "Hostile input"
issue, and the class it belongs to. None may stall the server, crash it, answer 5xx, or change
data it did not say it changed.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware

from flagd.app import create_app
from flagd.auth.guard import Authenticator
from flagd.auth.keys import Scope
from flagd.auth.repository import ApiKey, ApiKeyRepository
from flagd.http.access_log import AccessLogMiddleware, AccessLogWriter
from flagd.settings import Settings
from flagd.storage.pool import open_pool
from tests.support import (
    TIMEOUT,
    FlagdProcess,
    bearer,
    create_key,
    flag_definition,
    flagd_env,
    free_port,
    running_server,
)

ADULT = flag_definition(targeting={"if": [{">=": [{"var": "age"}, 18]}, "on", "off"]})


def nested(depth: int) -> Any:
    rule: Any = True
    for _ in range(depth):
        rule = {"!": rule}
    return rule


async def state_of(admin: httpx.AsyncClient) -> tuple[Any, Any, str]:
    """Everything a refused write must leave as it was: the set, the audit log, the config ETag."""
    flag_set = await admin.get("/v1/admin/flag-set")
    audit = await admin.get("/v1/admin/audit")
    assert flag_set.status_code == audit.status_code == 200
    return flag_set.json(), audit.json(), flag_set.headers["etag"]


async def evaluate(sdk: httpx.AsyncClient, key: str, context: dict[str, Any]) -> httpx.Response:
    return await sdk.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": context})


# Case 1 and 10: string-to-number conversion.
async def test_should_answer_a_huge_numeric_string_quickly_and_keep_serving_others(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    assert (
        await admin.post("/v1/admin/flags", json={"key": "adult", "definition": ADULT})
    ).status_code == 201
    # The cost bound itself is tested in tests/sdk/evaluation/test_limits.py (in a child process).
    hostile = asyncio.create_task(evaluate(sdk, "adult", {"age": "1" * 20_000 + "x"}))
    padded = await evaluate(sdk, "adult", {"age": "0" * 5000 + "21"})
    normal = await evaluate(sdk, "adult", {"age": 30})
    answered = await hostile
    assert (answered.status_code, answered.json()["variant"]) == (200, "off")
    assert (padded.status_code, padded.json()["variant"]) == (200, "on")
    assert normal.json()["variant"] == "on"


# Case 2: a definition nested deeper than the server can store and serve.
async def test_should_refuse_a_deeply_nested_definition_and_change_nothing(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    before = await state_of(admin)
    deep = await admin.post(
        "/v1/admin/flags", json={"key": "deep", "definition": flag_definition(targeting=nested(250))}
    )
    deep_set = await admin.put(
        "/v1/admin/flag-set", json={"flags": {"x": flag_definition(source=nested(300))}}
    )
    assert deep.status_code == deep_set.status_code == 422
    assert deep.json()["error"]["details"][0]["path"].startswith("flags.deep.targeting")
    assert "nested" in deep_set.json()["error"]["message"]
    assert await state_of(admin) == before
    later = await admin.post("/v1/admin/flags", json={"key": "later", "definition": flag_definition()})
    assert later.status_code == 201
    assert (await sdk.get("/v1/flags")).json()["flags"].keys() == {"later"}


# Case 3: shared evaluators whose references double at every level.
async def test_should_refuse_an_exponential_ref_chain_without_expanding_it(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    assert (
        await admin.post("/v1/admin/flags", json={"key": "adult", "definition": ADULT})
    ).status_code == 201
    evaluators: dict[str, Any] = {"e0": {"==": [{"var": "x"}, 1]}}
    for n in range(1, 41):
        evaluators[f"e{n}"] = {"or": [{"$ref": f"e{n - 1}"}, {"$ref": f"e{n - 1}"}]}
    document = {
        "$evaluators": evaluators,
        "flags": {"bomb": flag_definition(targeting={"if": [{"$ref": "e40"}, "on", "off"]})},
    }
    attack = asyncio.create_task(admin.put("/v1/admin/flag-set?dry_run=true", json=document))
    during = await evaluate(sdk, "adult", {"age": 40})
    refused = await asyncio.wait_for(attack, 30)
    assert during.status_code == 200
    assert refused.status_code == 422
    assert any("nodes" in d["message"] for d in refused.json()["error"]["details"])


# Case 5: a flag-set document whose shape is wrong must never read as "no flags".
@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({}, "flags"),
        ({"flgs": {"x": flag_definition()}}, "flgs"),
        ({"flags": {}, "metadata": "oops"}, "metadata"),
        ({"flags": {}, "$evaluators": []}, "$evaluators"),
        ({"flags": "all"}, "flags"),
    ],
)
async def test_should_refuse_a_flag_set_of_the_wrong_shape_with_prune(
    admin: httpx.AsyncClient, document: dict[str, Any], path: str
) -> None:
    assert (
        await admin.post("/v1/admin/flags", json={"key": "keep", "definition": flag_definition()})
    ).status_code == 201
    before = await state_of(admin)
    response = await admin.put("/v1/admin/flag-set?prune=true", json=document)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
    assert path in [d["path"] for d in response.json()["error"]["details"]]
    assert await state_of(admin) == before


async def test_should_honour_if_match_on_the_flag_set(admin: httpx.AsyncClient) -> None:
    current = (await admin.get("/v1/admin/flag-set")).headers["etag"]
    document = {"flags": {"a": flag_definition()}}
    fresh = await admin.put("/v1/admin/flag-set", json=document, headers={"If-Match": current})
    before = await state_of(admin)
    stale = await admin.put("/v1/admin/flag-set", json={"flags": {}}, headers={"If-Match": current})
    garbled = await admin.put("/v1/admin/flag-set", json={"flags": {}}, headers={"If-Match": "cfg-x"})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == (await admin.get("/v1/admin/flag-set")).headers["etag"]
    assert (stale.status_code, stale.json()["error"]["code"]) == (412, "config_version_mismatch")
    assert (garbled.status_code, garbled.json()["error"]["code"]) == (400, "invalid_parameter")
    assert await state_of(admin) == before


# Case 6: the text access log escapes what it copies from the request.
async def test_should_not_let_a_path_forge_or_break_an_access_log_line() -> None:
    sink = io.StringIO()
    writer = AccessLogWriter(json_lines=False, stream=sink)

    forged = '2026-11-24 08:22:30,000 INFO    [1] flagd.access: 127.0.0.1:1 "DELETE /v1/admin/flags/simple HTTP/1.1" 204'
    app = Starlette(middleware=[Middleware(AccessLogMiddleware, writer=writer)])
    async with running_server(app) as live, httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url) as http:
        await http.get("/x%0A" + forged.replace(" ", "%20").replace('"', "%22"))
        await http.get("/a%00b%1B[31m")
    writer.flush()
    lines = sink.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(lines[0][:4]) and "flagd.access: 127.0.0.1:" in line for line in lines)
    assert "\\n2026-11-24" in lines[0]
    assert "\\x22DELETE" in lines[0]
    assert "\\x00" in lines[1]
    assert "\\x1b" in lines[1]
    assert not any(ch in sink.getvalue() for ch in "\x00\x1b")


# Case 7: identifiers are matched in full.
async def test_should_refuse_a_key_with_a_trailing_newline(admin: httpx.AsyncClient) -> None:
    before = await state_of(admin)
    created = await admin.post("/v1/admin/flags", json={"key": "ok\n", "definition": flag_definition()})
    in_set = await admin.put("/v1/admin/flag-set", json={"flags": {"ok\n": flag_definition()}})
    assert created.status_code == in_set.status_code == 422
    assert await state_of(admin) == before


# Case 8: revocation ends open streams and cannot be undone by a read racing it.
async def test_should_end_a_revoked_keys_stream_within_a_second(
    server: Any, database_url: str, admin: httpx.AsyncClient
) -> None:
    token = await create_key(database_url, Scope.SDK, "streamer")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, headers=bearer(token)) as sdk:
        async with sdk.stream("GET", "/v1/flags/stream") as response:
            lines = response.aiter_lines()
            first_event: list[str] = []
            while not first_event or first_event[-1] != "":
                first_event.append(await asyncio.wait_for(anext(lines), 5))
            assert first_event[0].startswith("id:")
            conn = await asyncpg.connect(database_url)
            try:
                key = next(k for k in await ApiKeyRepository(conn).list() if k.name == "streamer")
                await ApiKeyRepository(conn).revoke(key.id)
            finally:
                await conn.close()
            await admin.post("/v1/admin/flags", json={"key": "after", "definition": flag_definition()})

            async def drain() -> list[str]:
                return [line async for line in lines]

            rest = await asyncio.wait_for(drain(), 5)  # ends: the old code streamed on forever
        assert not any('"version"' in line for line in rest)  # the change after revocation was not sent


class _RevokedWhileReading(Authenticator):
    """Delivers the revocation notice between the database read and the caching of its result."""

    revoke: Any = None

    async def _read(self, prefix: str) -> ApiKey | None:
        key = await super()._read(prefix)
        if self.revoke is not None:
            await self.revoke()
            self.forget()  # what the NOTIFY on flagd_keys does
            self.revoke = None
        return key


async def test_should_not_cache_a_key_read_before_its_revocation(database_url: str) -> None:
    token = await create_key(database_url, Scope.SDK, "racer")
    pool = await open_pool(Settings(database_url=database_url))
    try:
        auth = _RevokedWhileReading(pool)

        async def revoke() -> None:
            async with pool.acquire() as conn:
                key = next(k for k in await ApiKeyRepository(conn).list() if k.name == "racer")
                await ApiKeyRepository(conn).revoke(key.id)

        auth.revoke = revoke
        await auth.authenticate_token(token, Scope.SDK)  # read before the revocation: this request passes
        with pytest.raises(Exception, match="revoked"):
            await auth.authenticate_token(token, Scope.SDK)
    finally:
        await pool.close()


# Case 9: parameters and path identifiers that are not what they should be.
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/admin/audit?limit=%C2%B2", 400, "invalid_parameter"),
        ("/v1/admin/audit?before=9223372036854775808", 400, "invalid_parameter"),
        ("/v1/admin/audit?before=99999999999999999999999", 400, "invalid_parameter"),
        ("/v1/admin/audit?key=%00", 400, "invalid_parameter"),
        ("/v1/admin/audit?key=a%0Ab", 400, "invalid_parameter"),
        ("/v1/admin/audit?entity=%00", 400, "invalid_parameter"),
        ("/v1/admin/flags/a%00b", 404, "flag_not_found"),
        ("/v1/admin/flags/ok%0A", 404, "flag_not_found"),
        ("/v1/admin/flags/%C2%B2", 404, "flag_not_found"),
    ],
)
async def test_should_answer_bad_parameters_with_400_or_404(
    admin: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    response = await admin.get(path)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert "Error" not in response.json()["error"]["message"]


async def test_should_refuse_nul_characters_in_definitions(admin: httpx.AsyncClient) -> None:
    before = await state_of(admin)
    response = await admin.post(
        "/v1/admin/flags", json={"key": "n", "definition": flag_definition(variants={"a\u0000": True})}
    )
    assert response.status_code == 422
    assert await state_of(admin) == before


# Case 10: integers that cannot be stored exactly, and Allow on every path.
@pytest.mark.parametrize("number", ["18446744073709551617", "9223372036854775808", "-9223372036854775809"])
async def test_should_refuse_integers_that_cannot_be_stored_exactly(
    admin: httpx.AsyncClient, number: str
) -> None:
    before = await state_of(admin)
    response = await admin.post("/v1/admin/flags", content=_big_variant(number), headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["path"] == "flags.big.variants.a"
    assert "64-bit" in response.json()["error"]["message"]
    assert await state_of(admin) == before


async def test_should_refuse_a_number_too_large_for_json_numbers_as_malformed(
    admin: httpx.AsyncClient,
) -> None:
    response = await admin.post("/v1/admin/flags", content=_big_variant("1" * 5000), headers=JSON)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed_body")
    assert "infinity" in response.json()["error"]["message"]


JSON = {"Content-Type": "application/json"}


def _big_variant(number: str) -> bytes:
    body = '{"key": "big", "definition": {"state": "ENABLED", "variants": {"a": %s, "b": 1}, "defaultVariant": "a"}}'
    return (body % number).encode()


async def test_should_keep_an_integer_at_the_edge_of_the_range_exactly(admin: httpx.AsyncClient) -> None:
    body = '{"key": "edge", "definition": {"state": "ENABLED", "variants": {"a": 9223372036854775807, "b": 1}, "defaultVariant": "a"}}'
    created = await admin.post(
        "/v1/admin/flags", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert created.status_code == 201
    assert (await admin.get("/v1/admin/flags/edge")).json()["definition"]["variants"]["a"] == 2**63 - 1


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/admin/flags/x", {"GET", "HEAD", "PUT", "DELETE"}),
        ("DELETE", "/v1/admin/flags", {"GET", "HEAD", "POST"}),
        ("POST", "/v1/admin/flag-set", {"GET", "HEAD", "PUT"}),
    ],
)
async def test_should_list_every_method_of_a_path_in_allow(
    admin: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await admin.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


async def test_should_not_show_exception_text_in_errors(
    admin: httpx.AsyncClient, sdk: httpx.AsyncClient
) -> None:
    malformed = await admin.post(
        "/v1/admin/flags", content=b'{"key": [1,}', headers={"Content-Type": "application/json"}
    )
    assert malformed.json()["error"]["message"] == (
        "the request body is not valid JSON: unexpected character, expected a JSON value at line 1, column 12"
    )
    deep_var = flag_definition(targeting={"if": [{"var": "xs.²"}, "on", "off"]})
    assert (await admin.post("/v1/admin/flags", json={"key": "v", "definition": deep_var})).status_code == 201
    evaluated = await evaluate(sdk, "v", {"xs": [1, 2, 3]})
    assert evaluated.status_code == 200
    assert not re.search(r"Error\(|Traceback|\bValueError\b", evaluated.text)


# Case 11: a taken port is reported before anything starts.
def test_should_report_a_taken_port_before_starting_postgres(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        data_dir = tmp_path / "data"
        result = subprocess.run(
            [sys.executable, "-m", "flagd", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=flagd_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"flagd: error: cannot listen on 127.0.0.1:{port}")
    assert "--port" in result.stderr
    assert "FLAGD_PORT" in result.stderr
    assert "Errno" not in result.stderr
    assert "INFO" not in result.stderr
    assert not data_dir.exists()  # PostgreSQL was never started


# A stored definition the current limits refuse costs that flag only, across a restart.
async def test_should_start_ready_with_a_stored_flag_it_cannot_load(
    database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO flags (key, definition) VALUES ($1, $2::json), ($3, $4::json)",
            "legacy-deep",
            orjson.dumps(flag_definition(targeting={"if": [nested(250), "on", "off"]})).decode(),
            "fine",
            orjson.dumps(flag_definition(defaultVariant="on")).decode(),
        )
        await conn.execute("UPDATE config_state SET version = version + 1")
    finally:
        await conn.close()
    admin_key = await create_key(database_url, Scope.ADMIN)
    sdk_key = await create_key(database_url, Scope.SDK)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = FlagdProcess(
        ["serve", "--port", str(port)], flagd_env(DATABASE_URL=database_url), tmp_path / "s.log"
    )
    try:
        ready = await asyncio.to_thread(server.wait_ready, base)
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=base, headers=bearer(sdk_key)) as sdk:
            fine = await evaluate(sdk, "fine", {})
            broken = await evaluate(sdk, "legacy-deep", {})
            served = await sdk.get("/v1/flags")
        async with httpx.AsyncClient(timeout=TIMEOUT, base_url=base, headers=bearer(admin_key)) as admin:
            written = await admin.post(
                "/v1/admin/flags", json={"key": "new", "definition": flag_definition()}
            )
            listed = await admin.get("/v1/admin/flags")
            exported = await admin.get("/v1/admin/flag-set")
    finally:
        code = server.stop()
    assert ready.json()["brokenFlags"] == ["legacy-deep"]
    assert ready.json()["problems"][0]["path"] == "flags.legacy-deep.targeting"
    assert (fine.status_code, fine.json()["variant"]) == (200, "on")
    assert (broken.status_code, broken.json()["errorCode"]) == (400, "PARSE_ERROR")
    assert served.status_code == 200
    assert "legacy-deep" in served.json()["flags"]
    assert written.status_code == 201  # the old flaw does not block other changes
    assert listed.status_code == exported.status_code == 200
    assert code == 0
    assert "stored flag set at version" in server.output
    assert "legacy-deep" in server.output


async def test_should_answer_every_write_after_commit_even_with_a_legacy_flag_stored(
    database_url: str, settings: Settings
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO flags (key, definition) VALUES ('legacy', $1::json)",
            json.dumps(flag_definition(targeting=nested(300))),  # deeper than orjson writes
        )
    finally:
        await conn.close()
    admin_key = await create_key(database_url, Scope.ADMIN)
    async with (
        running_server(create_app(settings)) as live,
        httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url, headers=bearer(admin_key)) as admin,
    ):
        created = await admin.post("/v1/admin/flags", json={"key": "b", "definition": flag_definition()})
        audit = await admin.get("/v1/admin/audit")
        ready = await admin.get("/readyz")
    assert created.status_code == 201
    assert audit.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["brokenFlags"] == ["legacy"]
