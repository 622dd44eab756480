"""A flags file's `webhooks:` section: webhooks by name, applied with the rest of the file.

    webhooks:
      ops-channel:
        url: https://hooks.slack.com/services/T000/B000/XXXX
        kinds: [rollout.held, rollout.rolled_back]
        slack: true
      deploy-bot:
        url: https://deploy.example.com/flagd
        kinds: [flag.changed]
        secretEnv: DEPLOY_BOT_SECRET     # the NAME of the variable that holds the secret, never the secret

The section follows the rule of the file's other sections: its webhooks are created or updated to match;
with `--prune` (`?prune=true`) the webhooks it does not name are deleted; a file without `webhooks:` leaves
every webhook alone, even with prune. Each member is checked by the API's own rules
(flagd.notify.definitions, flagd.notify.service), each problem located under `webhooks.NAME`, and the writes
are the API's (audited the same way), in the caller's transaction with the rest of the file.

A webhook without `secretEnv` signs with a generated secret, which a file can neither hold nor show: a new
one is generated (see it by rotating it, `PATCH /v1/webhooks/{id}` with `rotateSecret`), an existing one is
kept. A file that drops the `secretEnv` of a webhook that has one is refused rather than silently switching
the receiver to a secret it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagd.config.plan import Change, same_json
from flagd.errors import ValidationFailed
from flagd.notify.definitions import CREATE_OPTIONAL, CREATE_REQUIRED, read_fields
from flagd.notify.repository import WebhookRecord, WebhookRepository
from flagd.notify.service import MAX_WEBHOOKS, WebhookService, secret_env_problems
from flagd.storage.types import Connection
from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.problems import child, given

SECTION = "webhooks"
REQUIRED = tuple(member for member in CREATE_REQUIRED if member != "name")
"""What a webhook of the file must have: the API's create members but its name, which is its key."""
MEMBERS = (*REQUIRED, *CREATE_OPTIONAL)


@dataclass(frozen=True, slots=True)
class FileWebhook:
    """A webhook as the file states it, every member decided (the defaults are the API's)."""

    name: str
    url: str
    kinds: tuple[str, ...]
    secret_env: str | None = None
    slack: bool = False
    enabled: bool = True

    @classmethod
    def of(cls, record: WebhookRecord) -> FileWebhook:
        return cls(record.name, record.url, record.kinds, record.secret_env, record.slack, record.enabled)

    def to_json(self) -> dict[str, Any]:
        """The file form (what `flagd export` writes): a member at its default is left out."""
        shown: dict[str, Any] = {"url": self.url, "kinds": list(self.kinds)}
        if self.secret_env is not None:
            shown["secretEnv"] = self.secret_env
        if self.slack:
            shown["slack"] = True
        if not self.enabled:
            shown["enabled"] = False
        return shown


def read_section(section: Any, environ: Mapping[str, str]) -> dict[str, FileWebhook]:
    """The section's webhooks by name; every problem of every webhook refuses it, each at its path."""
    if not isinstance(section, dict):
        raise _refused([Problem(SECTION, f"must be an object of webhooks by name; got {given(section)}")])
    problems: list[Problem] = []
    if len(section) > MAX_WEBHOOKS:
        problems.append(
            Problem(SECTION, f"names {len(section)} webhooks; a server keeps at most {MAX_WEBHOOKS}")
        )
    webhooks = {}
    for name, definition in section.items():
        found = _read_one(name, definition, environ, problems)
        if found is not None:
            webhooks[found.name] = found
    if problems:
        raise _refused(problems)
    return webhooks


