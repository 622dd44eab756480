"""Webhooks as code: the `webhooks:` section of a flags file, through PUT /v1/admin/flag-set and `flagd apply`
(created, updated, pruned, problems located, dry runs, the audit log, the export round trip, and a
notification of the same apply reaching a receiver)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flagd.errors import ValidationFailed
from flagd.notify.as_code import read_section
from tests.flagd.notify.receiver import Receiver, listening
from tests.flagd.test_cli_flags import flagd
from tests.support import flag_definition, free_port

SECRET = "s3cret-from-the-environment"


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # The in-process server and the `flagd` child processes both read it from the environment.
    monkeypatch.setenv("OPS_HOOK_SECRET", SECRET)


def _section(port: int = 9) -> dict[str, Any]:
    return {
        "ops": {
            "url": f"http://127.0.0.1:{port}/ops",
            "kinds": ["flag.changed", "rollout.held"],
            "secretEnv": "OPS_HOOK_SECRET",
        },
        "chat": {"url": "http://127.0.0.1:9/chat", "kinds": ["rollout.held"], "slack": True},
    }


async def _apply(admin: httpx.AsyncClient, document: dict[str, Any], query: str = "") -> dict[str, Any]:
    answer = await admin.put(f"/v1/admin/flag-set{query}", json=document)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _webhooks(admin: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = await admin.get("/v1/webhooks")
    assert answer.status_code == 200
    return {hook["name"]: hook for hook in answer.json()["webhooks"]}


def _changes(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((c["entity"], c["key"], c["action"]) for c in body["changes"])


async def test_should_create_update_and_prune_webhooks_like_the_other_sections(
    admin: httpx.AsyncClient,
) -> None:
    made_by_api = await admin.post(
        "/v1/webhooks", json={"name": "by-api", "url": "http://127.0.0.1:9/x", "kinds": ["flag.changed"]}
    )
    assert made_by_api.status_code == 201

    created = await _apply(admin, {"flags": {}, "webhooks": _section()})
    assert _changes(created) == [("webhook", "chat", "create"), ("webhook", "ops", "create")]
    hooks = await _webhooks(admin)
    assert hooks["ops"]["secretEnv"] == "OPS_HOOK_SECRET"
    assert hooks["ops"]["kinds"] == ["flag.changed", "rollout.held"]
    assert hooks["chat"]["slack"] is True
    assert hooks["chat"]["secretEnv"] is None  # signs with a generated secret
    assert "by-api" in hooks  # not pruned: the apply had no prune

    again = await _apply(admin, {"flags": {}, "webhooks": _section()})
    assert again["changes"] == []

    changed = _section()
    changed["ops"]["kinds"] = ["flag.changed"]
    changed["chat"]["enabled"] = False
    updated = await _apply(admin, {"flags": {}, "webhooks": changed})
    assert _changes(updated) == [("webhook", "chat", "update"), ("webhook", "ops", "update")]
    ops_change = next(c for c in updated["changes"] if c["key"] == "ops")
    assert ops_change["before"]["kinds"] == ["flag.changed", "rollout.held"]
    assert ops_change["after"]["kinds"] == ["flag.changed"]
    after_update = await _webhooks(admin)
    assert after_update["ops"]["id"] == hooks["ops"]["id"]  # the same webhook, changed
    assert after_update["ops"]["kinds"] == ["flag.changed"]
    assert after_update["chat"]["enabled"] is False

    # Audited as the API audits a webhook: by id, with the webhook as its JSON shows it.
    audit = (await admin.get("/v1/admin/audit", params={"entity": "webhook"})).json()["entries"]
    ops_entries = [e for e in audit if e["key"] == hooks["ops"]["id"]]
    assert [e["action"] for e in ops_entries] == ["update", "create"]
    assert ops_entries[0]["after"]["kinds"] == ["flag.changed"]
    assert all("secret" not in (e["after"] or {}) for e in audit)

    # A file without the section leaves every webhook alone, even with prune.
    untouched = await _apply(admin, {"flags": {}}, "?prune=true")
    assert untouched["changes"] == []
    assert set(await _webhooks(admin)) == {"by-api", "chat", "ops"}

    pruned = await _apply(admin, {"flags": {}, "webhooks": {"ops": changed["ops"]}}, "?prune=true")
    assert _changes(pruned) == [("webhook", "by-api", "delete"), ("webhook", "chat", "delete")]
    assert set(await _webhooks(admin)) == {"ops"}


async def test_should_refuse_every_problem_at_its_path_and_change_nothing(admin: httpx.AsyncClient) -> None:
    section = {
        "bad-url": {"url": "ftp://example.com", "kinds": ["flag.changed"]},
        "bad-kind": {"url": "http://127.0.0.1:9/", "kinds": ["flag.changd"]},
        "no-kinds": {"url": "http://127.0.0.1:9/", "colour": "blue"},
        "unset-env": {"url": "http://127.0.0.1:9/", "kinds": ["flag.changed"], "secretEnv": "NOT_SET_HERE"},
        "secret-in-file": {"url": "http://127.0.0.1:9/", "kinds": ["flag.changed"], "secretEnv": "whsec_abc"},
        "not-an-object": "http://127.0.0.1:9/",
        "bad\u0007name": {"url": "http://127.0.0.1:9/", "kinds": ["flag.changed"]},
        "good": {"url": "http://127.0.0.1:9/", "kinds": ["flag.changed"], "enabled": "yes"},
    }
    answer = await admin.put(
        "/v1/admin/flag-set", json={"flags": {"new-flag": flag_definition()}, "webhooks": section}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_failed"
    paths = {d["path"] for d in error["details"]}
    assert paths == {
        "webhooks.bad-url.url",
        "webhooks.bad-kind.kinds",
        "webhooks.no-kinds.kinds",
        "webhooks.no-kinds.colour",
        "webhooks.unset-env.secretEnv",
        "webhooks.secret-in-file.secretEnv",
        "webhooks.not-an-object",
        'webhooks["bad\u0007name"]',
        "webhooks.good.enabled",
    }, paths
    assert "NOT_SET_HERE is not set" in str(error["details"])
    assert await _webhooks(admin) == {}
    assert "new-flag" not in (await admin.get("/v1/admin/flag-set")).json()["flags"]

    # A flag the set refuses refuses the webhooks of the same file too: one transaction.
    broken = {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "missing"}
    refused = await admin.put(
        "/v1/admin/flag-set", json={"flags": {"broken": broken}, "webhooks": _section()}
    )
    assert refused.status_code == 422
    assert await _webhooks(admin) == {}

    not_a_mapping = await admin.put("/v1/admin/flag-set", json={"flags": {}, "webhooks": ["ops"]})
    assert not_a_mapping.status_code == 422
    assert not_a_mapping.json()["error"]["details"][0]["path"] == "webhooks"


async def test_should_refuse_to_drop_a_secret_env_a_receiver_checks(admin: httpx.AsyncClient) -> None:
    await _apply(admin, {"flags": {}, "webhooks": _section()})
    without = _section()
    del without["ops"]["secretEnv"]
    answer = await admin.put("/v1/admin/flag-set", json={"flags": {}, "webhooks": without})
    assert answer.status_code == 422
    (detail,) = answer.json()["error"]["details"]
    assert detail["path"] == "webhooks.ops.secretEnv"
    assert "$OPS_HOOK_SECRET" in detail["message"]
    assert (await _webhooks(admin))["ops"]["secretEnv"] == "OPS_HOOK_SECRET"


async def test_should_show_a_dry_run_and_change_nothing(admin: httpx.AsyncClient) -> None:
    planned = await _apply(admin, {"flags": {}, "webhooks": _section()}, "?dry_run=true")
    assert planned["dryRun"] is True
    assert planned["counts"] == {"create": 2, "update": 0, "delete": 0}
    ops = next(c for c in planned["changes"] if c["key"] == "ops")
    assert ops["after"] == {
        "url": "http://127.0.0.1:9/ops",
        "kinds": ["flag.changed", "rollout.held"],
        "secretEnv": "OPS_HOOK_SECRET",
    }
    assert await _webhooks(admin) == {}
    assert (await admin.get("/v1/admin/audit", params={"entity": "webhook"})).json()["entries"] == []


async def test_should_export_the_section_so_applying_the_export_changes_nothing(
    admin: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    made_by_api = await admin.post(
        "/v1/webhooks",
        json={"name": "by-api", "url": "http://127.0.0.1:9/x", "kinds": ["flag.changed"], "enabled": False},
    )
    assert made_by_api.status_code == 201
    source = tmp_path / "flags.yaml"
    source.write_text(
        yaml.safe_dump({"flags": {"beta": flag_definition()}, "webhooks": _section()}), encoding="utf-8"
    )

    dry = await asyncio.to_thread(flagd, "apply", str(source), "--dry-run", database_url=database_url)
    assert dry.returncode == 0, dry.stderr
    assert "+ webhook ops" in dry.stdout.splitlines()
    assert "3 to create" in dry.stderr
    assert "ops" not in await _webhooks(admin)

    applied = await asyncio.to_thread(flagd, "apply", str(source), database_url=database_url)
    assert applied.returncode == 0, applied.stderr
    assert "3 created" in applied.stderr

    exported = tmp_path / "export.yaml"
    done = await asyncio.to_thread(flagd, "export", "-o", str(exported), database_url=database_url)
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load(exported.read_text(encoding="utf-8"))
    assert document["webhooks"] == {
        **_section(),
        "by-api": {"url": "http://127.0.0.1:9/x", "kinds": ["flag.changed"], "enabled": False},
    }
    # The API's read of the whole set is the same file.
    assert (await admin.get("/v1/admin/flag-set")).json()["webhooks"] == document["webhooks"]

    again = await asyncio.to_thread(flagd, "apply", str(exported), "--prune", database_url=database_url)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stderr


async def test_should_notify_a_webhook_the_same_apply_created(admin: httpx.AsyncClient) -> None:
    port = free_port()
    receiver = Receiver(secret=SECRET)
    document = {"flags": {"checkout": flag_definition()}, "webhooks": _section(port)}
    async with listening(receiver, port):
        await _apply(admin, document)
        for _ in range(250):  # a bound, not a timed assertion
            if receiver.received:
                break
            await asyncio.sleep(0.02)
    (notification,) = receiver.received.values()
    assert notification["kind"] == "flag.changed"
    assert notification["payload"]["flag"] == "checkout"
    assert receiver.bad_signatures == 0  # signed with the secret $OPS_HOOK_SECRET holds


def test_should_locate_problems_without_a_server() -> None:
    with pytest.raises(ValidationFailed) as refused:
        read_section({"a": {"url": "http://x/", "kinds": []}, 7: {}}, environ={})
    assert [d["path"] for d in refused.value.details or []] == [
        "webhooks.a.kinds",
        "webhooks[7].url",
        "webhooks[7].kinds",
        "webhooks[7]",  # YAML reads `7:` as a number: a name must be text
    ]
