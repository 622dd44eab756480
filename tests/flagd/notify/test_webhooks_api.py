"""The webhooks API: secrets shown once and never again, bad input refused with what to fix, scopes, the
audit log, a signed test ping, and flag changes notifying in their own transaction."""

from __future__ import annotations

import time

import asyncpg
import httpx
import orjson
import pytest

from flagd.auth.keys import Scope
from flagd.notify import signing
from tests.flagd.notify.receiver import Receiver, listening
from tests.support import bearer, create_key, flag_definition, free_port


async def test_should_show_the_secret_once_and_refuse_bad_webhooks(
    admin: httpx.AsyncClient, database_url: str, server: object
) -> None:
    port = free_port()
    created = await admin.post(
        "/v1/webhooks",
        json={"name": "ops", "url": f"http://127.0.0.1:{port}/in", "kinds": ["flag.changed", "rollout.held"]},
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    secret = hook.pop("secret")
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert created.headers["location"] == f"/v1/webhooks/{hook['id']}"
    assert hook["kinds"] == ["flag.changed", "rollout.held"]
    assert hook["enabled"]
    assert not hook["slack"]

    fetched = (await admin.get(f"/v1/webhooks/{hook['id']}")).json()
    assert "secret" not in fetched
    assert fetched["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    listed = (await admin.get("/v1/webhooks")).json()["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]

    rotated = (
        await admin.patch(f"/v1/webhooks/{hook['id']}", json={"rotateSecret": True, "slack": True})
    ).json()
    assert rotated["secret"] != secret
    assert rotated["slack"] is True
    audit = (await admin.get("/v1/admin/audit", params={"entity": "webhook"})).json()["entries"]
    assert [entry["action"] for entry in audit] == ["update", "create"]
    assert secret not in str(audit)
    assert rotated["secret"] not in str(audit)
    assert audit[0]["after"]["secretRotated"] is True

    refusals = [
        ({"name": "x", "url": "ftp://host/", "kinds": ["flag.changed"]}, 422, "invalid_webhook", "url"),
        ({"name": "x", "url": "http://u:p@host/", "kinds": ["flag.changed"]}, 422, "invalid_webhook", "url"),
        ({"name": "x", "url": "http://h/", "kinds": ["flag.renamed"]}, 422, "invalid_webhook", "kinds"),
        ({"name": "x", "url": "http://h/", "kinds": []}, 422, "invalid_webhook", "kinds"),
        ({"name": "x", "url": "http://h/", "kinds": [{"a": 1}, ["b"]]}, 422, "invalid_webhook", "kinds"),
        ({"name": "", "url": "http://h/", "kinds": ["flag.changed"]}, 422, "invalid_webhook", "name"),
        (
            {"name": "x", "url": "http://h/", "kinds": ["flag.changed"], "slack": "yes"},
            422,
            "invalid_webhook",
            "slack",
        ),
        (
            {
                "name": "x",
                "url": "http://h/",
                "kinds": ["flag.changed"],
                "secretEnv": "FLAGD_TEST_UNSET_SECRET",
            },
            422,
            "invalid_webhook",
            "secretEnv",
        ),
        ({"name": "ops", "url": "http://h/", "kinds": ["flag.changed"]}, 409, "webhook_exists", None),
        (
            {"name": "x", "url": "http://h/", "kinds": ["flag.changed"], "secret": "mine"},
            400,
            "unknown_field",
            None,
        ),
        ({"name": "x", "url": "http://h/"}, 400, "missing_field", None),
    ]
    for body, status, code, path in refusals:
        answer = await admin.post("/v1/webhooks", json=body)
        assert answer.status_code == status, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == code
        assert error["message"]
        if path is not None:
            assert error["details"][0]["path"] == path
    assert len((await admin.get("/v1/webhooks")).json()["webhooks"]) == 1  # nothing refused was written

    for method, path in (
        ("GET", "/v1/webhooks/nope"),
        ("DELETE", f"/v1/webhooks/{'0' * 8}-0000-0000-0000-{'0' * 12}"),
    ):
        answer = await admin.request(method, path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "webhook_not_found"

    results_key = await create_key(database_url, Scope.RESULTS, "pm")
    reader = bearer(results_key)
    assert (await admin.get("/v1/webhooks", headers=reader)).status_code == 200
    assert (await admin.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=reader)).status_code == 200
    refused = await admin.delete(f"/v1/webhooks/{hook['id']}", headers=reader)
    assert refused.status_code == 403
    assert (await admin.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert (await admin.get(f"/v1/webhooks/{hook['id']}")).status_code == 404


async def test_should_notify_flag_changes_in_their_transaction_and_ping_with_a_signature(
    admin: httpx.AsyncClient, database_url: str
) -> None:
    port = free_port()
    hook = (
        await admin.post(
            "/v1/webhooks",
            json={"name": "t", "url": f"http://127.0.0.1:{port}/", "kinds": ["schedule.executed"]},
        )
    ).json()
    receiver = Receiver(secret=hook["secret"])
    async with listening(receiver, port):
        pinged = await admin.post(f"/v1/webhooks/{hook['id']}/test")
    assert pinged.status_code == 200
    assert pinged.json()["delivered"] is True
    assert pinged.json()["status"] == 200
    (ping,) = receiver.received.values()
    assert ping["kind"] == "webhook.test"
    assert ping["subject"] == "t"
    assert receiver.bad_signatures == 0
    refused = await admin.post(f"/v1/webhooks/{hook['id']}/test")  # nobody listening now
    assert refused.json()["delivered"] is False
    assert "ConnectError" in refused.json()["error"]
    log = (await admin.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()
    assert [a["outcome"] for a in log["attempts"]] == ["test", "test"]

    # Every flag change writes flag.changed; a refused change writes nothing.
    assert (
        await admin.post("/v1/admin/flags", json={"key": "a", "definition": flag_definition()})
    ).status_code == 201
    bad = await admin.post("/v1/admin/flags", json={"key": "b", "definition": {"state": "ENABLED"}})
    assert bad.status_code == 422
    document = {"flags": {"a": flag_definition(defaultVariant="on"), "c": flag_definition()}}
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT kind, subject, payload FROM notifications ORDER BY created_at, id")
        owed = await conn.fetchval("SELECT count(*) FROM webhook_deliveries")
    finally:
        await conn.close()
    assert [(r["kind"], r["subject"]) for r in rows] == [("flag.changed", "a")] * 2 + [("flag.changed", "c")]
    assert [orjson.loads(r["payload"])["action"] for r in rows] == ["create", "update", "create"]
    assert owed == 0  # the webhook subscribes to schedule.executed only


@pytest.mark.parametrize(
    ("timestamp_offset", "tamper", "valid"), [(0, False, True), (-301, False, False), (0, True, False)]
)
def test_should_verify_signatures_and_refuse_replays_and_tampering(
    timestamp_offset: int, tamper: bool, valid: bool
) -> None:
    now = time.time()
    body = b'{"id": "1"}'
    headers = signing.headers("1", "whsec_s", int(now) + timestamp_offset, body)
    sent = body + b" " if tamper else body
    assert (
        signing.verify("whsec_s", headers["Webhook-Timestamp"], sent, headers["Webhook-Signature"], now)
        is valid
    )
    assert not signing.verify(
        "whsec_other", headers["Webhook-Timestamp"], body, headers["Webhook-Signature"], now
    )