def _read_one(
    name: Any, definition: Any, environ: Mapping[str, str], problems: list[Problem]
) -> FileWebhook | None:
    path = child(SECTION, name)
    if not isinstance(definition, dict):
        problems.append(
            Problem(path, f"must be an object with {', '.join(REQUIRED)}; got {given(definition)}")
        )
        return None
    shape = [
        Problem(child(path, member), f"unknown member; a webhook has {', '.join(MEMBERS)}")
        for member in definition
        if member not in MEMBERS
    ] + [
        Problem(child(path, member), "is missing; a webhook needs a url and the kinds it is sent")
        for member in REQUIRED
        if member not in definition
    ]
    fields, found = read_fields({**definition, "name": name})
    found += secret_env_problems(fields, environ)
    # The API's problems are at the member's name ("url"); the name's own is the webhook's key.
    located = [Problem(path if p.path == "name" else child(path, p.path), p.message) for p in found]
    problems += shape + located
    if shape or located:
        return None
    # read_fields sets every member it found no problem with, and these three are required
    assert fields.name is not None
    assert fields.url is not None
    assert fields.kinds is not None
    return FileWebhook(
        name=fields.name,
        url=fields.url,
        kinds=fields.kinds,
        secret_env=fields.secret_env,
        slack=bool(fields.slack),
        enabled=fields.enabled is not False,
    )


def plan(stored: list[WebhookRecord], desired: dict[str, FileWebhook], *, prune: bool) -> list[Change]:
    """The changes that make the stored webhooks match the section (by name), in the file form."""
    by_name = {record.name: record for record in stored}
    changes: list[Change] = []
    problems: list[Problem] = []
    for name, webhook in desired.items():
        record = by_name.get(name)
        if record is None:
            changes.append(Change("webhook", name, "create", None, webhook.to_json()))
            continue
        if record.secret_env is not None and webhook.secret_env is None:
            problems.append(
                Problem(
                    child(child(SECTION, name), "secretEnv"),
                    f"is missing: the webhook signs with ${record.secret_env}, and a file cannot show a "
                    "generated secret; keep naming a variable, or rotate the secret with PATCH "
                    f"/v1/webhooks/{record.id} and rotateSecret",
                )
            )
            continue
        before = FileWebhook.of(record).to_json()
        if not same_json(before, webhook.to_json()):
            changes.append(Change("webhook", name, "update", before, webhook.to_json()))
    if problems:
        raise _refused(problems)
    if prune:
        changes += [
            Change("webhook", record.name, "delete", FileWebhook.of(record).to_json(), None)
            for record in stored
            if record.name not in desired
        ]
    return changes


async def changes_for(
    conn: Connection, section: Any, environ: Mapping[str, str], *, prune: bool
) -> list[Change]:
    """Read and check the section, and plan it against the stored webhooks (writing nothing)."""
    desired = read_section(section, environ)
    return plan(await WebhookRepository(conn).all(MAX_WEBHOOKS), desired, prune=prune)


async def write(conn: Connection, actor: str, changes: list[Change], environ: Mapping[str, str]) -> None:
    """Make the planned changes with the API's service (its checks and its audit entries): deletes first,
    so a pruned file may create as many as it deletes."""
    service = WebhookService(conn, actor, environ)
    repository = WebhookRepository(conn)
    for action in ("delete", "update", "create"):
        for change in changes:
            if change.action != action:
                continue
            if action == "create":
                await service.create({"name": change.key, **_body(change.after)})
                continue
            record = await repository.find(change.key)
            assert record is not None, "planned against the webhooks as they are, in this transaction"
            if action == "delete":
                await service.delete(record.id)
            else:
                await service.update(record.id, {"name": change.key, **_body(change.after)})


def _body(file_form: dict[str, Any]) -> dict[str, Any]:
    """An API body from the file form: the members at their defaults spelt out, so an update resets them."""
    return {"slack": False, "enabled": True, **file_form}


async def exported(conn: Connection) -> dict[str, Any]:
    """The section that makes the stored webhooks (empty when there are none)."""
    return {
        record.name: FileWebhook.of(record).to_json()
        for record in await WebhookRepository(conn).all(MAX_WEBHOOKS)
    }


def _refused(problems: list[Problem]) -> ValidationFailed:
    count = len(problems)
    return ValidationFailed(
        f"the webhooks section has {count} problem{'s' if count != 1 else ''}: {problems[0]}"
        + (" (and more in details)" if count > 1 else ""),
        details=[{"path": p.path, "message": p.message} for p in problems],
    )
