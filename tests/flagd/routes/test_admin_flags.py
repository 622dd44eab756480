"""The admin API for flags: versioned, validated, audited; bad input refused without harm."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from flagd.app import create_app
from flagd.settings import Settings
from tests.support import TIMEOUT, bearer, flag_definition, running_server


async def create(admin: httpx.AsyncClient, key: str = "checkout", **overrides: Any) -> httpx.Response:
    return await admin.post("/v1/admin/flags", json={"key": key, "definition": flag_definition(**overrides)})


async def config_version(conn: asyncpg.Connection) -> int:
    version: int = await conn.fetchval("SELECT version FROM config_state")
    return version


async def test_should_create_read_and_list_a_flag(admin: httpx.AsyncClient) -> None:
    created = await create(admin)
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == "/v1/admin/flags/checkout"
    assert created.json()["definition"] == flag_definition()
    assert set(created.json()) == {"key", "version", "definition", "createdAt", "updatedAt"}
    fetched = await admin.get("/v1/admin/flags/checkout")
    assert fetched.json()["version"] == 1
    listed = await admin.get("/v1/admin/flags")
    assert [f["key"] for f in listed.json()["flags"]] == ["checkout"]


async def test_should_update_with_the_current_version_and_refuse_a_stale_one(
    admin: httpx.AsyncClient,
) -> None:
    await create(admin)
    body = {"definition": flag_definition(defaultVariant="on")}
    updated = await admin.put("/v1/admin/flags/checkout", json=body, headers={"If-Match": '"1"'})
    stale = await admin.put("/v1/admin/flags/checkout", json=body, headers={"If-Match": '"1"'})
    assert updated.status_code == 200
    assert updated.headers["etag"] == '"2"'
    assert updated.json()["definition"]["defaultVariant"] == "on"
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_mismatch"
    assert "is at version 2, not 1" in stale.json()["error"]["message"]


async def test_should_let_exactly_one_of_two_concurrent_updates_win(admin: httpx.AsyncClient) -> None:
    await create(admin)
    # Both are real changes (an identical update is a no-op that keeps the version).
    results = await asyncio.gather(
        *(
            admin.put(
                "/v1/admin/flags/checkout",
                json={"definition": flag_definition(defaultVariant="on", metadata={"editor": editor})},
                headers={"If-Match": "1"},
            )
            for editor in ("alice", "bob")
        )
    )
    assert sorted(r.status_code for r in results) == [200, 412]


async def test_should_require_if_match_to_change_or_delete(admin: httpx.AsyncClient) -> None:
    await create(admin)
    put = await admin.put("/v1/admin/flags/checkout", json={"definition": flag_definition()})
    delete = await admin.delete("/v1/admin/flags/checkout")
    garbled = await admin.delete("/v1/admin/flags/checkout", headers={"If-Match": "yesterday"})
    assert (put.status_code, delete.status_code, garbled.status_code) == (428, 428, 400)
    assert put.json()["error"]["code"] == "precondition_required"
    assert garbled.json()["error"]["code"] == "invalid_parameter"


async def test_should_keep_the_version_when_an_update_changes_nothing(admin: httpx.AsyncClient) -> None:
    await create(admin)
    same = await admin.put(
        "/v1/admin/flags/checkout", json={"definition": flag_definition()}, headers={"If-Match": "1"}
    )
    assert same.status_code == 200
    assert same.json()["version"] == 1
    audit = (await admin.get("/v1/admin/audit?entity=flag&key=checkout")).json()["entries"]
    assert [e["action"] for e in audit] == ["create"]


async def test_should_delete_a_flag(admin: httpx.AsyncClient) -> None:
    await create(admin)
    deleted = await admin.delete("/v1/admin/flags/checkout", headers={"If-Match": 'W/"1"'})
    assert deleted.status_code == 204
    missing = await admin.get("/v1/admin/flags/checkout")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "flag_not_found"
    again = await admin.delete("/v1/admin/flags/checkout", headers={"If-Match": "1"})
    assert again.status_code == 404


async def test_should_refuse_a_duplicate_key(admin: httpx.AsyncClient) -> None:
    await create(admin)
    duplicate = await create(admin)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "flag_exists"


async def test_should_refuse_an_invalid_definition_with_every_located_problem(
    admin: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    before = await config_version(conn)
    response = await create(
        admin,
        defaultVariant="maybe",
        targeting={"if": [{"fractionl": [1]}, "on", "off"]},
        variants={"on": True, "off": "no"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [d["path"] for d in error["details"]] == [
        "flags.checkout.variants.off",
        "flags.checkout.defaultVariant",
        "flags.checkout.targeting.if[0]",
    ]
    assert await conn.fetchval("SELECT count(*) FROM flags") == 0
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
    assert await config_version(conn) == before


@pytest.mark.parametrize("key", ["", "has space", "slash/key", "-leading-dash", "x" * 300])
async def test_should_refuse_unaddressable_keys(admin: httpx.AsyncClient, key: str) -> None:
    response = await create(admin, key=key)
    assert response.status_code == 422
    assert "is not allowed" in response.json()["error"]["message"]


async def test_should_refuse_a_change_that_breaks_a_reference(admin: httpx.AsyncClient) -> None:
    applied = await admin.put(
        "/v1/admin/flag-set",
        json={
            "flags": {"beta": flag_definition(targeting={"if": [{"$ref": "staff"}, "on", "off"]})},
            "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
        },
    )
    assert applied.status_code == 200
    # Pruning without the evaluator would leave "beta" pointing at nothing.
    without_evaluator = {
        "flags": {"beta": flag_definition(targeting={"if": [{"$ref": "staff"}, "on", "off"]})}
    }
    dropped = await admin.put("/v1/admin/flag-set?prune=true", json=without_evaluator)
    assert dropped.status_code == 422
    assert dropped.json()["error"]["details"][0]["path"] == "flags.beta.targeting.if[0]"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_body"),
        (b"", "application/json", 400, "malformed_body"),
        (b"[1, 2]", "application/json", 400, "wrong_type"),
        (b'{"key": "a", "definition": {}, "owner": "me"}', "application/json", 400, "unknown_field"),
        (b'{"key": "a"}', "application/json", 400, "missing_field"),
        (b'{"key": 7, "definition": {}}', "application/json", 400, "invalid_parameter"),
        (b"key=a", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_should_refuse_malformed_requests(
    admin: httpx.AsyncClient, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = await admin.post("/v1/admin/flags", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


async def test_should_refuse_bodies_over_the_limit_declared_or_streamed(
    settings: Settings, admin_key: str, conn: asyncpg.Connection
) -> None:
    app = create_app(replace(settings, max_body_bytes=2048))
    big = b'{"key": "a", "definition": {"pad": "' + b"x" * 4096 + b'"}}'

    async def chunks() -> Any:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    async with (
        running_server(app) as live,
        httpx.AsyncClient(timeout=TIMEOUT, base_url=live.url, headers=bearer(admin_key)) as http,
    ):
        declared = await http.post(
            "/v1/admin/flags", content=big, headers={"Content-Type": "application/json"}
        )
        streamed = await http.post(
            "/v1/admin/flags", content=chunks(), headers={"Content-Type": "application/json"}
        )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert "FLAGD_MAX_BODY_BYTES" in response.json()["error"]["message"]
    assert await conn.fetchval("SELECT count(*) FROM flags") == 0


async def test_should_audit_who_changed_what_before_and_after(admin: httpx.AsyncClient) -> None:
    await create(admin)
    await admin.put(
        "/v1/admin/flags/checkout",
        json={"definition": flag_definition(defaultVariant="on")},
        headers={"If-Match": "1"},
    )
    await admin.delete("/v1/admin/flags/checkout", headers={"If-Match": "2"})
    entries = (await admin.get("/v1/admin/audit?entity=flag&key=checkout")).json()["entries"]
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    assert all(e["actor"].startswith("api-key:") and e["actor"].endswith(":admin-test") for e in entries)
    delete, update, create_entry = entries
    assert create_entry["before"] is None
    assert create_entry["after"] == flag_definition()
    assert update["before"]["defaultVariant"] == "off"
    assert update["after"]["defaultVariant"] == "on"
    assert delete["after"] is None
    assert [e["configVersion"] for e in entries] == [3, 2, 1]


async def test_should_page_through_the_audit_log(admin: httpx.AsyncClient) -> None:
    for index in range(5):
        await create(admin, key=f"flag-{index}")
    first = (await admin.get("/v1/admin/audit?limit=2")).json()
    second = (await admin.get(first["next"])).json()
    assert [e["key"] for e in first["entries"]] == ["flag-4", "flag-3"]
    assert [e["key"] for e in second["entries"]] == ["flag-2", "flag-1"]
    bad = await admin.get("/v1/admin/audit?limit=0")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_parameter"


async def test_should_apply_a_whole_flag_set_idempotently(
    admin: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    document = {
        "flags": {"a": flag_definition(), "b": flag_definition(defaultVariant="on")},
        "metadata": {"flagSetId": "shop"},
    }
    dry = (await admin.put("/v1/admin/flag-set?dry_run=true", json=document)).json()
    assert (dry["dryRun"], dry["counts"]) == (True, {"create": 2, "update": 1, "delete": 0})
    assert await conn.fetchval("SELECT count(*) FROM flags") == 0
    applied = (await admin.put("/v1/admin/flag-set", json=document)).json()
    again = (await admin.put("/v1/admin/flag-set", json=document)).json()
    assert applied["counts"] == {"create": 2, "update": 1, "delete": 0}
    assert again["counts"] == {"create": 0, "update": 0, "delete": 0}
    assert again["configVersion"] == applied["configVersion"]
    pruned = (
        await admin.put("/v1/admin/flag-set?prune=true", json={"flags": {"a": flag_definition()}})
    ).json()
    assert pruned["counts"] == {"create": 0, "update": 1, "delete": 1}
    exported = (await admin.get("/v1/admin/flag-set")).json()
    assert exported == {"flags": {"a": flag_definition()}}
